"""The route's total deadline (``deadlines.total``) through a real gateway in front of a hanging
``outlast sim``: the longest wait before the answer begins, retries and failover included."""

from __future__ import annotations

from typing import Any

import anthropic
import openai
import pytest

from tests.conftest import MASTER_KEY
from tests.failover.test_behaviour import messages_body, post


def test_a_hanging_candidate_gets_only_what_is_left_of_the_total_deadline(failover: Any, sim: Any) -> None:
    """The first candidate fails fast, the second hangs: it is given the rest of the half second
    (not its own 3 s first-token deadline), then the caller gets a timeout listing both attempts
    and the third candidate is never asked."""
    sim.add_fault(vendor="anthropic", model="claude-opus-4-6", mode="status", status=529)
    sim.add_fault(vendor="openai", model="gpt-5.1", mode="hang")
    response = post(failover.url, messages_body("bounded"))
    assert response.status_code == 529
    assert response.headers["x-outlast-attempts"] == "2"
    message = response.json()["error"]["message"]
    assert message.startswith("no answer within the route's total deadline of 0.5 s for 'bounded': ")
    assert "1. anthropic/claude-opus-4-6: overloaded" in message
    assert "2. openai/gpt-5.1: timeout (total)" in message and "left of the route's total deadline" in message
    assert [r["model"] for r in sim.requests()] == ["claude-opus-4-6", "gpt-5.1"]


@pytest.mark.parametrize("caller", ["openai", "anthropic"])
def test_the_total_timeout_reaches_each_caller_in_its_dialect(failover: Any, sim: Any, caller: str) -> None:
    sim.add_fault(vendor="anthropic", model="claude-opus-4-6", mode="hang")
    messages: Any = [{"role": "user", "content": "hello"}]
    if caller == "openai":
        client = openai.OpenAI(base_url=f"{failover.url}/v1", api_key=MASTER_KEY, max_retries=0, timeout=20)
        with pytest.raises(openai.APIStatusError) as caught:
            client.chat.completions.create(model="bounded", messages=messages, max_tokens=16)
        assert caught.value.status_code == 503
        message = caught.value.message
    else:
        sdk = anthropic.Anthropic(base_url=failover.url, api_key=MASTER_KEY, max_retries=0, timeout=20)
        with pytest.raises(anthropic.APIStatusError) as caught_an:
            sdk.messages.create(model="bounded", messages=messages, max_tokens=16)
        assert caught_an.value.status_code == 529
        message = caught_an.value.message
    assert "total deadline of 0.5 s" in message and "anthropic/claude-opus-4-6: timeout (total)" in message
    assert [r["vendor"] for r in sim.requests()] == ["anthropic"]
