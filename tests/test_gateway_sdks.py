"""The official SDKs against ``outlast serve`` in front of ``outlast sim``: every caller dialect
with every provider format, sync and async, streaming and not, with and without tools.

Each test body runs twice, on the sync and on the async client (the ``oa`` and ``an`` fixtures):
the calls go through a small wrapper that awaits what the async client returns."""

from __future__ import annotations

import inspect
import json
from collections.abc import AsyncIterator
from typing import Any

import anthropic
import httpx
import openai
import pytest

from tests.conftest import MASTER_KEY, PROVIDER_KEYS

# route -> (sim vendor, upstream model)
ROUTES = {
    "to-anthropic": ("anthropic", "claude-sonnet-4-6"),
    "to-openai": ("openai", "gpt-5.1"),
    "to-gemini": ("gemini", "gemini-2.5-flash"),
    "to-local": ("local", "qwen3:8b"),
}
WEATHER = {
    "name": "get_weather",
    "description": "Current weather for a city",
    "schema": {"type": "object", "properties": {"city": {"type": "string"}, "days": {"type": "integer"}},
               "required": ["city"]},
}


def openai_client(url: str) -> openai.OpenAI:
    return openai.OpenAI(base_url=f"{url}/v1", api_key=MASTER_KEY, max_retries=0, timeout=20)


def anthropic_client(url: str) -> anthropic.Anthropic:
    return anthropic.Anthropic(base_url=url, api_key=MASTER_KEY, max_retries=0, timeout=20)


async def _maybe(value: Any) -> Any:
    return await value if inspect.isawaitable(value) else value


class OpenAICalls:
    """The calls the tests make, on ``OpenAI`` or ``AsyncOpenAI``: one test body runs on both."""

    def __init__(self, url: str, sdk: str) -> None:
        kind = openai.AsyncOpenAI if sdk == "async" else openai.OpenAI
        self.client: Any = kind(base_url=f"{url}/v1", api_key=MASTER_KEY, max_retries=0, timeout=20)

    async def create(self, **kwargs: Any) -> Any:
        return await _maybe(self.client.chat.completions.create(**kwargs))

    async def create_raw(self, **kwargs: Any) -> tuple[Any, Any]:
        raw = await _maybe(self.client.chat.completions.with_raw_response.create(**kwargs))
        return await _maybe(raw.parse()), raw.headers

    async def chunks(self, **kwargs: Any) -> list[Any]:
        stream = await _maybe(self.client.chat.completions.create(stream=True, **kwargs))
        if isinstance(self.client, openai.AsyncOpenAI):
            return [chunk async for chunk in stream]
        return list(stream)

    async def aclose(self) -> None:
        await _maybe(self.client.close())


class AnthropicCalls:
    """The calls the tests make, on ``Anthropic`` or ``AsyncAnthropic``."""

    def __init__(self, url: str, sdk: str) -> None:
        kind = anthropic.AsyncAnthropic if sdk == "async" else anthropic.Anthropic
        self.client: Any = kind(base_url=url, api_key=MASTER_KEY, max_retries=0, timeout=20)

    async def create(self, **kwargs: Any) -> Any:
        return await _maybe(self.client.messages.create(**kwargs))

    async def create_raw(self, **kwargs: Any) -> tuple[Any, Any]:
        raw = await _maybe(self.client.messages.with_raw_response.create(**kwargs))
        return await _maybe(raw.parse()), raw.headers

    async def stream(self, **kwargs: Any) -> tuple[str, Any]:
        """The streamed text, as the SDK's text stream gave it, and the final message."""
        if isinstance(self.client, anthropic.AsyncAnthropic):
            async with self.client.messages.stream(**kwargs) as stream:
                text = "".join([t async for t in stream.text_stream])
                return text, await stream.get_final_message()
        with self.client.messages.stream(**kwargs) as stream:
            return "".join(stream.text_stream), stream.get_final_message()

    async def aclose(self) -> None:
        await _maybe(self.client.close())


@pytest.fixture(params=["sync", "async"])
async def oa(request: pytest.FixtureRequest, gateway: Any) -> AsyncIterator[OpenAICalls]:
    calls = OpenAICalls(gateway.url, request.param)
    yield calls
    await calls.aclose()


@pytest.fixture(params=["sync", "async"])
async def an(request: pytest.FixtureRequest, gateway: Any) -> AsyncIterator[AnthropicCalls]:
    calls = AnthropicCalls(gateway.url, request.param)
    yield calls
    await calls.aclose()


def assert_reached(sim: Any, vendor: str, model: str) -> dict[str, Any]:
    """Exactly one request reached ``vendor`` (and no other vendor), with the provider's key, not the caller's."""
    received = sim.requests()
    assert [r["vendor"] for r in received] == [vendor], received
    record: dict[str, Any] = received[0]
    assert record["model"] == model
    headers = {k.lower(): v for k, v in record["headers"].items()}
    presented = json.dumps(headers)
    assert MASTER_KEY not in presented
    if vendor in PROVIDER_KEYS:
        assert PROVIDER_KEYS[vendor] in presented
    return record


