"""The Anthropic-format vendor through the official anthropic SDK and raw SSE."""

from __future__ import annotations

import json
from typing import Any

import anthropic
import httpx
import pytest

from tests.sim.conftest import KEY

WEATHER = {"name": "get_weather", "description": "Weather for a city",
           "input_schema": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}}
HEADERS = {"x-api-key": KEY, "anthropic-version": "2023-06-01"}


def events_of(text: str) -> list[tuple[str, dict[str, Any]]]:
    out = []
    for frame in text.split("\n\n"):
        if not frame:
            continue
        event_line, data_line = frame.split("\n")
        assert event_line.startswith("event: ") and data_line.startswith("data: ")
        data = json.loads(data_line[6:])
        assert data["type"] == event_line[7:]
        out.append((event_line[7:], data))
    return out


def test_json_answer_has_the_documented_shape(an: anthropic.Anthropic, sim: Any) -> None:
    raw = an.messages.with_raw_response.create(
        model="claude-sonnet-4-6", max_tokens=100, system=[{"type": "text", "text": "Be terse.",
                                                             "cache_control": {"type": "ephemeral"}}],
        metadata={"user_id": "u-1"}, messages=[{"role": "user", "content": "[[reply:Hi there.]]"}])
    message = raw.parse()
    assert message.id.startswith("msg_01") and message.type == "message" and message.role == "assistant"
    assert message.model == "claude-sonnet-4-6"
    assert [(b.type, getattr(b, "text", None)) for b in message.content] == [("text", "Hi there.")]
    assert message.stop_reason == "end_turn" and message.stop_sequence is None
    assert message.usage.output_tokens == 3 and message.usage.input_tokens > 0
    assert raw.headers["request-id"].startswith("req_011C")
    assert raw.headers["anthropic-ratelimit-requests-remaining"]
    # anthropic 2.x presents its key as a bearer token
    assert sim.requests("anthropic")[-1]["headers"]["authorization"] == f"Bearer {KEY}"


def test_raw_stream_event_order(sim: Any) -> None:
    body = {"model": "claude-opus-4-8", "max_tokens": 100, "stream": True,
            "messages": [{"role": "user", "content": "[[reply:one two three]]"}]}
    response = httpx.post(f"{sim.url}/anthropic/v1/messages?beta=true", json=body, headers=HEADERS)
    assert response.headers["content-type"].startswith("text/event-stream")
    events = events_of(response.text)
    names = [name for name, _ in events]
    assert names == ["message_start", "content_block_start", "ping", "content_block_delta", "content_block_delta",
                     "content_block_delta", "content_block_stop", "message_delta", "message_stop"]
    start = events[0][1]["message"]
    assert start["content"] == [] and start["stop_reason"] is None and start["usage"]["input_tokens"] > 0
    assert events[1][1]["content_block"] == {"type": "text", "text": ""}
    assert "".join(d["delta"]["text"] for n, d in events if n == "content_block_delta") == "one two three"
    assert events[7][1]["delta"]["stop_reason"] == "end_turn"
    assert events[7][1]["usage"]["output_tokens"] == 4


def test_stream_and_json_agree(an: anthropic.Anthropic) -> None:
    kwargs: dict[str, Any] = {"model": "claude-haiku-4-5-20251001", "max_tokens": 300,
                              "messages": [{"role": "user", "content": "Tell me about failover."}]}
    whole = an.messages.create(**kwargs)
    with an.messages.stream(**kwargs) as stream:
        streamed = stream.get_final_message()
    assert [b.model_dump(include={"type", "text"}) for b in streamed.content] == \
        [b.model_dump(include={"type", "text"}) for b in whole.content]
    assert streamed.usage.output_tokens == whole.usage.output_tokens
    assert streamed.usage.input_tokens == whole.usage.input_tokens


