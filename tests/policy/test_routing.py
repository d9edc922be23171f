"""The router never sends a request to a provider not approved for its data class: not first, not
on failover under any fault, and the caller learns the class and why, never the secret itself."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from tests.conftest import MASTER_KEY
from tests.failover.test_fault_matrix import MODES
from tests.policy.conftest import SECRET

AUTH = {"x-api-key": MASTER_KEY, "anthropic-version": "2023-06-01"}
REPLY = "[[reply:" + " ".join(f"word{i}" for i in range(40)) + "]]"


def body(route: str, text: str, stream: bool = False) -> dict[str, Any]:
    return {"model": route, "max_tokens": 400, "stream": stream, "messages": [{"role": "user", "content": text}]}


def call(url: str, route: str, text: str, *, dialect: str = "anthropic", stream: bool = False,
         headers: dict[str, str] | None = None) -> httpx.Response:
    path = "/v1/messages" if dialect == "anthropic" else "/v1/chat/completions"
    with httpx.Client(base_url=url, timeout=30) as http:
        response = http.post(path, json=body(route, text, stream), headers={**AUTH, **(headers or {})})
        response.read()
        return response


def unapproved_hits(sim: Any) -> list[dict[str, Any]]:
    """Requests that reached a vendor account not approved for secrets (openai, or the backup
    Anthropic account, whose only model here is Haiku)."""
    return [r for r in sim.requests() if r["vendor"] == "openai" or "haiku" in str(r.get("model"))]


@pytest.mark.parametrize("dialect", ["anthropic", "openai"])
def test_a_secret_with_its_only_approved_provider_down_is_refused_with_the_policy_error(
        policy: Any, sim: Any, dialect: str) -> None:
    sim.add_fault(vendor="anthropic", model="claude-opus-4-6", mode="status", status=529)
    response = call(policy.url, "gov-secret", f"deploy with {SECRET} please {REPLY}", dialect=dialect)
    assert response.status_code == 403
    error = response.json()["error"]
    # each dialect's own shape: Anthropic's permission_error, OpenAI's 403 with the code
    assert error["type"] == "permission_error" if dialect == "anthropic" else error["code"] == "no_allowed_target"
    message = error["message"]
    assert "'secret'" in message and "AWS Access Key" in message
    assert "openai/gpt-5.1" in message and "openai is approved for public, internal" in message
    assert SECRET not in response.text
    if dialect == "anthropic":
        assert response.json()["type"] == "error"
    assert unapproved_hits(sim) == []
    assert [r["model"] for r in sim.requests()] and all(r["model"] == "claude-opus-4-6" for r in sim.requests())


AWS_SECRET = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"  # AWS's documented example secret access key


@pytest.mark.parametrize("name", ["AWS_SECRET_ACCESS_KEY", "aws_secret_access_key", "Aws_Secret_Access_Key"])
@pytest.mark.parametrize("dialect", ["anthropic", "openai"])
def test_an_aws_secret_access_key_in_any_case_never_reaches_an_unapproved_vendor(
        policy: Any, sim: Any, dialect: str, name: str) -> None:
    sim.add_fault(vendor="anthropic", model="claude-opus-4-6", mode="status", status=529)
    text = f'here is my config {{"{name}": "{AWS_SECRET}"}} {REPLY}'
    response = call(policy.url, "gov-secret", text, dialect=dialect)
    assert response.status_code == 403
    assert "classified 'secret'" in response.json()["error"]["message"]
    assert AWS_SECRET not in response.text
    assert unapproved_hits(sim) == []
    assert [r["vendor"] for r in sim.requests()] == ["anthropic"]  # only the approved one, which was down


def test_a_secret_with_no_approved_candidate_is_never_sent(policy: Any, sim: Any) -> None:
    response = call(policy.url, "gov-none", f"key {SECRET}", dialect="openai")
    assert response.status_code == 403
    assert response.json()["error"]["code"] == "no_allowed_target"
    assert "classified 'secret'" in response.json()["error"]["message"]
    assert sim.requests() == []


def test_a_secret_skips_unapproved_first_choices_and_is_served_by_an_approved_one(policy: Any, sim: Any) -> None:
    response = call(policy.url, "gov-open-first", f"{SECRET} {REPLY}")
    assert response.status_code == 200
    assert response.headers["x-outlast-served-by"] == "anthropic/claude-opus-4-6"
    assert unapproved_hits(sim) == []


def test_public_text_still_fails_over_to_any_provider(policy: Any, sim: Any) -> None:
    sim.add_fault(vendor="anthropic", model="claude-opus-4-6", mode="status", status=529)
    response = call(policy.url, "gov-secret", f"hello {REPLY}")
    assert response.status_code == 200
    assert response.headers["x-outlast-served-by"] == "openai/gpt-5.1"


def test_the_declared_class_counts_and_the_highest_wins(policy: Any, sim: Any) -> None:
    sim.add_fault(vendor="anthropic", model="claude-opus-4-6", mode="status", status=529)
    declared = call(policy.url, "gov-secret", f"hello {REPLY}", headers={"x-outlast-data-class": "confidential"})
    assert declared.status_code == 403 and "classified 'confidential'" in declared.json()["error"]["message"]
    # declaring a lower class than what is found does not lower it
    lower = call(policy.url, "gov-secret", f"{SECRET} {REPLY}", headers={"x-outlast-data-class": "public"})
    assert lower.status_code == 403 and "classified 'secret'" in lower.json()["error"]["message"]
    unknown = call(policy.url, "gov-secret", "hi", headers={"x-outlast-data-class": "top-secret"})
    assert unknown.status_code == 403 and "not a data class" in unknown.json()["error"]["message"]
    assert unapproved_hits(sim) == []


def test_personal_data_is_confidential(policy: Any, sim: Any) -> None:
    sim.add_fault(vendor="anthropic", model="claude-opus-4-6", mode="status", status=529)
    response = call(policy.url, "gov-secret", f"card 4111 1111 1111 1111 {REPLY}")
    assert response.status_code == 403
    assert "classified 'confidential'" in response.json()["error"]["message"]
    assert "card number" in response.json()["error"]["message"]
    assert "4111" not in response.text
    assert unapproved_hits(sim) == []


def test_token_counting_only_asks_approved_providers(policy: Any, sim: Any) -> None:
    with httpx.Client(base_url=policy.url, timeout=30) as http:
        response = http.post("/v1/messages/count_tokens", headers=AUTH,
                             json={"model": "gov-open-first", "messages": [{"role": "user", "content": SECRET}]})
    assert response.status_code == 200
    assert unapproved_hits(sim) == []


# What each dialect answers when the policy stopped failover: refused before the answer began (403),
# or an answer that broke off and could not be continued elsewhere (the dialect's "unavailable").
# Anthropic's errors say it by type, OpenAI's by code (or, for its 503, by type).
POLICY_STOPPED = {"anthropic": {(403, "permission_error"), (529, "overloaded_error")},
                  "openai": {(403, "no_allowed_target"), (503, "server_error")}}
STREAM_END = {"anthropic": "event: message_stop", "openai": "data: [DONE]"}


@pytest.mark.parametrize("stream", [False, True], ids=["whole", "stream"])
@pytest.mark.parametrize("mode", sorted(MODES))
@pytest.mark.parametrize("dialect", ["anthropic", "openai"])
def test_failover_never_carries_a_secret_to_an_unapproved_provider(policy: Any, sim: Any, dialect: str, mode: str,
                                                                   stream: bool) -> None:
    sim.add_fault(vendor="anthropic", model="claude-opus-4-6", mode=mode, **MODES[mode])
    response = call(policy.url, "gov-secret", f"the key is {SECRET}. {REPLY}", dialect=dialect, stream=stream)
    assert SECRET not in response.text
    assert unapproved_hits(sim) == [], f"{mode}: a secret reached an unapproved provider"
    if response.status_code != 200:
        error = response.json()["error"]
        said = error["type"] if dialect == "anthropic" else error["code"] or error["type"]
        assert (response.status_code, said) in POLICY_STOPPED[dialect], response.text
        assert "classified 'secret'" in error["message"]
    elif stream:
        assert STREAM_END[dialect] in response.text or "classified 'secret'" in response.text
