"""GeminiProvider against ``outlast sim`` over loopback: answers, tool calls, every fault."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest
from tests.conftest import PROVIDER_KEYS
from tests.providers.support import expect_failure, stream_events

from outlast.dialects.canonical import (
    Event,
    Message,
    Request,
    Start,
    Stop,
    StopReason,
    Text,
    Tool,
    ToolCall,
    ToolResult,
    ToolUse,
    collect,
)
from outlast.providers.base import Timeouts
from outlast.providers.errors import FailureKind, TimeoutPhase, UpstreamError
from outlast.providers.gemini import GeminiProvider

KEY = PROVIDER_KEYS["gemini"]
MODEL = "gemini-2.5-flash"
WEATHER = Tool("get_weather", "Weather for a city",
               {"$schema": "https://json-schema.org/draft/2020-12/schema", "type": "object",
                "additionalProperties": False, "properties": {"city": {"type": "string"}}, "required": ["city"]})
SHORT = Timeouts(connect=2, first_token=2.0, idle=1.5, total=20)
LONG_REPLY = "[[reply:" + " ".join(f"word{i}" for i in range(16)) + "]]"


def ask(text: str, **kw: Any) -> Request:
    return Request(model="caller-name", messages=(Message("user", (Text(text),)),), max_tokens=200,
                   system=(Text("be brief"),), **kw)


@pytest.fixture
async def provider(sim: Any) -> AsyncIterator[GeminiProvider]:
    p = GeminiProvider("gemini", base_url=f"{sim.url}/gemini", api_key=KEY, timeouts=SHORT,
                       headers={"Authorization": "Bearer must-not-be-sent"})
    yield p
    await p.aclose()


async def run(provider: GeminiProvider, request: Request, model: str = MODEL) -> list[Event]:
    return await stream_events(provider, request, model)


async def failure(provider: GeminiProvider, request: Request, model: str = MODEL) -> UpstreamError:
    return await expect_failure(provider, request, model, key=KEY)


async def test_streams_text_with_the_provider_key(provider: GeminiProvider, sim: Any) -> None:
    events = await run(provider, ask("[[reply:hello from gemini]]"))
    assert isinstance(events[0], Start) and events[0].model == MODEL
    assert isinstance(events[-1], Stop) and events[-1].stop_reason is StopReason.END_TURN
    response = collect(events)
    assert response.text() == "hello from gemini"
    assert response.usage.input_tokens > 0 and response.usage.output_tokens > 0
    (received,) = sim.requests("gemini")
    assert received["path"] == f"/gemini/v1beta/models/{MODEL}:streamGenerateContent"
    assert received["query"] == "alt=sse"
    assert received["headers"]["x-goog-api-key"] == KEY
    assert "authorization" not in received["headers"]
    body = received["body"]
    assert body["systemInstruction"] == {"parts": [{"text": "be brief"}]}
    assert body["generationConfig"] == {"maxOutputTokens": 200}


async def test_tool_call_round_trip(provider: GeminiProvider, sim: Any) -> None:
    events = await run(provider, ask("[[tool:get_weather]] in Paris?", tools=(WEATHER,)))
    calls = [e for e in events if isinstance(e, ToolCall)]
    assert len(calls) == 1 and calls[0].name == "get_weather" and calls[0].id.startswith("call_")
    assert "city" in calls[0].input()
    assert isinstance(events[-1], Stop) and events[-1].stop_reason is StopReason.TOOL_USE
    declared = sim.requests("gemini")[0]["body"]["tools"][0]["functionDeclarations"][0]
    assert "$schema" not in declared["parameters"] and "additionalProperties" not in declared["parameters"]
    call = calls[0]
    follow_up = Request(model="caller-name", tools=(WEATHER,), messages=(
        Message("user", (Text("[[tool:get_weather]] in Paris?"),)),
        Message("assistant", (ToolUse(call.id, call.name, call.input()),)),
        Message("user", (ToolResult(call.id, (Text("18 C and sunny"),)),)),
    ))
    answer = collect(await run(provider, follow_up))
    assert answer.text() and answer.stop_reason is StopReason.END_TURN
    last = sim.requests("gemini")[-1]["body"]["contents"][-1]
    assert last == {"role": "user", "parts": [
        {"functionResponse": {"name": "get_weather", "response": {"result": "18 C and sunny"}}}]}


@pytest.mark.parametrize(("fault", "kind", "during_stream"), [
    ({"mode": "status", "status": 500}, FailureKind.SERVER_ERROR, False),
    ({"mode": "status", "status": 503}, FailureKind.OVERLOADED, False),
    ({"mode": "status", "status": 504}, FailureKind.TIMEOUT, False),
    ({"mode": "status", "status": 400, "code": "context_length_exceeded"}, FailureKind.CONTEXT_TOO_LONG, False),
    ({"mode": "status", "status": 400}, FailureKind.BAD_REQUEST, False),
    ({"mode": "status", "status": 403}, FailureKind.AUTH_FAILED, False),
    ({"mode": "auth"}, FailureKind.AUTH_FAILED, False),
    ({"mode": "reset"}, FailureKind.CONNECTION_LOST, False),
    ({"mode": "cut", "after_events": 2}, FailureKind.CONNECTION_LOST, True),
    ({"mode": "no_terminator"}, FailureKind.CONNECTION_LOST, True),
    ({"mode": "bad_event", "at_event": 2}, FailureKind.MALFORMED, True),
    ({"mode": "malformed"}, FailureKind.MALFORMED, True),
])
async def test_faults_become_the_right_failure(provider: GeminiProvider, sim: Any, fault: dict[str, Any],
                                               kind: FailureKind, during_stream: bool) -> None:
    sim.add_fault(vendor="gemini", **fault)
    error = await failure(provider, ask(LONG_REPLY))
    assert error.kind is kind, error
    assert error.during_stream is during_stream
    assert KEY not in error.message


async def test_rate_limit_carries_retry_delay(provider: GeminiProvider, sim: Any) -> None:
    sim.add_fault(vendor="gemini", mode="status", status=429, retry_after=7)
    error = await failure(provider, ask("hi"))
    assert error.kind is FailureKind.RATE_LIMITED and error.retry_after == 7.0 and error.status == 429


async def test_unknown_model_is_not_found(provider: GeminiProvider) -> None:
    error = await failure(provider, ask("hi"), "gemini-0-nonexistent")
    assert error.kind is FailureKind.NOT_FOUND


async def test_hang_times_out_before_the_first_token(provider: GeminiProvider, sim: Any) -> None:
    sim.add_fault(vendor="gemini", mode="hang")
    error = await failure(provider, ask("hi"))
    assert error.kind is FailureKind.TIMEOUT and error.phase is TimeoutPhase.FIRST_TOKEN


async def test_stall_mid_stream_times_out_idle(provider: GeminiProvider, sim: Any) -> None:
    sim.add_fault(vendor="gemini", mode="stall", after_events=2, seconds=12)
    error = await failure(provider, ask(LONG_REPLY))
    assert error.kind is FailureKind.TIMEOUT and error.phase is TimeoutPhase.IDLE and error.during_stream


async def test_blank_answer_is_passed_on_for_the_router_to_judge(provider: GeminiProvider, sim: Any) -> None:
    sim.add_fault(vendor="gemini", mode="blank")
    events = await run(provider, ask("hi"))
    assert isinstance(events[0], Start) and isinstance(events[-1], Stop)
    assert collect(events).text() == ""


# --------------------------------------------------------------------------- generateContent for plain callers


@pytest.fixture
async def plain(sim: Any) -> AsyncIterator[GeminiProvider]:
    p = GeminiProvider("gemini", base_url=f"{sim.url}/gemini", api_key=KEY, timeouts=SHORT, plain_json=True)
    yield p
    await p.aclose()


async def test_streaming_is_the_default_even_for_plain_callers(provider: GeminiProvider, sim: Any) -> None:
    await run(provider, ask("[[reply:hi]]", stream=False))
    (received,) = sim.requests("gemini")
    assert received["path"].endswith(":streamGenerateContent") and received["query"] == "alt=sse"


async def test_plain_json_sends_a_plain_caller_to_generate_content(plain: GeminiProvider, sim: Any) -> None:
    events = await run(plain, ask("[[reply:one whole answer]]", stream=False))
    assert isinstance(events[0], Start) and events[0].model == MODEL
    assert isinstance(events[-1], Stop) and events[-1].stop_reason is StopReason.END_TURN
    response = collect(events)
    assert response.text() == "one whole answer"
    assert response.usage.input_tokens > 0 and response.usage.output_tokens == 4  # 16 characters
    (received,) = sim.requests("gemini")
    assert received["path"] == f"/gemini/v1beta/models/{MODEL}:generateContent" and received["query"] == ""
    assert received["headers"]["accept"] == "application/json"
    assert received["headers"]["x-goog-api-key"] == KEY
    assert received["body"]["generationConfig"] == {"maxOutputTokens": 200}


async def test_plain_json_still_streams_for_a_streaming_caller(plain: GeminiProvider, sim: Any) -> None:
    assert collect(await run(plain, ask("[[reply:streamed]]", stream=True))).text() == "streamed"
    assert sim.requests("gemini")[0]["path"].endswith(":streamGenerateContent")


async def test_plain_json_tool_call(plain: GeminiProvider, sim: Any) -> None:
    events = await run(plain, ask("[[tool:get_weather]] in Oslo?", tools=(WEATHER,), stream=False))
    calls = [e for e in events if isinstance(e, ToolCall)]
    assert len(calls) == 1 and calls[0].name == "get_weather" and "city" in calls[0].input()
    assert isinstance(events[-1], Stop) and events[-1].stop_reason is StopReason.TOOL_USE
    assert sim.requests("gemini")[0]["path"].endswith(":generateContent")


@pytest.mark.parametrize(("fault", "kind"), [
    ({"mode": "status", "status": 503}, FailureKind.OVERLOADED),
    ({"mode": "status", "status": 429, "retry_after": 3}, FailureKind.RATE_LIMITED),
    ({"mode": "malformed"}, FailureKind.MALFORMED),
    ({"mode": "cut"}, FailureKind.CONNECTION_LOST),
    ({"mode": "reset"}, FailureKind.CONNECTION_LOST),
    ({"mode": "hang"}, FailureKind.TIMEOUT),
    ({"mode": "status", "code": "content_policy"}, FailureKind.CONTENT_FILTERED),
])
async def test_plain_json_faults_become_the_right_failure(plain: GeminiProvider, sim: Any, fault: dict[str, Any],
                                                          kind: FailureKind) -> None:
    sim.add_fault(vendor="gemini", **fault)
    error = await expect_failure(plain, ask(LONG_REPLY, stream=False), MODEL, key=KEY)
    assert error.kind is kind, error
    assert sim.requests("gemini")[0]["path"].endswith(":generateContent")


# --------------------------------------------------------------------------- safety blocks


@pytest.mark.parametrize("stream", [True, False], ids=["stream", "json"])
async def test_a_blocked_prompt_is_content_filtered(plain: GeminiProvider, sim: Any, stream: bool) -> None:
    sim.add_fault(vendor="gemini", mode="status", code="content_policy")
    error = await expect_failure(plain, ask("hi", stream=stream), MODEL, key=KEY)
    assert error.kind is FailureKind.CONTENT_FILTERED and error.vendor_code == "SAFETY"
    assert not error.during_stream


async def test_a_candidate_stopped_for_safety_keeps_what_was_said(provider: GeminiProvider, sim: Any) -> None:
    sim.add_fault(vendor="gemini", mode="filtered")
    events = await run(provider, ask("[[reply:one two three four five six seven eight nine ten]]"))
    assert isinstance(events[-1], Stop) and events[-1].stop_reason is StopReason.CONTENT_FILTER
    assert collect(events).text() == "one two three four five"


async def test_a_candidate_blocked_whole_is_passed_on_empty_for_the_router(plain: GeminiProvider, sim: Any) -> None:
    # generateContent drops a blocked candidate's content: nothing said, stop reason content_filter
    sim.add_fault(vendor="gemini", mode="filtered")
    events = await run(plain, ask("[[reply:one two three four]]", stream=False))
    assert [type(e) for e in events] == [Start, Stop]
    assert isinstance(events[-1], Stop) and events[-1].stop_reason is StopReason.CONTENT_FILTER
