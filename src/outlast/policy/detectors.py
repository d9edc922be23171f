"""What is sensitive in a text: secrets and personal data, found fast.

Secrets are found by detect-secrets' maintained regex plugins (AWS, GitHub, GitLab, Slack,
Stripe, private keys, JWTs, passwords in URLs, ...) plus the few vendor keys it does not know
yet (Anthropic, OpenAI project keys, Google API keys). Each plugin is gated by literal
*triggers*: substrings every match must contain. ``trigger in text`` is a C-speed scan, so
an 80 KB prompt with no trigger costs a few microseconds per plugin, and the plugin's regexes
only run when one is present. A plugin with a case-insensitive pattern (AWS secret keys named
``AWS_SECRET_ACCESS_KEY``, Slack tokens) has its triggers found in any case too: a trigger must
never be stricter than its pattern.

Personal data: e-mail addresses (only where an ``@`` is), card numbers (Luhn), IBANs
(ISO 13616 mod-97), phone numbers, US social security and UK national insurance numbers.
Digit-based kinds share one pass over runs of digits.

A :class:`Finding` names the kind of thing found and where (offsets), never the value in a
message: callers that must show it to a person show ``kind`` only.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass
from re import Pattern

from ahocorasick_rs import AhoCorasick, Implementation
from detect_secrets.plugins.artifactory import ArtifactoryDetector
from detect_secrets.plugins.aws import AWSKeyDetector
from detect_secrets.plugins.azure_storage_key import AzureStorageKeyDetector
from detect_secrets.plugins.base import RegexBasedDetector
from detect_secrets.plugins.basic_auth import BasicAuthDetector
from detect_secrets.plugins.github_token import GitHubTokenDetector
from detect_secrets.plugins.gitlab_token import GitLabTokenDetector
from detect_secrets.plugins.jwt import JwtTokenDetector
from detect_secrets.plugins.mailchimp import MailchimpDetector
from detect_secrets.plugins.npm import NpmDetector
from detect_secrets.plugins.openai import OpenAIDetector
from detect_secrets.plugins.private_key import PrivateKeyDetector
from detect_secrets.plugins.pypi_token import PypiTokenDetector
from detect_secrets.plugins.sendgrid import SendGridDetector
from detect_secrets.plugins.slack import SlackDetector
from detect_secrets.plugins.square_oauth import SquareOAuthDetector
from detect_secrets.plugins.stripe import StripeDetector
from detect_secrets.plugins.twilio import TwilioKeyDetector

SECRET = "secret"
PERSONAL = "personal"


@dataclass(frozen=True, slots=True)
class Finding:
    """One sensitive thing: ``category`` (``secret`` or ``personal``), ``kind`` (what it is,
    for people: "AWS Access Key", "card number"), and where it is in the scanned text."""

    category: str
    kind: str
    start: int
    end: int


class _Extra(RegexBasedDetector):
    """Vendor keys detect-secrets 1.5 has no plugin for, in its own plugin shape."""

    secret_type = "AI provider key"
    denylist = (
        re.compile(r"sk-ant-(?:api|admin|oat)\d{2}-[A-Za-z0-9_\-]{20,}"),
        re.compile(r"sk-(?:proj|svcacct|admin)-[A-Za-z0-9_\-]{20,}"),
        re.compile(r"AIza[0-9A-Za-z_\-]{35}"),
    )


# Plugin -> the literal substrings at least one of which every match of its patterns contains, and
# how far a match can reach before and after one (characters): the patterns run only there.
_TRIGGERS: tuple[tuple[type[RegexBasedDetector], tuple[str, ...], int, int], ...] = (
    (AWSKeyDetector, ("AKIA", "ASIA", "ABIA", "ACCA", "A3T", "aws"), 1, 140),
    (AzureStorageKeyDetector, ("AccountKey=",), 1, 110),
    (BasicAuthDetector, ("://",), 1, 512),
    (GitHubTokenDetector, ("ghp_", "gho_", "ghu_", "ghs_", "ghr_"), 1, 48),
    (GitLabTokenDetector, ("glpat-", "gldt-", "glft-", "glsoat-", "glrt-", "GR1348941", "glcbt-", "glimt-",
                           "glptt-", "glagent-", "gloas-"), 1, 1100),
    (JwtTokenDetector, ("eyJ",), 1, 16384),
    (MailchimpDetector, ("-us",), 33, 6),
    (NpmDetector, (":_authToken=",), 512, 512),
    (OpenAIDetector, ("T3BlbkFJ",), 256, 32),
    (PrivateKeyDetector, ("PRIVATE KEY", "PuTTY-User-Key-File-2"), 32, 32),
    (PypiTokenDetector, ("pypi-AgE",), 1, 2048),
    (SendGridDetector, ("SG.",), 1, 72),
    (SlackDetector, ("xox", "slack.com"), 24, 256),  # https://hooks.slack.com/...
    (SquareOAuthDetector, ("sq0csp-",), 1, 56),
    (StripeDetector, ("k_live_",), 3, 36),
    (TwilioKeyDetector, ("AC", "SK"), 1, 40),
    (ArtifactoryDetector, ("AKC", "AP"), 2, 256),
    (_Extra, ("sk-ant-", "sk-proj-", "sk-svcacct-", "sk-admin-", "AIza"), 1, 512),
)


@dataclass(frozen=True, slots=True)
class _Gate:
    kind: str
    triggers: tuple[str, ...]
    before: int
    after: int
    patterns: tuple[Pattern[str], ...]
    ignore_case: bool  # a pattern ignores case, so its triggers are found in any case


def _gates() -> tuple[_Gate, ...]:
    gates = []
    for plugin, triggers, before, after in _TRIGGERS:
        detector = plugin()
        patterns = tuple(detector.denylist)
        gates.append(_Gate(str(detector.secret_type), triggers, before, after, patterns,
                           any(p.flags & re.IGNORECASE for p in patterns)))
    return tuple(gates)


_GATES = _gates()


def _cases(word: str) -> list[str]:
    """Every ASCII spelling of ``word`` in upper and lower case ("aws": "aws", "awS", ... "AWS")."""
    spellings = [""]
    for ch in word:
        forms = {ch.lower(), ch.upper()} if ch.isascii() and ch.isalpha() else {ch}
        spellings = [s + form for s in spellings for form in sorted(forms)]
    if len(spellings) > 1024:  # a design error, found at import: use a shorter trigger
        raise ValueError(f"the case-insensitive trigger {word!r} is too long to spell in every case")
    return spellings


# One pass over the text for every trigger of every plugin (Aho-Corasick, in Rust). A plugin
# whose pattern ignores case has its triggers in every spelling: an automaton of a few hundred
# words searches as fast as one of a few dozen, where a second pass over a case-folded copy
# would double the cost of every scan.
_TRIGGER_GATES: list[int] = []
_TRIGGER_WORDS: list[str] = []
for _i, _gate in enumerate(_GATES):
    for _word in _gate.triggers:
        for _spelling in _cases(_word) if _gate.ignore_case else [_word]:
            _TRIGGER_GATES.append(_i)
            _TRIGGER_WORDS.append(_spelling)
_AUTOMATON = AhoCorasick(_TRIGGER_WORDS, implementation=Implementation.DFA)  # the fastest to search


def _windows(text: str) -> dict[int, list[tuple[int, int]]]:
    """Per gate, merged spans of ``text`` around each occurrence of its triggers."""
    spans: dict[int, list[tuple[int, int]]] = {}
    for word, start, end in _AUTOMATON.find_matches_as_indexes(text, overlapping=True):
        i = _TRIGGER_GATES[word]
        gate = _GATES[i]
        lo, hi = max(0, start - gate.before), end + gate.after
        found = spans.get(i)
        if found is None:
            spans[i] = [(lo, hi)]
        elif lo <= found[-1][1]:  # matches come in order of their end: merge with the last span
            found[-1] = (min(found[-1][0], lo), max(hi, found[-1][1]))
        else:
            found.append((lo, hi))
    return spans


def find_secrets(text: str) -> Iterator[Finding]:
    """Secrets in ``text``, by detect-secrets' plugins, each run only around its literal triggers."""
    seen: set[tuple[int, int]] = set()
    for i, windows in _windows(text).items():
        gate = _GATES[i]
        for lo, hi in windows:
            for pattern in gate.patterns:
                for match in pattern.finditer(text, lo, hi):
                    # The span of the secret itself when the pattern captures it (passwords in URLs).
                    span = match.span(1) if pattern.groups and len(match.group(1) or "") >= 8 else match.span()
                    if span not in seen:
                        seen.add(span)
                        yield Finding(SECRET, gate.kind, span[0], span[1])