@pytest.mark.parametrize("route", list(ROUTES))
@pytest.mark.parametrize("stream", [False, True], ids=["json", "stream"])
async def test_openai_sdk_text(oa: OpenAICalls, sim: Any, route: str, stream: bool) -> None:
    vendor, model = ROUTES[route]
    messages = [{"role": "system", "content": "Be brief."},
                {"role": "user", "content": "Say the phrase. [[reply:The quick brown fox jumps.]]"}]
    if stream:
        chunks = await oa.chunks(model=route, messages=messages, max_tokens=64, stream_options={"include_usage": True})
        text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
        finish = [c.choices[0].finish_reason for c in chunks if c.choices and c.choices[0].finish_reason]
        usage = chunks[-1].usage
        assert chunks[-1].choices == []
        assert {c.model for c in chunks} == {model}
        assert finish == ["stop"]
    else:
        completion, headers = await oa.create_raw(model=route, messages=messages, max_tokens=64)
        text = completion.choices[0].message.content or ""
        assert completion.choices[0].finish_reason == "stop"
        assert completion.model == model
        usage = completion.usage
        assert headers["x-outlast-served-by"] == f"{vendor}/{model}"
        assert headers["x-outlast-fallback"] == "false"
        assert len(headers["x-outlast-exchange-id"]) == 32
    assert text == "The quick brown fox jumps."
    assert usage is not None and usage.prompt_tokens > 0 and usage.completion_tokens > 0
    assert usage.total_tokens == usage.prompt_tokens + usage.completion_tokens
    assert_reached(sim, vendor, model)


@pytest.mark.parametrize("route", list(ROUTES))
@pytest.mark.parametrize("stream", [False, True], ids=["json", "stream"])
async def test_anthropic_sdk_text(an: AnthropicCalls, sim: Any, route: str, stream: bool) -> None:
    vendor, model = ROUTES[route]
    kwargs: dict[str, Any] = dict(
        model=route, max_tokens=64, system="Be brief.",
        messages=[{"role": "user", "content": "Say it. [[reply:Pack my box with five dozen jugs.]]"}])
    if stream:
        text, message = await an.stream(**kwargs)
    else:
        message, headers = await an.create_raw(**kwargs)
        assert headers["x-outlast-served-by"] == f"{vendor}/{model}"
        assert headers["x-outlast-fallback"] == "false"
        text = "".join(b.text for b in message.content if b.type == "text")
    assert text == "Pack my box with five dozen jugs."
    assert message.model == model
    assert message.stop_reason == "end_turn"
    assert message.id.startswith("msg_")
    assert message.usage.input_tokens > 0 and message.usage.output_tokens > 0
    record = assert_reached(sim, vendor, model)
    if vendor == "anthropic":
        assert record["headers"].get("anthropic-version") or record["headers"].get("Anthropic-Version")


@pytest.mark.parametrize("route", list(ROUTES))
@pytest.mark.parametrize("stream", [False, True], ids=["json", "stream"])
async def test_openai_sdk_tool_round_trip(oa: OpenAICalls, sim: Any, route: str, stream: bool) -> None:
    vendor, model = ROUTES[route]
    tools = [{"type": "function", "function": {"name": WEATHER["name"], "description": WEATHER["description"],
                                               "parameters": WEATHER["schema"]}}]
    messages: list[dict[str, Any]] = [{"role": "user", "content": "Weather in Paris?"}]
    if stream:
        chunks = await oa.chunks(model=route, messages=messages, tools=tools, tool_choice="required", max_tokens=200)
        calls: dict[int, dict[str, str]] = {}
        for chunk in chunks:
            for delta in (chunk.choices[0].delta.tool_calls or []) if chunk.choices else []:
                call = calls.setdefault(delta.index, {"id": "", "name": "", "arguments": ""})
                call["id"] += delta.id or ""
                call["name"] += (delta.function.name or "") if delta.function else ""
                call["arguments"] += (delta.function.arguments or "") if delta.function else ""
        finish = [c.choices[0].finish_reason for c in chunks if c.choices and c.choices[0].finish_reason]
        assert finish == ["tool_calls"]
        assert len(calls) == 1
        call_id, name, arguments = calls[0]["id"], calls[0]["name"], calls[0]["arguments"]
    else:
        completion = await oa.create(model=route, messages=messages, tools=tools, tool_choice="required",
                                     max_tokens=200)
        assert completion.choices[0].finish_reason == "tool_calls"
        tool_calls = completion.choices[0].message.tool_calls or []
        assert len(tool_calls) == 1
        call_id, name = tool_calls[0].id, tool_calls[0].function.name
        arguments = tool_calls[0].function.arguments
    assert name == "get_weather"
    assert isinstance(json.loads(arguments)["city"], str)
    assert call_id
    # Second turn: the tool result goes back; the answer is text.
    messages += [
        {"role": "assistant", "content": None,
         "tool_calls": [{"id": call_id, "type": "function", "function": {"name": name, "arguments": arguments}}]},
        {"role": "tool", "tool_call_id": call_id, "content": "18 C and sunny"},
    ]
    completion = await oa.create(model=route, messages=messages, tools=tools, max_tokens=200)
    assert completion.choices[0].finish_reason == "stop"
    assert completion.choices[0].message.content
    second = sim.requests()[-1]
    assert "18 C and sunny" in json.dumps(second["body"])
    assert [(r["vendor"], r["model"]) for r in sim.requests()] == [(vendor, model)] * 2