def test_tool_use_streams_input_json_in_fragments(sim: Any, an: anthropic.Anthropic) -> None:
    body = {"model": "claude-sonnet-4-6", "max_tokens": 200, "stream": True, "tools": [WEATHER],
            "messages": [{"role": "user", "content": "Weather in Kyoto?"}]}
    events = events_of(httpx.post(f"{sim.url}/anthropic/v1/messages", json=body, headers=HEADERS).text)
    block = events[1][1]["content_block"]
    assert block["type"] == "tool_use" and block["name"] == "get_weather" and block["input"] == {}
    assert block["id"].startswith("toolu_")
    fragments = [d["delta"]["partial_json"] for n, d in events if n == "content_block_delta"]
    assert all(d["delta"]["type"] == "input_json_delta" for n, d in events if n == "content_block_delta")
    assert len([f for f in fragments if f]) >= 2
    assert isinstance(json.loads("".join(fragments))["city"], str)
    assert events[-2][1]["delta"]["stop_reason"] == "tool_use"
    # The SDK assembles the same call, and after the tool result the answer is text.
    with an.messages.stream(model="claude-sonnet-4-6", max_tokens=200, tools=[WEATHER],  # type: ignore[list-item]
                            messages=[{"role": "user", "content": "Weather in Kyoto?"}]) as stream:
        message = stream.get_final_message()
    use = message.content[0]
    assert use.type == "tool_use" and message.stop_reason == "tool_use"
    answer = an.messages.create(model="claude-sonnet-4-6", max_tokens=200, tools=[WEATHER],  # type: ignore[list-item]
                                messages=[{"role": "user", "content": "Weather in Kyoto?"},
                                          {"role": "assistant", "content": [use.model_dump()]},
                                          {"role": "user", "content": [{"type": "tool_result", "tool_use_id": use.id,
                                                                        "content": "31 C, humid"}]}])
    assert answer.stop_reason == "end_turn"
    assert answer.content[0].type == "text" and "31 C, humid" in answer.content[0].text


def test_tool_choice_none_and_reply_marker_give_text(an: anthropic.Anthropic) -> None:
    none = an.messages.create(model="claude-sonnet-4-6", max_tokens=50, tools=[WEATHER],  # type: ignore[list-item]
                              tool_choice={"type": "none"}, messages=[{"role": "user", "content": "hi"}])
    assert none.content[0].type == "text" and none.stop_reason == "end_turn"
    marked = an.messages.create(model="claude-sonnet-4-6", max_tokens=50, tools=[WEATHER],  # type: ignore[list-item]
                                messages=[{"role": "user", "content": "[[reply:no tool today]]"}])
    assert marked.content[0].type == "text" and marked.content[0].text == "no tool today"


def test_thinking_block_comes_first_with_a_signature(an: anthropic.Anthropic) -> None:
    kwargs: dict[str, Any] = {"model": "claude-haiku-4-5-20251001", "max_tokens": 2000,
                              "thinking": {"type": "enabled", "budget_tokens": 1024},
                              "messages": [{"role": "user", "content": "[[reply:Forty-two.]]"}]}
    with an.messages.stream(**kwargs) as stream:
        message = stream.get_final_message()
    assert [b.type for b in message.content] == ["thinking", "text"]
    thinking = message.content[0]
    assert thinking.type == "thinking" and thinking.thinking and thinking.signature
    assert message.content[1].type == "text" and message.content[1].text == "Forty-two."
    whole = an.messages.create(**kwargs).content
    assert [b.model_dump(exclude={"parsed_output"}) for b in whole] == \
        [b.model_dump(exclude={"parsed_output"}) for b in message.content]


async def test_async_client(sim: Any) -> None:
    client = anthropic.AsyncAnthropic(base_url=f"{sim.url}/anthropic", api_key=KEY, max_retries=0)
    try:
        async with client.messages.stream(model="claude-sonnet-5", max_tokens=50,
                                          messages=[{"role": "user", "content": "[[reply:async stream]]"}]) as s:
            assert "".join([t async for t in s.text_stream]) == "async stream"
        message = await client.messages.create(model="claude-sonnet-5", max_tokens=50,
                                               messages=[{"role": "user", "content": "[[reply:async json]]"}])
        assert message.content[0].type == "text" and message.content[0].text == "async json"
    finally:
        await client.close()


def test_count_tokens_and_models(an: anthropic.Anthropic) -> None:
    short = an.messages.count_tokens(model="claude-opus-4-6", messages=[{"role": "user", "content": "hi"}])
    long = an.messages.count_tokens(model="claude-opus-4-6", messages=[{"role": "user", "content": "hi " * 400}])
    assert 0 < short.input_tokens < long.input_tokens and long.input_tokens >= 300
    page = an.models.list()
    assert [m.id for m in page.data] == ["claude-opus-4-6", "claude-sonnet-4-6", "claude-opus-4-8",
                                         "claude-haiku-4-5-20251001", "claude-sonnet-5"]
    assert page.data[0].type == "model" and page.data[0].display_name == "Claude Opus 4.6"
    assert an.models.retrieve("claude-sonnet-5").display_name == "Claude Sonnet 5"


