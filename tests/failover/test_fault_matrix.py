"""Every simulator fault mode x stream and non-stream x OpenAI and Anthropic caller x a fallback in the
same wire format or the other one, through the official SDKs. With a healthy fallback no request fails as
the client sees it and every stream is well-formed; without one, the caller gets its dialect's error."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import anthropic
import openai
import pytest

from tests.conftest import MASTER_KEY
from tests.failover.conftest import LONG_TEXT

PRIMARY = {"anthropic": "claude-opus-4-6", "openai": "gpt-5.1"}
FALLBACK = {("anthropic", "same"): "anthropic-backup/claude-haiku-4-5-20251001",
            ("anthropic", "cross"): "openai/gpt-5.1",
            ("openai", "same"): "openai-backup/gpt-4.1", ("openai", "cross"): "anthropic/claude-sonnet-4-6"}
MODES: dict[str, dict[str, Any]] = {
    "status": {},
    "hang": {},
    "reset": {},
    "cut": {"after_events": 6},
    "stall": {"after_events": 6, "seconds": 12},
    "no_terminator": {},
    "bad_event": {"at_event": 7},
    "malformed": {},
    "blank": {},
    "slow": {"ttft_ms": 10000},
    "auth": {},
}
# Faults that leave a whole answer at the primary: it serves.
PRIMARY_SERVES = {"no_terminator"}
# Faults after the answer began: the fallback continues it (streams), or the whole answer is
# still assembled (non-streaming callers get the same continuation).
SPLICED = {"cut", "stall", "bad_event"}


@dataclass
class Seen:
    text: str = ""
    model: str = ""
    served_by: str | None = None
    starts: int = 0
    stops: int = 0
    finishes: list[str] = field(default_factory=list)
    usage: tuple[int, int] = (0, 0)


def ask(url: str, caller: str, route: str, stream: bool) -> Seen:
    seen = Seen()
    prompt = f"Please repeat. [[reply:{LONG_TEXT}]]"
    if caller == "openai":
        client = openai.OpenAI(base_url=f"{url}/v1", api_key=MASTER_KEY, max_retries=0, timeout=20)
        messages = [{"role": "user", "content": prompt}]
        if stream:
            chunks = list(client.chat.completions.create(model=route, messages=messages, max_tokens=400, stream=True,
                                                         stream_options={"include_usage": True}))
            seen.text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
            seen.finishes = [c.choices[0].finish_reason for c in chunks if c.choices and c.choices[0].finish_reason]
            seen.model = chunks[0].model
            usage = chunks[-1].usage
            assert usage is not None and chunks[-1].choices == []
            seen.usage = (usage.prompt_tokens, usage.completion_tokens)
            seen.starts = seen.stops = 1
        else:
            raw = client.chat.completions.with_raw_response.create(model=route, messages=messages, max_tokens=400)
            completion = raw.parse()
            seen.text = completion.choices[0].message.content or ""
            seen.finishes = [completion.choices[0].finish_reason]
            seen.model = completion.model
            assert completion.usage is not None
            seen.usage = (completion.usage.prompt_tokens, completion.usage.completion_tokens)
            seen.served_by = raw.headers["x-outlast-served-by"]
            seen.starts = seen.stops = 1
        return seen
    client_an = anthropic.Anthropic(base_url=url, api_key=MASTER_KEY, max_retries=0, timeout=20)
    kwargs: dict[str, Any] = {"model": route, "max_tokens": 400, "messages": [{"role": "user", "content": prompt}]}
    if stream:
        texts = []
        for event in client_an.messages.create(stream=True, **kwargs):
            if event.type == "message_start":
                seen.starts += 1
                seen.model = event.message.model
                input_tokens = event.message.usage.input_tokens
            elif event.type == "message_stop":
                seen.stops += 1
            elif event.type == "message_delta":
                seen.finishes.append(event.delta.stop_reason or "")
                seen.usage = (event.usage.input_tokens or input_tokens, event.usage.output_tokens)
            elif event.type == "content_block_delta" and event.delta.type == "text_delta":
                texts.append(event.delta.text)
        seen.text = "".join(texts)
    else:
        raw = client_an.messages.with_raw_response.create(**kwargs)
        message = raw.parse()
        seen.text = "".join(b.text for b in message.content if b.type == "text")
        seen.model = message.model
        seen.finishes = [message.stop_reason or ""]
        seen.usage = (message.usage.input_tokens, message.usage.output_tokens)
        seen.served_by = raw.headers["x-outlast-served-by"]
        seen.starts = seen.stops = 1
    return seen


def add_fault(sim: Any, vendor: str, mode: str) -> None:
    fault = {"vendor": vendor, "model": PRIMARY[vendor], "mode": mode, "rate": 1.0, **MODES[mode]}
    if mode == "status":
        fault["status"] = 529 if vendor == "anthropic" else 500
    sim.add_fault(**fault)


@pytest.mark.parametrize("mode", list(MODES))
@pytest.mark.parametrize("stream", [False, True], ids=["json", "stream"])
@pytest.mark.parametrize("caller", ["openai", "anthropic"])
@pytest.mark.parametrize("fallback", ["same", "cross"])
def test_with_a_healthy_fallback_no_request_fails(failover: Any, sim: Any, mode: str, stream: bool, caller: str,
                                                  fallback: str) -> None:
    vendor = caller  # the primary speaks the caller's format; the fallback the same one or the other
    add_fault(sim, vendor, mode)
    seen = ask(failover.url, caller, f"mx-{vendor}-{fallback}", stream)
    assert seen.starts == 1 and seen.stops == 1
    stop = "stop" if caller == "openai" else "end_turn"
    assert seen.finishes == [stop], seen.finishes
    fallback_model = FALLBACK[(vendor, fallback)].partition("/")[2]
    if mode in PRIMARY_SERVES:
        assert seen.text == LONG_TEXT
        assert seen.model == PRIMARY[vendor]
    elif mode in SPLICED:
        # The client got the first words from the primary and the rest from the fallback, as one answer.
        assert seen.text.startswith("word0 word1"), seen.text
        assert len(seen.text) > len("word0 word1 word2")
        served = [r["model"] for r in sim.requests()]
        assert served[-1] == fallback_model and PRIMARY[vendor] in served
        if not stream:
            assert seen.model == fallback_model  # the model that finished it
    else:
        assert seen.text == LONG_TEXT
        assert seen.model == fallback_model
        if seen.served_by is not None:
            assert seen.served_by == FALLBACK[(vendor, fallback)]
    assert seen.usage[0] > 0 and seen.usage[1] > 0


ALONE_OK = {"no_terminator", "slow"}


@pytest.mark.parametrize("mode", list(MODES))
@pytest.mark.parametrize("stream", [False, True], ids=["json", "stream"])
@pytest.mark.parametrize("caller", ["openai", "anthropic"])
def test_without_a_fallback_the_caller_gets_its_dialects_error(failover: Any, sim: Any, mode: str, stream: bool,
                                                               caller: str) -> None:
    add_fault(sim, caller, mode)
    route = f"mx-{caller}-alone"
    if mode in ALONE_OK - {"slow"}:
        assert ask(failover.url, caller, route, stream).text == LONG_TEXT
        return
    # "slow" here is slower than the first-token deadline: a timeout, reported as unavailable.
    error_type = openai.APIError if caller == "openai" else anthropic.APIError
    with pytest.raises(error_type) as caught:
        ask(failover.url, caller, route, stream)
    error = caught.value
    if isinstance(error, openai.APIStatusError | anthropic.APIStatusError) and error.response.status_code != 200:
        assert error.response.status_code == (503 if caller == "openai" else 529)
    message = str(error)
    assert f"{caller}/{PRIMARY[caller]}" in message
    for secret in ("sk-ant-test-provider-key", "sk-openai-test-provider-key", MASTER_KEY):
        assert secret not in message