@pytest.mark.parametrize("route", list(ROUTES))
@pytest.mark.parametrize("stream", [False, True], ids=["json", "stream"])
async def test_anthropic_sdk_tool_round_trip(an: AnthropicCalls, sim: Any, route: str, stream: bool) -> None:
    vendor, model = ROUTES[route]
    tools = [{"name": WEATHER["name"], "description": WEATHER["description"], "input_schema": WEATHER["schema"]}]
    messages: list[dict[str, Any]] = [{"role": "user", "content": "Weather in Paris?"}]
    kwargs: dict[str, Any] = dict(model=route, max_tokens=200, tools=tools, tool_choice={"type": "any"})
    if stream:
        _, message = await an.stream(messages=messages, **kwargs)
    else:
        message = await an.create(messages=messages, **kwargs)
    assert message.stop_reason == "tool_use"
    uses = [b for b in message.content if b.type == "tool_use"]
    assert len(uses) == 1
    assert uses[0].name == "get_weather"
    assert isinstance(uses[0].input["city"], str)
    messages += [
        {"role": "assistant", "content": [b.model_dump() for b in message.content]},
        {"role": "user", "content": [{"type": "tool_result", "tool_use_id": uses[0].id, "content": "18 C and sunny"}]},
    ]
    answer = await an.create(messages=messages, model=route, max_tokens=200, tools=tools)
    assert answer.stop_reason == "end_turn"
    assert any(b.type == "text" and b.text for b in answer.content)
    assert "18 C and sunny" in json.dumps(sim.requests()[-1]["body"])
    assert [(r["vendor"], r["model"]) for r in sim.requests()] == [(vendor, model)] * 2


def test_models_list_satisfies_both_sdks(gateway: Any) -> None:
    ids = [m.id for m in openai_client(gateway.url).models.list()]
    assert "to-anthropic" in ids and "claude-opus-4-6" in ids
    assert "claude-*" not in ids
    page = anthropic_client(gateway.url).models.list()
    assert [m.id for m in page.data] == ids


def test_count_tokens_exact_from_anthropic_and_approximate_elsewhere(gateway: Any, sim: Any) -> None:
    client = anthropic_client(gateway.url)
    messages = [{"role": "user", "content": "How many tokens is this sentence, roughly speaking?"}]
    raw = client.messages.with_raw_response.count_tokens(model="to-anthropic", messages=messages)  # type: ignore[arg-type]
    assert raw.headers["x-outlast-token-count"] == "exact"
    assert raw.parse().input_tokens > 0
    assert [r["vendor"] for r in sim.requests()] == ["anthropic"]
    raw = client.messages.with_raw_response.count_tokens(model="to-openai", messages=messages)  # type: ignore[arg-type]
    assert raw.headers["x-outlast-token-count"] == "approximate"
    assert 5 <= raw.parse().input_tokens <= 40


def test_master_key_is_required_in_both_header_styles(gateway: Any) -> None:
    body = {"model": "to-openai", "max_tokens": 8, "messages": [{"role": "user", "content": "hi"}]}
    with httpx.Client(base_url=gateway.url) as http:
        assert http.post("/v1/messages", json=body, headers={"x-api-key": MASTER_KEY}).status_code == 200
        assert http.post("/v1/messages", json=body,
                         headers={"authorization": f"Bearer {MASTER_KEY}"}).status_code == 200
        wrong = http.post("/v1/messages", json=body, headers={"x-api-key": "sk-wrong"})
        assert wrong.status_code == 401
        assert wrong.json()["error"]["type"] == "authentication_error"
        assert "sk-wrong" not in wrong.text
        missing = http.post("/v1/chat/completions", json=body)
        assert missing.status_code == 401
        assert "API key" in missing.json()["error"]["message"]


def test_client_headers_the_provider_needs_are_passed_on(gateway: Any, sim: Any) -> None:
    body = {"model": "to-anthropic", "max_tokens": 8, "messages": [{"role": "user", "content": "hi"}]}
    with httpx.Client(base_url=gateway.url) as http:
        response = http.post("/v1/messages?beta=true", json=body, headers={
            "x-api-key": MASTER_KEY, "anthropic-version": "2026-10-21",
            "anthropic-beta": "context-1m-2025-08-07,effort-2025-11-24", "x-app": "cli"})
    assert response.status_code == 200, response.text
    headers = {k.lower(): v for k, v in sim.requests()[0]["headers"].items()}
    assert headers["anthropic-version"] == "2026-10-21"
    assert headers["anthropic-beta"] == "context-1m-2025-08-07,effort-2025-11-24"
    assert headers["x-api-key"] == PROVIDER_KEYS["anthropic"]
    assert "x-app" not in headers
