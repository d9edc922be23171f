"""AnthropicProvider against the simulator over loopback: answers, faults, and what reached the vendor."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Any

import pytest
from aiohttp import web
from tests.conftest import FIXTURES, PROVIDER_KEYS
from tests.providers.support import expect_failure, stream_events

from outlast.dialects import anthropic_messages as am
from outlast.dialects.canonical import (
    Event,
    Message,
    Request,
    Start,
    Stop,
    StopReason,
    Text,
    ThinkingDelta,
    Tool,
    ToolCall,
    collect,
)
from outlast.providers.anthropic import AnthropicProvider
from outlast.providers.base import Timeouts, TokenCounter
from outlast.providers.errors import FailureKind, TimeoutPhase, UpstreamError

KEY = PROVIDER_KEYS["anthropic"]
MODEL = "claude-sonnet-4-6"
NAME = "anthropic-test"
CLIENTS = FIXTURES / "clients"
WEATHER = Tool("get_weather", "Weather for a city", {"type": "object", "properties": {"city": {"type": "string"}},
                                                      "required": ["city"]})


def ask(text: str, **changes: Any) -> Request:
    return Request(**{"model": "caller-name", "messages": (Message("user", (Text(text),)),), "max_tokens": 200,
                      **changes})


@pytest.fixture
async def provider(sim: Any) -> AsyncIterator[AnthropicProvider]:
    adapter = AnthropicProvider(NAME, base_url=f"{sim.url}/anthropic", api_key=KEY,
                                timeouts=Timeouts(connect=2, first_token=2.0, idle=1.5, total=20))
    yield adapter
    await adapter.aclose()


async def run(provider: AnthropicProvider, request: Request, model: str = MODEL) -> list[Event]:
    return await stream_events(provider, request, model)


async def fails(provider: AnthropicProvider, request: Request, model: str = MODEL) -> UpstreamError:
    return await expect_failure(provider, request, model, key=KEY)


# --------------------------------------------------------------------------- answers


async def test_streams_text_in_order(provider: AnthropicProvider, sim: Any) -> None:
    events = await run(provider, ask("[[reply:Hello there, dear friend]]"))
    assert isinstance(events[0], Start) and events[0].model == MODEL
    assert isinstance(events[-1], Stop) and events[-1].stop_reason is StopReason.END_TURN
    response = collect(events)
    assert response.text() == "Hello there, dear friend"
    assert response.usage.input_tokens > 0 and response.usage.output_tokens > 0


async def test_tool_call_arrives_whole(provider: AnthropicProvider) -> None:
    events = await run(provider, ask("[[tool:get_weather]]", tools=(WEATHER,)))
    calls = [e for e in events if isinstance(e, ToolCall)]
    assert len(calls) == 1 and calls[0].name == "get_weather" and calls[0].id.startswith("toolu_")
    assert isinstance(calls[0].input()["city"], str)
    assert events[-1] == Stop(StopReason.TOOL_USE, events[-1].usage)  # type: ignore[union-attr]


async def test_thinking_arrives_with_its_signature(provider: AnthropicProvider) -> None:
    events = await run(provider, ask("[[reply:ok]]", thinking={"type": "enabled", "budget_tokens": 1024},
                                     max_tokens=4000))
    signatures = [e.signature for e in events if isinstance(e, ThinkingDelta) and e.signature]
    assert len(signatures) == 1
    assert collect(events).content[0].thinking.startswith("Let me think")  # type: ignore[union-attr]


async def test_what_reached_the_vendor(provider: AnthropicProvider, sim: Any) -> None:
    request = ask("[[reply:hi]]", headers={"anthropic-version": "2026-10-21",
                                           "anthropic-beta": "context-management-2025-06-27"},
                  extra={"anthropic": {"output_config": {"effort": "low"}}, "openai": {"seed": 3}})
    await run(provider, request)
    [seen] = sim.requests("anthropic")
    headers = {k.lower(): v for k, v in seen["headers"].items()}
    assert seen["path"] == "/anthropic/v1/messages" and seen["method"] == "POST"
    assert headers["x-api-key"] == KEY and "authorization" not in headers
    assert headers["anthropic-version"] == "2026-10-21"
    assert headers["anthropic-beta"] == "context-management-2025-06-27"
    assert headers["content-type"] == "application/json" and headers["accept"] == "text/event-stream"
    body = seen["body"]
    assert body["model"] == MODEL and body["stream"] is True and body["max_tokens"] == 200
    assert body["output_config"] == {"effort": "low"} and "seed" not in body


async def test_version_defaults_when_the_caller_sent_none(provider: AnthropicProvider, sim: Any) -> None:
    await run(provider, ask("[[reply:hi]]"))
    headers = {k.lower(): v for k, v in sim.requests("anthropic")[0]["headers"].items()}
    assert headers["anthropic-version"] == "2023-06-01" and "anthropic-beta" not in headers


async def test_claude_code_first_turn_goes_through_whole(provider: AnthropicProvider, sim: Any) -> None:
    capture = json.loads((CLIENTS / "claude-code-2.1.197.jsonl").read_text().splitlines()[1])
    request = am.parse_request(capture["body"], capture["headers"])
    events = await run(provider, request, "claude-opus-4-8")
    assert isinstance(events[-1], Stop)
    body = sim.requests("anthropic")[0]["body"]
    assert len(body["tools"]) == 24 and body["thinking"] == {"type": "adaptive"}
    assert [m["role"] for m in body["messages"]] == ["user", "system"]  # the client's beta allows it
    assert body["context_management"] == capture["body"]["context_management"]


async def test_count_tokens(provider: AnthropicProvider, sim: Any) -> None:
    assert isinstance(provider, TokenCounter)
    tokens = await provider.count_tokens(ask("count these words please", tools=(WEATHER,)), MODEL)
    assert tokens > 1
    [seen] = sim.requests("anthropic")
    assert seen["path"] == "/anthropic/v1/messages/count_tokens"
    assert set(seen["body"]) == {"model", "messages", "tools"}
    assert {k.lower(): v for k, v in seen["headers"].items()}["x-api-key"] == KEY


async def test_count_tokens_failure_is_classified(provider: AnthropicProvider, sim: Any) -> None:
    sim.add_fault(vendor="anthropic", mode="status", status=529)
    with pytest.raises(UpstreamError) as caught:
        await provider.count_tokens(ask("x"), MODEL)
    assert caught.value.kind is FailureKind.OVERLOADED and caught.value.provider == NAME


# --------------------------------------------------------------------------- faults


@pytest.mark.parametrize(("fault", "kind", "status"), [
    ({"mode": "status", "status": 529}, FailureKind.OVERLOADED, 529),
    ({"mode": "status", "status": 500}, FailureKind.SERVER_ERROR, 500),
    ({"mode": "status", "status": 503}, FailureKind.OVERLOADED, 503),
    ({"mode": "status", "status": 400, "code": "context_length_exceeded"}, FailureKind.CONTEXT_TOO_LONG, 400),
    ({"mode": "status", "status": 400}, FailureKind.BAD_REQUEST, 400),
    ({"mode": "status", "status": 413}, FailureKind.BAD_REQUEST, 413),
    ({"mode": "status", "status": 402}, FailureKind.AUTH_FAILED, 402),
    ({"mode": "auth"}, FailureKind.AUTH_FAILED, 401),
], ids=["529", "500", "503", "context", "400", "413", "billing", "auth"])
async def test_error_statuses_are_classified(provider: AnthropicProvider, sim: Any, fault: dict[str, Any],
                                             kind: FailureKind, status: int) -> None:
    sim.add_fault(vendor="anthropic", **fault)
    error = await fails(provider, ask("[[reply:hi]]"))
    assert error.kind is kind and error.status == status and not error.during_stream


async def test_rate_limit_carries_retry_after(provider: AnthropicProvider, sim: Any) -> None:
    sim.add_fault(vendor="anthropic", mode="status", status=429, retry_after=7)
    error = await fails(provider, ask("[[reply:hi]]"))
    assert error.kind is FailureKind.RATE_LIMITED and error.retry_after == 7.0
    assert error.vendor_code == "rate_limit_error" and "rate limit" in error.message


async def test_unknown_model_is_not_found(provider: AnthropicProvider) -> None:
    error = await fails(provider, ask("[[reply:hi]]"), "claude-does-not-exist")
    assert error.kind is FailureKind.NOT_FOUND and error.status == 404


async def test_a_transient_fault_passes(provider: AnthropicProvider, sim: Any) -> None:
    sim.add_fault(vendor="anthropic", mode="status", status=529, count=1)
    await fails(provider, ask("[[reply:hi]]"))
    assert collect(await run(provider, ask("[[reply:second time lucky]]"))).text() == "second time lucky"


@pytest.mark.parametrize(("fault", "kind", "phase", "during_stream"), [
    ({"mode": "hang"}, FailureKind.TIMEOUT, TimeoutPhase.FIRST_TOKEN, False),
    ({"mode": "slow", "ttft_ms": 10000}, FailureKind.TIMEOUT, TimeoutPhase.FIRST_TOKEN, False),
    ({"mode": "stall", "after_events": 3, "seconds": 12}, FailureKind.TIMEOUT, TimeoutPhase.IDLE, True),
    ({"mode": "reset"}, FailureKind.CONNECTION_LOST, None, False),
    ({"mode": "cut", "after_events": 3}, FailureKind.CONNECTION_LOST, None, True),
    ({"mode": "bad_event", "at_event": 3}, FailureKind.MALFORMED, None, True),
    ({"mode": "malformed"}, FailureKind.MALFORMED, None, True),
], ids=["hang", "slow-first-token", "stall", "reset", "cut", "bad_event", "malformed"])
async def test_broken_deliveries_are_classified(provider: AnthropicProvider, sim: Any, fault: dict[str, Any],
                                                kind: FailureKind, phase: TimeoutPhase | None,
                                                during_stream: bool) -> None:
    sim.add_fault(vendor="anthropic", **fault)
    error = await fails(provider, ask("[[reply:one two three four five six seven]]"))
    assert error.kind is kind and error.phase is phase
    assert error.during_stream is during_stream


async def test_a_cut_stream_yields_what_arrived_before_failing(provider: AnthropicProvider, sim: Any) -> None:
    sim.add_fault(vendor="anthropic", mode="cut", after_events=5)
    received: list[Event] = []
    with pytest.raises(UpstreamError) as caught:
        async for event in provider.stream(ask("[[reply:one two three four five six seven]]"), MODEL):
            received.append(event)
    assert isinstance(received[0], Start) and len(received) > 1
    assert caught.value.kind is FailureKind.CONNECTION_LOST and caught.value.during_stream


async def test_a_stream_without_message_stop_still_completes(provider: AnthropicProvider, sim: Any) -> None:
    sim.add_fault(vendor="anthropic", mode="no_terminator")
    events = await run(provider, ask("[[reply:complete anyway]]"))
    assert collect(events).text() == "complete anyway" and isinstance(events[-1], Stop)


async def test_a_blank_answer_is_passed_on_for_the_router_to_judge(provider: AnthropicProvider, sim: Any) -> None:
    sim.add_fault(vendor="anthropic", mode="blank")
    events = await run(provider, ask("[[reply:anything]]"))
    assert isinstance(events[-1], Stop) and collect(events).text() == ""


async def test_a_slow_but_steady_stream_is_not_a_failure(provider: AnthropicProvider, sim: Any) -> None:
    sim.add_fault(vendor="anthropic", mode="slow", ttft_ms=200, gap_ms=50)
    assert collect(await run(provider, ask("[[reply:a b c d]]"))).text() == "a b c d"


# --------------------------------------------------------------------------- a JSON answer to a stream request


async def test_a_json_answer_to_a_stream_request_is_replayed_as_events(aiohttp_json_server: str) -> None:
    adapter = AnthropicProvider(NAME, base_url=aiohttp_json_server, api_key=KEY)
    try:
        events = await run(adapter, ask("hi"))
    finally:
        await adapter.aclose()
    response = collect(events)
    assert response.text() == "from json" and response.stop_reason is StopReason.END_TURN
    assert response.usage.input_tokens == 3 and response.usage.output_tokens == 2


@pytest.fixture
async def aiohttp_json_server() -> AsyncIterator[str]:
    async def messages(request: web.Request) -> web.Response:
        assert request.headers["x-api-key"] == KEY
        return web.json_response({"id": "msg_j", "type": "message", "role": "assistant", "model": MODEL,
                                  "content": [{"type": "text", "text": "from json"}], "stop_reason": "end_turn",
                                  "stop_sequence": None, "usage": {"input_tokens": 3, "output_tokens": 2}})

    app = web.Application()
    app.router.add_post("/v1/messages", messages)
    runner = web.AppRunner(app, shutdown_timeout=0.1)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    yield f"http://127.0.0.1:{port}"
    await runner.cleanup()
