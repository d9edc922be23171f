"""Classification: secrets by detect-secrets' plugins, personal data with checksums, declared classes,
the highest wins; and it stays cheap on large requests."""

from __future__ import annotations

import re
from collections.abc import Callable

import pytest

from outlast.dialects.canonical import Message, Request, Text, ToolResult, ToolUse
from outlast.policy.classify import Classifier, DataClasses, UnknownDataClass
from outlast.policy.detectors import _GATES, find_personal, find_secrets, iban_valid, luhn


def request(*texts: str) -> Request:
    return Request("m", tuple(Message("user", (Text(t),)) for t in texts))


def kinds(text: str) -> set[str]:
    return {f.kind for f in [*find_secrets(text), *find_personal(text)]}


@pytest.mark.parametrize(("text", "kind"), [
    ("aws AKIAIOSFODNN7EXAMPLE here", "AWS Access Key"),
    ("-----BEGIN RSA PRIVATE KEY-----\nMIIB...", "Private Key"),
    ("clone https://bob:s3cretpassw0rd@git.example.com/x.git", "Basic Auth Credentials"),
    ("token ghp_" + "a1B2" * 9, "GitHub Token"),
    ("xoxb-123456789012-abcdefghij", "Slack Token"),
    ("ANTHROPIC_API_KEY=sk-ant-api03-" + "x" * 40, "AI provider key"),
    ("jwt eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxIn0.c2lnbmF0dXJl", "JSON Web Token"),
])
def test_secrets_are_found_by_their_detector(text: str, kind: str) -> None:
    assert kind in kinds(text)


# A secret for every detector pattern that ignores case (detect-secrets' AWS secret access key by
# its variable name, Slack tokens and webhooks), written as it appears in lower case.
CASE_INSENSITIVE = [
    ('{"aws_secret_access_key": "wjalrxutnfemi/k7mdeng/bpxrficyexamplekey"}', "AWS Access Key"),
    ("export aws_session_token='wjalrxutnfemi/k7mdeng/bpxrficyexamplekey'", "AWS Access Key"),
    ("xoxb-123456789012-abcdefghij", "Slack Token"),
    ("post to https://hooks.slack.com/services/t0001/b0002/abcdefghij", "Slack Token"),
]


def _mixed(text: str) -> str:
    return "".join(c.upper() if i % 2 else c.lower() for i, c in enumerate(text))


CASES: dict[str, Callable[[str], str]] = {"lower": str.lower, "upper": str.upper, "mixed": _mixed,
                                          "title": str.title}


@pytest.mark.parametrize("case", sorted(CASES))
@pytest.mark.parametrize(("text", "kind"), CASE_INSENSITIVE)
def test_a_case_insensitive_pattern_finds_its_secret_written_in_any_case(text: str, kind: str, case: str) -> None:
    written = CASES[case](text)
    found = [f for f in find_secrets(written) if f.kind == kind]
    assert found, f"{kind} not found in {written!r}"
    # the finding covers the secret itself, wherever the case put it
    assert any(written[f.start:f.end].lower() in text.lower() and f.end - f.start >= 28 for f in found)


def test_the_aws_secret_access_key_in_upper_case_json_is_a_secret() -> None:
    document = '{"AWS_SECRET_ACCESS_KEY": "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"}'
    classified = Classifier(DataClasses()).classify(request(document))
    assert classified.data_class == "secret" and classified.kinds() == ["AWS Access Key"]


def test_every_case_insensitive_pattern_has_an_example_in_every_case() -> None:
    # A detector update that adds a case-insensitive pattern must add its example above.
    patterns = {p.pattern for g in _GATES for p in g.patterns if p.flags & re.IGNORECASE}
    assert patterns, "detect-secrets changed: no pattern ignores case any more"
    covered = {p.pattern for g in _GATES for p in g.patterns if p.flags & re.IGNORECASE
               for text, _ in CASE_INSENSITIVE if p.search(text)}
    assert covered == patterns
    # and the gate in front of each one lets every spelling through
    assert all(g.ignore_case for g in _GATES if any(p.flags & re.IGNORECASE for p in g.patterns))


