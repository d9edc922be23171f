"""OpenAIProvider against ``outlast sim`` over loopback: answers, tool calls, every fault."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from typing import Any

import pytest
from aiohttp import web
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
from outlast.providers.openai import OpenAIProvider, default_max_tokens_field

KEY = PROVIDER_KEYS["openai"]
MODEL = "gpt-5.1"
WEATHER = Tool("get_weather", "Weather for a city",
               {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]})
SHORT = Timeouts(connect=2, first_token=2.0, idle=1.5, total=20)


def ask(text: str, **kw: Any) -> Request:
    return Request(model="caller-name", messages=(Message("user", (Text(text),)),), max_tokens=200, **kw)


@pytest.fixture
async def provider(sim: Any) -> AsyncIterator[OpenAIProvider]:
    p = OpenAIProvider("openai", base_url=f"{sim.url}/openai/v1", api_key=KEY, timeouts=SHORT)
    yield p
    await p.aclose()


async def run(provider: OpenAIProvider, request: Request, model: str = MODEL) -> list[Event]:
    return await stream_events(provider, request, model)


async def failure(provider: OpenAIProvider, request: Request, model: str = MODEL) -> UpstreamError:
    return await expect_failure(provider, request, model, key=KEY)


async def test_streams_text_with_the_provider_key(provider: OpenAIProvider, sim: Any) -> None:
    events = await run(provider, ask("[[reply:hello from the simulator]]"))
    assert isinstance(events[0], Start) and events[0].model == MODEL
    assert isinstance(events[-1], Stop) and events[-1].stop_reason is StopReason.END_TURN
    response = collect(events)
    assert response.text() == "hello from the simulator"
    assert response.usage.input_tokens > 0 and response.usage.output_tokens > 0
    (received,) = sim.requests("openai")
    assert received["headers"]["authorization"] == f"Bearer {KEY}"
    body = received["body"]
    assert body["model"] == MODEL and body["max_tokens"] == 200 and "max_completion_tokens" not in body
    assert body["stream"] is True and body["stream_options"] == {"include_usage": True}


async def test_local_server_gets_no_authorization_header(sim: Any) -> None:
    local = OpenAIProvider("local", base_url=f"{sim.url}/local/v1", timeouts=SHORT)
    try:
        events = await run(local, ask("[[reply:local ok]]"), "qwen3:8b")
    finally:
        await local.aclose()
    assert collect(events).text() == "local ok"
    (received,) = sim.requests("local")
    assert "authorization" not in received["headers"]


def test_max_tokens_field_defaults_by_host() -> None:
    assert default_max_tokens_field("https://api.openai.com/v1") == "max_completion_tokens"
    assert default_max_tokens_field("http://127.0.0.1:11434/v1") == "max_tokens"
    assert OpenAIProvider("x", base_url="http://h/v1", max_tokens_field="max_completion_tokens").max_tokens_field \
        == "max_completion_tokens"


async def test_tool_call_round_trip(provider: OpenAIProvider, sim: Any) -> None:
    events = await run(provider, ask("[[tool:get_weather]] in Paris?", tools=(WEATHER,)))
    calls = [e for e in events if isinstance(e, ToolCall)]
    assert len(calls) == 1 and calls[0].name == "get_weather"
    assert "city" in calls[0].input()  # the arguments arrived whole, in one event
    assert events[-1] == Stop(StopReason.TOOL_USE, events[-1].usage)
    call = calls[0]
    follow_up = Request(model="caller-name", tools=(WEATHER,), messages=(
        Message("user", (Text("[[tool:get_weather]] in Paris?"),)),
        Message("assistant", (ToolUse(call.id, call.name, call.input()),)),
        Message("user", (ToolResult(call.id, (Text("18 C and sunny"),)),)),
    ))
    answer = collect(await run(provider, follow_up))
    assert answer.text() and answer.stop_reason is StopReason.END_TURN
    sent = sim.requests("openai")[-1]["body"]["messages"]
    assert sent[-1] == {"role": "tool", "tool_call_id": call.id, "content": "18 C and sunny"}


@pytest.mark.parametrize(("fault", "kind", "during_stream"), [
    ({"mode": "status", "status": 500}, FailureKind.SERVER_ERROR, False),
    ({"mode": "status", "status": 503}, FailureKind.OVERLOADED, False),
    ({"mode": "status", "status": 400, "code": "context_length_exceeded"}, FailureKind.CONTEXT_TOO_LONG, False),
    ({"mode": "status", "status": 400, "code": "content_policy_violation"}, FailureKind.CONTENT_FILTERED, False),
    ({"mode": "status", "status": 429, "code": "insufficient_quota"}, FailureKind.AUTH_FAILED, False),
    ({"mode": "status", "status": 400}, FailureKind.BAD_REQUEST, False),
    ({"mode": "auth"}, FailureKind.AUTH_FAILED, False),
    ({"mode": "reset"}, FailureKind.CONNECTION_LOST, False),
    ({"mode": "cut", "after_events": 3}, FailureKind.CONNECTION_LOST, True),
    ({"mode": "bad_event", "at_event": 3}, FailureKind.MALFORMED, True),
    ({"mode": "malformed"}, FailureKind.MALFORMED, True),
])
async def test_faults_become_the_right_failure(provider: OpenAIProvider, sim: Any, fault: dict[str, Any],
                                               kind: FailureKind, during_stream: bool) -> None:
    sim.add_fault(vendor="openai", **fault)
    error = await failure(provider, ask("[[reply:one two three four five six seven eight]]"))
    assert error.kind is kind, error
    assert error.during_stream is during_stream
    assert KEY not in error.message


async def test_rate_limit_carries_retry_after(provider: OpenAIProvider, sim: Any) -> None:
    sim.add_fault(vendor="openai", mode="status", status=429, retry_after=3)
    error = await failure(provider, ask("hi"))
    assert error.kind is FailureKind.RATE_LIMITED and error.retry_after == 3.0 and error.status == 429


async def test_unknown_model_is_not_found(provider: OpenAIProvider) -> None:
    error = await failure(provider, ask("hi"), "gpt-nonexistent")
    assert error.kind is FailureKind.NOT_FOUND


async def test_hang_times_out_before_the_first_token(provider: OpenAIProvider, sim: Any) -> None:
    sim.add_fault(vendor="openai", mode="hang")
    error = await failure(provider, ask("hi"))
    assert error.kind is FailureKind.TIMEOUT and error.phase is TimeoutPhase.FIRST_TOKEN


async def test_stall_mid_stream_times_out_idle(provider: OpenAIProvider, sim: Any) -> None:
    sim.add_fault(vendor="openai", mode="stall", after_events=3, seconds=12)
    error = await failure(provider, ask("[[reply:one two three four five six seven eight]]"))
    assert error.kind is FailureKind.TIMEOUT and error.phase is TimeoutPhase.IDLE and error.during_stream


async def test_stream_without_done_but_with_finish_reason_is_complete(provider: OpenAIProvider, sim: Any) -> None:
    sim.add_fault(vendor="openai", mode="no_terminator")
    response = collect(await run(provider, ask("[[reply:almost done]]")))
    assert response.text() == "almost done" and response.stop_reason is StopReason.END_TURN


async def test_blank_answer_is_passed_on_for_the_router_to_judge(provider: OpenAIProvider, sim: Any) -> None:
    sim.add_fault(vendor="openai", mode="blank")
    events = await run(provider, ask("hi"))
    assert isinstance(events[0], Start) and isinstance(events[-1], Stop)
    assert collect(events).text() == ""


async def test_slow_answer_still_arrives(provider: OpenAIProvider, sim: Any) -> None:
    sim.add_fault(vendor="openai", mode="slow", ttft_ms=100, gap_ms=10)
    assert collect(await run(provider, ask("[[reply:slow but sure]]"))).text() == "slow but sure"


async def test_a_plain_json_answer_is_accepted() -> None:
    """Some servers (and the overhead benchmark's nginx) answer a stream request with JSON."""
    completion = {"id": "chatcmpl-fixed", "object": "chat.completion", "created": 1, "model": "fixed-model",
                  "choices": [{"index": 0, "message": {"role": "assistant", "content": "fixed answer"},
                               "finish_reason": "stop"}],
                  "usage": {"prompt_tokens": 5, "completion_tokens": 2, "total_tokens": 7}}
    seen: list[dict[str, Any]] = []

    async def handler(request: web.Request) -> web.Response:
        seen.append({"body": await request.json(), "auth": request.headers.get("Authorization")})
        return web.Response(body=json.dumps(completion), content_type="application/json")

    app = web.Application()
    app.router.add_post("/v1/chat/completions", handler)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    provider = OpenAIProvider("fixed", base_url=f"http://127.0.0.1:{port}/v1", api_key="k", timeouts=SHORT)
    try:
        response = collect(await run(provider, ask("hi"), "fixed-model"))
    finally:
        await provider.aclose()
        await runner.cleanup()
    assert response.text() == "fixed answer" and response.model == "fixed-model"
    assert response.usage.input_tokens == 5 and response.usage.output_tokens == 2
    assert seen[0]["auth"] == "Bearer k" and seen[0]["body"]["stream"] is True


async def test_done_ends_the_stream_even_if_the_server_keeps_the_connection_open() -> None:
    async def handler(request: web.Request) -> web.StreamResponse:
        response = web.StreamResponse(headers={"content-type": "text/event-stream"})
        await response.prepare(request)
        await response.write(b'data: {"id":"c","model":"m","choices":[{"index":0,"delta":{"content":"hi"}}]}\n\n')
        await response.write(b'data: {"id":"c","model":"m","choices":[{"index":0,"delta":{},'
                             b'"finish_reason":"stop"}]}\n\ndata: [DONE]\n\n')
        await asyncio.sleep(2)  # longer than the idle deadline: waiting for EOF would time out
        return response

    app = web.Application()
    app.router.add_post("/v1/chat/completions", handler)
    runner = web.AppRunner(app, shutdown_timeout=0.1)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    provider = OpenAIProvider("lingering", base_url=f"http://127.0.0.1:{port}/v1", timeouts=SHORT)
    try:
        response = collect(await asyncio.wait_for(run(provider, ask("hi"), "m"), 2))
    finally:
        await provider.aclose()
        await runner.cleanup()
    assert response.text() == "hi" and response.stop_reason is StopReason.END_TURN