# --------------------------------------------------------------------------- personal data

_EMAIL_LOCAL = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789._%+-")
_EMAIL_DOMAIN = re.compile(r"[A-Za-z0-9\-]{1,63}(?:\.[A-Za-z0-9\-]{1,63})*\.[A-Za-z]{2,24}\b")
# A run of digits with the separators people write in numbers; classified afterwards. One pass
# finds every digit-bearing kind: IBANs and national insurance numbers are checked around a run.
_DIGITS = re.compile(r"\d[\d \-().]{4,24}\d")
_SSN = re.compile(r"^(?!000|666|9\d\d)\d{3}-(?!00)\d{2}-(?!0000)\d{4}$")
_IBAN = re.compile(r"[A-Z]{2}\d{2}(?: ?[A-Z0-9]{4}){2,7}(?: ?[A-Z0-9]{1,3})?\b")
_NINO = re.compile(r"[A-CEGHJ-PR-TW-Z][A-CEGHJ-NPR-TW-Z] ?\d{2} ?\d{2} ?\d{2} ?[A-D]\b")
_IBAN_LENGTHS = {"AD": 24, "AT": 20, "BE": 16, "BG": 22, "CH": 21, "CY": 28, "CZ": 24, "DE": 22, "DK": 18, "EE": 20,
                 "ES": 24, "FI": 18, "FR": 27, "GB": 22, "GR": 27, "HR": 21, "HU": 28, "IE": 22, "IS": 26,
                 "IT": 27, "LI": 21, "LT": 20, "LU": 20, "LV": 21, "MC": 27, "MT": 31, "NL": 18, "NO": 15,
                 "PL": 28, "PT": 25, "RO": 24, "SE": 24, "SI": 19, "SK": 24, "SM": 27, "TR": 26}