@pytest.mark.parametrize(("text", "kind"), [
    ("write to jane.doe@example.co.uk", "e-mail address"),
    ("card 4111 1111 1111 1111", "card number"),
    ("card 5500-0000-0000-0004", "card number"),
    ("IBAN DE89 3704 0044 0532 0130 00", "IBAN"),
    ("IBAN GB82WEST12345698765432", "IBAN"),
    ("call +44 20 7946 0958", "phone number"),
    ("call (555) 123-4567", "phone number"),
    ("SSN 123-45-6789", "US social security number"),
    ("NI number AB 12 34 56 C", "UK national insurance number"),
])
def test_personal_data_is_found(text: str, kind: str) -> None:
    assert kind in kinds(text)


@pytest.mark.parametrize("text", [
    "@dataclass\nclass A: pass", "see http://example.com/path", "version 2026-11-21 build 12345678",
    "card 4111 1111 1111 1112", "IBAN DE89 3704 0044 0532 0130 01", "port 127.0.0.1:5432", "x = 3.14159265358979",
    "SSN 000-12-3456",
])
def test_ordinary_text_and_bad_checksums_are_not_sensitive(text: str) -> None:
    assert kinds(text) == set()


def test_checksums() -> None:
    assert luhn("4111111111111111") and not luhn("4111111111111112")
    assert iban_valid("GB82 WEST 1234 5698 7654 32") and not iban_valid("GB82 WEST 1234 5698 7654 33")


def test_the_highest_class_wins_and_declared_classes_count() -> None:
    classifier = Classifier(DataClasses())
    assert classifier.classify(request("hello")).data_class == "public"
    assert classifier.classify(request("hello"), declared="internal").data_class == "internal"
    assert classifier.classify(request("mail a@example.com")).data_class == "confidential"
    both = classifier.classify(request("mail a@example.com", "AKIAIOSFODNN7EXAMPLE"), declared="internal")
    assert both.data_class == "secret"
    assert both.kinds() == ["AWS Access Key", "e-mail address"] or set(both.kinds()) == {"AWS Access Key",
                                                                                        "e-mail address"}
    assert "AKIA" not in both.reason()
    with pytest.raises(UnknownDataClass):
        classifier.classify(request("hi"), declared="nope")


def test_configured_classes_and_mapping() -> None:
    classes = DataClasses(("open", "team", "restricted"))
    classifier = Classifier(classes, personal_class="team")
    assert classifier.classify(request("AKIAIOSFODNN7EXAMPLE")).data_class == "restricted"
    assert classifier.classify(request("a@example.com")).data_class == "team"
    with pytest.raises(UnknownDataClass):
        Classifier(classes, secret_class="secret")


def test_tool_calls_and_results_are_scanned() -> None:
    classifier = Classifier(DataClasses())
    used = Request("m", (Message("assistant", (ToolUse("t1", "bash", {"cmd": ["echo", "AKIAIOSFODNN7EXAMPLE"]}),)),))
    assert classifier.classify(used).data_class == "secret"
    result = Request("m", (Message("user", (ToolResult("t1", (Text("mail x@example.org"),)),)),))
    assert classifier.classify(result).data_class == "confidential"


def test_a_long_text_seen_again_is_not_scanned_again(monkeypatch: pytest.MonkeyPatch) -> None:
    # Coding agents resend the whole conversation every turn: the long file a tool read is scanned once.
    # (How fast classification is belongs in benchmarks/classify.py, not here.)
    source = "\n".join(f"def f{i}(x):\n    return x * {i} + 0x{i:04x}  # see @decorator and a://b" for i in range(1600))
    assert len(source) > 80_000
    classifier = Classifier(DataClasses())
    scanned: list[int] = []
    real_scan = classifier.scan
    monkeypatch.setattr(classifier, "scan", lambda text: scanned.append(len(text)) or real_scan(text))
    assert classifier.classify(request("x" * 10 + source[:80_000], "now find the bug")).data_class == "public"
    assert max(scanned) >= 80_000
    scanned.clear()
    leaked = request("x" * 10 + source[:80_000], "and another turn, key AKIAIOSFODNN7EXAMPLE")
    assert classifier.classify(leaked).data_class == "secret"  # what is new is still scanned
    assert scanned and max(scanned) < 1024  # only the short new text, not the long one again