def test_unknown_model_is_not_found(an: anthropic.Anthropic) -> None:
    with pytest.raises(anthropic.NotFoundError) as caught:
        an.messages.create(model="claude-3-nope", max_tokens=5, messages=[{"role": "user", "content": "hi"}])
    assert caught.value.body == {"type": "error",
                                 "error": {"type": "not_found_error", "message": "model: claude-3-nope"},
                                 "request_id": caught.value.request_id}


def test_prefill_is_refused_by_newer_models_only(an: anthropic.Anthropic) -> None:
    messages: list[dict[str, Any]] = [{"role": "user", "content": "Count."}, {"role": "assistant", "content": "One,"}]
    for model in ("claude-opus-4-6", "claude-sonnet-5"):
        with pytest.raises(anthropic.BadRequestError) as caught:
            an.messages.create(model=model, max_tokens=20, messages=messages)  # type: ignore[arg-type]
        assert caught.value.body["error"] == {  # type: ignore[index]
            "type": "invalid_request_error",
            "message": "This model does not support assistant message prefill. The conversation must end with a "
                       "user message."}
    accepted = an.messages.create(model="claude-haiku-4-5-20251001", max_tokens=20, messages=messages)  # type: ignore[arg-type]
    assert accepted.content[0].type == "text"


def test_prompt_too_long(an: anthropic.Anthropic) -> None:
    with pytest.raises(anthropic.BadRequestError) as caught:
        an.messages.create(model="claude-opus-4-6", max_tokens=5,
                           messages=[{"role": "user", "content": "long " * 170_000}])
    message = caught.value.body["error"]["message"]  # type: ignore[index]
    assert message.startswith("prompt is too long: ") and message.endswith(" tokens > 200000 maximum")


def test_headers_the_real_api_requires(sim: Any) -> None:
    body = {"model": "claude-sonnet-4-6", "max_tokens": 5, "messages": [{"role": "user", "content": "hi"}]}
    url = f"{sim.url}/anthropic/v1/messages"
    no_version = httpx.post(url, json=body, headers={"x-api-key": KEY})
    assert no_version.status_code == 400
    assert no_version.json()["error"] == {"type": "invalid_request_error",
                                          "message": "anthropic-version: header is required"}
    no_key = httpx.post(url, json=body, headers={"anthropic-version": "2023-06-01"})
    assert no_key.status_code == 401 and no_key.json()["error"]["type"] == "authentication_error"
    for headers in ({"x-api-key": KEY}, {"authorization": f"Bearer {KEY}"}):
        response = httpx.post(url, json=body, headers={**headers, "anthropic-version": "2026-10-21",
                                                       "anthropic-beta": "context-1m-2025-08-07"})
        assert response.status_code == 200, response.text
    missing = httpx.post(url, json={"model": "claude-sonnet-4-6", "messages": []}, headers=HEADERS)
    assert missing.json()["error"]["message"] == "max_tokens: Field required"


def test_claude_code_shaped_request_is_accepted(sim: Any, fixtures_dir: Any) -> None:
    """The captured Claude Code body: system role inside messages, adaptive thinking, context_management..."""
    line = next(json.loads(raw) for raw in (fixtures_dir / "clients" / "claude-code-2.1.197.jsonl").open()
                if '"/v1/messages' in raw and '"tools"' in raw)
    body = line["body"]
    assert any(m["role"] == "system" for m in body["messages"])
    body = {**body, "model": "claude-opus-4-8", "stream": True}
    response = httpx.post(f"{sim.url}/anthropic/v1/messages?beta=true", json=body, timeout=10,
                          headers={**HEADERS, "anthropic-beta": "claude-code-20250219,effort-2025-11-24"})
    assert response.status_code == 200, response.text[:500]
    events = events_of(response.text)
    assert events[1][1]["content_block"]["type"] == "tool_use"  # tools offered, user turn last: it calls one
    assert events[-1][0] == "message_stop"