def luhn(digits: str) -> bool:
    total = 0
    for i, ch in enumerate(reversed(digits)):
        d = ord(ch) - 48
        if i % 2:
            d *= 2
            if d > 9:
                d -= 9
        total += d
    return total % 10 == 0


def iban_valid(candidate: str) -> bool:
    compact = candidate.replace(" ", "")
    if _IBAN_LENGTHS.get(compact[:2]) != len(compact):
        return False
    moved = compact[4:] + compact[:4]
    return int("".join(str(int(c, 36)) for c in moved)) % 97 == 1


def _digit_kind(raw: str) -> str | None:
    digits = "".join(c for c in raw if c.isdigit())
    n = len(digits)
    if 13 <= n <= 19 and digits[0] in "23456" and "." not in raw and "(" not in raw and luhn(digits):
        return "card number"
    if n == 9 and _SSN.match(raw):
        return "US social security number"
    # Phones: written with a country code, or grouped like (555) 123-4567 / 020 7946 0958 (not a date).
    if n <= 15 and "." not in raw and len(set(digits)) > 2 and (
            (n >= 8 and raw[0] in "+(") or (n >= 10 and raw.count(" ") + raw.count("-") >= 2)):
        return "phone number"
    return None


def _emails(text: str) -> Iterator[Finding]:
    at = text.find("@")
    size = len(text)
    while at != -1:
        # Cheap rejections first: decorators (@dataclass), handles (@name), "a @ b".
        if 0 < at < size - 3 and text[at - 1] in _EMAIL_LOCAL:
            domain = _EMAIL_DOMAIN.match(text, at + 1)
            if domain is not None:
                start = at - 1
                while start > 0 and at - start < 64 and text[start - 1] in _EMAIL_LOCAL:
                    start -= 1
                yield Finding(PERSONAL, "e-mail address", start, domain.end())
                at = text.find("@", domain.end())
                continue
        at = text.find("@", at + 1)


def find_personal(text: str) -> Iterator[Finding]:
    """Personal data in ``text``."""
    yield from _emails(text)
    last = -1
    for match in _DIGITS.finditer(text):
        start, end = match.span()
        before = text[start - 1] if start else " "
        if before in "+(":
            start -= 1
        # Part of a word or a dotted number (an identifier, a version, an address): not a number on its own.
        kind = None if before.isalnum() or before in "_." else _digit_kind(text[start:end])
        if kind is not None:
            yield Finding(PERSONAL, kind, start, end)
            continue
        # Letters before a run: an IBAN (checksum) or a UK national insurance number.
        lo = max(last, start - 10)
        for pattern, name in ((_IBAN, "IBAN"), (_NINO, "UK national insurance number")):
            found = pattern.search(text, lo, end + 40)
            if found is not None and found.start() <= start and (name != "IBAN" or iban_valid(found.group())) \
                    and (found.start() == 0 or not text[found.start() - 1].isalnum()):
                yield Finding(PERSONAL, name, found.start(), found.end())
                break
        last = end
