"""OpenAI Chat Completions dialect: round trips, client captures, bad input, error classes."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Any

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from outlast.dialects import openai_chat as oc
from outlast.dialects.canonical import (
    Image,
    Message,
    Request,
    Response,
    Start,
    Stop,
    StopReason,
    Text,
    TextDelta,
    Thinking,
    ThinkingDelta,
    Tool,
    ToolCall,
    ToolChoice,
    ToolResult,
    ToolUse,
    Usage,
    collect,
    events_of,
)
from outlast.providers.errors import FailureKind, RequestError, UpstreamError
from outlast.providers.sse import SSEDecoder

# --------------------------------------------------------------------------- strategies

texts = st.text(min_size=1, max_size=30)
json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-10**6, 10**6) | st.text(max_size=10),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5), inner, max_size=3),
    max_leaves=8,
)
inputs = st.dictionaries(st.text(min_size=1, max_size=8).filter(lambda k: k != oc.RAW_ARGUMENTS), json_values,
                         max_size=4)
ids = st.from_regex(r"call_[A-Za-z0-9]{1,12}", fullmatch=True)
names = st.from_regex(r"[a-z][a-z0-9_]{0,15}", fullmatch=True)
images = st.one_of(
    st.builds(Image, media_type=st.sampled_from(["image/png", "image/jpeg"]),
              data=st.from_regex(r"[A-Za-z0-9+/]{4,20}={0,2}", fullmatch=True)),
    st.builds(Image, url=st.from_regex(r"https://example\.com/[a-z]{1,10}\.png", fullmatch=True)),
)
tool_uses = st.builds(ToolUse, ids, names, inputs)


@st.composite
def user_messages(draw: Any, results: bool) -> Message:
    parts: list[Any] = []
    if results:
        parts += [ToolResult(i, draw(st.sampled_from([(), (Text(draw(texts)),)])))
                  for i in draw(st.lists(ids, min_size=1, max_size=3, unique=True))]
    rest = draw(st.lists(st.one_of(texts.map(Text), images), min_size=0 if results else 1, max_size=3))
    return Message("user", (*parts, *rest))


@st.composite
def assistant_messages(draw: Any) -> Message:
    parts: list[Any] = [Text(t) for t in draw(st.lists(texts, max_size=1))]
    parts += draw(st.lists(tool_uses, min_size=0 if parts else 1, max_size=3, unique_by=lambda u: u.id))
    return Message("assistant", tuple(parts))


@st.composite
def conversations(draw: Any) -> tuple[Message, ...]:
    messages = [draw(user_messages(False))]
    for _ in range(draw(st.integers(0, 4))):
        if draw(st.booleans()):
            messages.append(Message("system", (Text(draw(texts)),)))
        messages.append(draw(assistant_messages()))
        messages.append(draw(user_messages(draw(st.booleans()))))
    return tuple(messages)


@st.composite
def requests(draw: Any) -> Request:
    tools = tuple(draw(st.lists(st.builds(Tool, names, st.none() | texts,
                                          st.just({"type": "object", "properties": {"x": {"type": "string"}}})),
                                max_size=3, unique_by=lambda t: t.name)))
    choice = None
    if tools:
        choice = draw(st.none() | st.builds(ToolChoice, st.sampled_from(["auto", "any", "none"]),
                                            disable_parallel=st.booleans())
                      | st.builds(ToolChoice, st.just("tool"), st.sampled_from([t.name for t in tools]),
                                  st.booleans()))
    return Request(
        model="gpt-test",
        messages=draw(conversations()),
        system=tuple(Text(t) for t in draw(st.lists(texts, max_size=1))),
        tools=tools,
        tool_choice=choice,
        max_tokens=draw(st.none() | st.integers(1, 10**6)),
        temperature=draw(st.none() | st.floats(0, 2)),
        top_p=draw(st.none() | st.floats(0, 1)),
        stop=tuple(draw(st.lists(texts, max_size=4))),
        stream=draw(st.booleans()),
        metadata=draw(st.sampled_from([{}, {"user_id": "user-42"}])),
    )


@st.composite
def responses(draw: Any) -> Response:
    content: list[Any] = [Text(t) for t in draw(st.lists(texts, max_size=1))]
    content += draw(st.lists(tool_uses, max_size=3, unique_by=lambda u: u.id))
    return Response(
        id="chatcmpl-test",
        model=draw(names),
        content=tuple(content),
        stop_reason=draw(st.sampled_from([StopReason.END_TURN, StopReason.MAX_TOKENS, StopReason.TOOL_USE,
                                          StopReason.CONTENT_FILTER])),
        usage=Usage(draw(st.integers(0, 10**6)), draw(st.integers(0, 10**6)), draw(st.integers(0, 10**6))),
    )


# --------------------------------------------------------------------------- round trips


@settings(max_examples=150, deadline=None)
@given(requests())
def test_request_round_trip(request: Request) -> None:
    body = oc.render_request(request, request.model, stream=request.stream)
    parsed = oc.parse_request(orjson.loads(orjson.dumps(body)))
    extra = {"openai": {"stream_options": {"include_usage": True}}} if request.stream else {}
    assert parsed == dataclasses.replace(request, extra=extra)


@settings(max_examples=150, deadline=None)
@given(responses())
def test_response_round_trip(response: Response) -> None:
    rendered = oc.render_response(response, message_id="chatcmpl-test")
    assert rendered["object"] == "chat.completion"
    assert oc.parse_response(orjson.loads(orjson.dumps(rendered))) == response


def sse_events(raw: bytes) -> list[tuple[str | None, str]]:
    decoder = SSEDecoder()
    out = []
    for line in raw.splitlines(keepends=True):  # bytes: only \r and \n end lines, as on the wire
        event = decoder.feed(line.decode())
        if event is not None:
            out.append((event.event, event.data))
    return out


def parse_stream(raw: bytes, *, finish: bool = True) -> list[Any]:
    parser = oc.StreamParser()
    events: list[Any] = []
    for name, data in sse_events(raw):
        events += parser.feed(name, data)
    if finish:
        events += parser.finish()
    return events


@settings(max_examples=150, deadline=None)
@given(responses())
def test_stream_round_trip(response: Response) -> None:
    renderer = oc.StreamRenderer(message_id="chatcmpl-test", include_usage=True)
    raw = b"".join(renderer.render(e) for e in events_of(response))
    assert raw.endswith(b"data: [DONE]\n\n")
    assert collect(parse_stream(raw)) == response


def test_stream_without_usage_has_no_usage_chunk() -> None:
    renderer = oc.StreamRenderer(message_id="c1", include_usage=False)
    raw = b"".join(renderer.render(e) for e in events_of(Response("c1", "m", (Text("hi"),), usage=Usage(5, 7))))
    chunks = [json.loads(d) for _, d in sse_events(raw) if d != "[DONE]"]
    assert all("usage" not in c for c in chunks)
    assert chunks[0]["choices"][0]["delta"] == {"role": "assistant", "content": ""}
    assert {c["id"] for c in chunks} == {"c1"} and {c["model"] for c in chunks} == {"m"}
    assert chunks[-1]["choices"][0]["finish_reason"] == "stop"


def test_thinking_is_not_rendered_to_chat_callers() -> None:
    renderer = oc.StreamRenderer(message_id="c1")
    assert renderer.render(ThinkingDelta(0, "hmm")) == b""
    rendered = oc.render_response(Response("x", "m", (Thinking("hmm"), Text("ok"))), message_id="c1")
    assert rendered["choices"][0]["message"]["content"] == "ok"


def test_in_stream_error_frame_is_what_the_openai_sdk_raises_on() -> None:
    frame = oc.StreamRenderer(message_id="c1").error("overloaded_error", "every candidate failed")
    (_name, data), = sse_events(frame)
    assert json.loads(data) == {"error": {"message": "every candidate failed", "type": "server_error",
                                          "param": None, "code": None}}
    assert b"[DONE]" not in frame


def test_comment_frame() -> None:
    assert oc.StreamRenderer(message_id="c").comment("served by local") == b": served by local\n\n"


# --------------------------------------------------------------------------- client captures


def sdk_chat_bodies(fixtures_dir: Path) -> list[dict[str, Any]]:
    lines = (fixtures_dir / "clients" / "python-sdks.jsonl").read_text().splitlines()
    return [r["body"] for r in map(json.loads, lines) if r["path"] == "/v1/chat/completions"]


def test_every_captured_sdk_chat_request_parses(fixtures_dir: Path) -> None:
    bodies = sdk_chat_bodies(fixtures_dir)
    assert len(bodies) == 4
    tools_call, streaming, tool_turn, image = (oc.parse_request(b) for b in bodies)

    assert tools_call.system == (Text("Be terse."),)
    assert tools_call.temperature == 0.2 and tools_call.tool_choice == ToolChoice("auto")
    assert tools_call.tools[0].name == "get_weather"
    assert tools_call.tools[0].input_schema["required"] == ["city"]

    assert streaming.stream is True
    assert streaming.extra == {"openai": {"stream_options": {"include_usage": True}}}

    assert [m.role for m in tool_turn.messages] == ["user", "assistant", "user"]
    assert tool_turn.messages[1].content == (ToolUse("call_1", "get_weather", {"city": "Paris"}),)
    assert tool_turn.messages[2].content == (ToolResult("call_1", (Text("18C, clear"),)),)

    assert image.messages[0].content == (Text("What is in this image?"),
                                         Image(media_type="image/png", data="iVBORw0KGgo="))


def test_captured_sdk_requests_render_back_unchanged(fixtures_dir: Path) -> None:
    for body in sdk_chat_bodies(fixtures_dir):
        request = oc.parse_request(body)
        rendered = oc.render_request(request, body["model"], stream=request.stream)
        assert oc.parse_request(rendered) == request


# --------------------------------------------------------------------------- inbound conventions


def test_system_and_developer_messages() -> None:
    request = oc.parse_request({"model": "m", "messages": [
        {"role": "developer", "content": "A"},
        {"role": "system", "content": [{"type": "text", "text": "B"}]},
        {"role": "user", "content": "hi"},
        {"role": "system", "content": "late"},
    ]})
    assert request.system == (Text("A"), Text("B"))
    assert request.messages[1] == Message("system", (Text("late"),))


def test_consecutive_tool_messages_and_the_next_user_turn_form_one_user_message() -> None:
    request = oc.parse_request({"model": "m", "messages": [
        {"role": "user", "content": "go"},
        {"role": "assistant", "content": None, "tool_calls": [
            {"id": "a", "type": "function", "function": {"name": "f", "arguments": "{not json"}},
            {"id": "b", "type": "function", "function": {"name": "g", "arguments": ""}}]},
        {"role": "tool", "tool_call_id": "a", "content": "one"},
        {"role": "tool", "tool_call_id": "b", "content": [{"type": "text", "text": "two"}]},
        {"role": "user", "content": "and?"},
    ]})
    assert request.messages[1].content == (ToolUse("a", "f", {"_raw": "{not json"}), ToolUse("b", "g", {}))
    assert request.messages[2] == Message("user", (ToolResult("a", (Text("one"),)), ToolResult("b", (Text("two"),)),
                                                   Text("and?")))
    # Invalid arguments are sent back exactly as they came.
    assistant = oc.render_request(request, "m", stream=False)["messages"][1]
    assert assistant["tool_calls"][0]["function"]["arguments"] == "{not json"


def test_unmodelled_fields_travel_in_extra_and_n_above_one_is_refused() -> None:
    body = {"model": "m", "messages": [{"role": "user", "content": "x"}], "seed": 7,
            "response_format": {"type": "json_object"}, "max_completion_tokens": 9, "max_tokens": 3,
            "user": "u1", "stop": "END", "parallel_tool_calls": False, "n": 1}
    request = oc.parse_request(body)
    assert request.extra == {"openai": {"seed": 7, "response_format": {"type": "json_object"}}}
    assert request.max_tokens == 9 and request.stop == ("END",) and request.metadata == {"user_id": "u1"}
    assert request.tool_choice == ToolChoice("auto", disable_parallel=True)
    with pytest.raises(RequestError) as info:
        oc.parse_request({**body, "n": 2})
    assert info.value.param == "n"


BAD = [
    ([], None, "request body"),
    ({"messages": [{"role": "user", "content": "x"}]}, "model", "model: field required"),
    ({"model": "m"}, "messages", "messages: field required"),
    ({"model": "m", "messages": []}, "messages", "non-empty"),
    ({"model": "m", "messages": [{"role": "user", "content": "x"}, {"role": "user", "content": 5}]},
     "messages[1].content", "messages[1].content: expected a string or a list of content parts"),
    ({"model": "m", "messages": [{"role": "robot", "content": "x"}]}, "messages[0].role", "robot"),
    ({"model": "m", "messages": [{"role": "user", "content": [{"type": "input_audio"}]}]},
     "messages[0].content[0].type", "input_audio"),
    ({"model": "m", "messages": [{"role": "user", "content": [
        {"type": "image_url", "image_url": {"url": "data:image/png,xyz"}}]}]},
     "messages[0].content[0].image_url.url", "base64"),
    ({"model": "m", "messages": [{"role": "tool", "content": "x"}]}, "messages[0].tool_call_id", "field required"),
    ({"model": "m", "messages": [{"role": "assistant", "tool_calls": [{"id": "a", "function": {}}]}]},
     "messages[0].tool_calls[0].function.name", "field required"),
    ({"model": "m", "messages": [{"role": "user", "content": "x"}], "max_tokens": 0}, "max_tokens",
     "max_tokens: must be a positive integer"),
    ({"model": "m", "messages": [{"role": "user", "content": "x"}], "max_tokens": True}, "max_tokens", "positive"),
    ({"model": "m", "messages": [{"role": "user", "content": "x"}], "temperature": 3}, "temperature", "between"),
    ({"model": "m", "messages": [{"role": "user", "content": "x"}], "stop": [1]}, "stop", "stop:"),
    ({"model": "m", "messages": [{"role": "user", "content": "x"}], "tools": [{"type": "function"}]},
     "tools[0].function", "field required"),
    ({"model": "m", "messages": [{"role": "user", "content": "x"}], "tools": [{"type": "web_search"}]},
     "tools[0].type", "only function tools"),
    ({"model": "m", "messages": [{"role": "user", "content": "x"}], "tool_choice": "sometimes"}, "tool_choice",
     "tool_choice:"),
    ({"model": "m", "messages": [{"role": "user", "content": "x"}], "stream": "yes"}, "stream", "boolean"),
]


@pytest.mark.parametrize(("body", "param", "fragment"), BAD)
def test_bad_requests_name_the_field(body: Any, param: str | None, fragment: str) -> None:
    with pytest.raises(RequestError) as info:
        oc.parse_request(body)
    assert info.value.status == 400
    assert info.value.param == param
    assert fragment in info.value.message


@pytest.mark.parametrize(("kind", "type_", "code"), [
    ("invalid_request_error", "invalid_request_error", None),
    ("authentication_error", "invalid_request_error", "invalid_api_key"),
    ("rate_limit_error", "requests", "rate_limit_exceeded"),
    ("overloaded_error", "server_error", None),
    ("api_error", "server_error", None),
])
def test_error_body_uses_openai_types(kind: str, type_: str, code: str | None) -> None:
    body = oc.error_body(400, kind, "why", "messages")
    assert body == {"error": {"message": "why", "type": type_, "param": "messages", "code": code}}
    assert oc.error_body(404, "not_found_error", "no", code="model_not_found")["error"]["code"] == "model_not_found"


# --------------------------------------------------------------------------- outbound


def test_render_request_from_an_anthropic_shaped_request() -> None:
    request = Request(
        model="claude-x",
        system=(Text("one", cache_control={"type": "ephemeral"}), Text("two")),
        messages=(
            Message("user", (Text("look"), Image(media_type="image/png", data="AAAA"))),
            Message("system", (Text("mid"),)),
            Message("assistant", (Thinking("hmm", signature="sig"), Text("calling"),
                                  ToolUse("tu1", "bash", {"cmd": "ls"}))),
            Message("user", (ToolResult("tu1", (Text("a.txt"), Image(url="https://x/y.png")), is_error=True),
                             Text("thanks"))),
        ),
        tools=(Tool("bash", "run", {"type": "object", "properties": {"cmd": {"type": "string"}}}),),
        tool_choice=ToolChoice("tool", "bash", disable_parallel=True),
        max_tokens=100,
        stop=("X",),
        thinking={"type": "adaptive"},
        metadata={"user_id": "x" * 100},
        extra={"anthropic": {"output_config": {"effort": "high"}}, "openai": {"seed": 3}},
    )
    body = oc.render_request(request, "gpt-5.1", stream=True, max_tokens_field="max_completion_tokens")
    assert body["messages"] == [
        {"role": "system", "content": "one\n\ntwo"},
        {"role": "user", "content": [{"type": "text", "text": "look"},
                                     {"type": "image_url", "image_url": {"url": "data:image/png;base64,AAAA"}}]},
        {"role": "system", "content": "mid"},
        {"role": "assistant", "content": "calling", "tool_calls": [
            {"id": "tu1", "type": "function", "function": {"name": "bash", "arguments": '{"cmd":"ls"}'}}]},
        {"role": "tool", "tool_call_id": "tu1", "content": "a.txt"},
        {"role": "user", "content": [{"type": "image_url", "image_url": {"url": "https://x/y.png"}},
                                     {"type": "text", "text": "thanks"}]},
    ]
    assert body["max_completion_tokens"] == 100 and "max_tokens" not in body
    assert body["tool_choice"] == {"type": "function", "function": {"name": "bash"}}
    assert body["parallel_tool_calls"] is False
    assert body["stream_options"] == {"include_usage": True} and body["stream"] is True
    assert body["seed"] == 3 and "output_config" not in body and "user" not in body


def test_tool_choice_is_not_sent_without_tools() -> None:
    request = Request("m", (Message("user", (Text("x"),)),), tool_choice=ToolChoice("any"))
    body = oc.render_request(request, "m", stream=False)
    assert "tool_choice" not in body and "stream" not in body and "stream_options" not in body


def chunk(delta: dict[str, Any] | None = None, finish: str | None = None, **extra: Any) -> str:
    choices = [] if delta is None else [{"index": 0, "delta": delta, "finish_reason": finish}]
    return json.dumps({"id": "u1", "model": "gpt-up", "choices": choices, **extra})


def test_tool_call_deltas_are_held_until_complete() -> None:
    parser = oc.StreamParser()
    events = parser.feed(None, chunk({"role": "assistant", "content": ""}))
    assert events == [Start("u1", "gpt-up")]
    assert parser.feed(None, chunk({"content": "Let me"})) == [TextDelta(0, "Let me")]
    assert parser.feed(None, chunk({"tool_calls": [
        {"index": 0, "id": "c0", "type": "function", "function": {"name": "f", "arguments": ""}}]})) == []
    assert parser.feed(None, chunk({"tool_calls": [{"index": 0, "function": {"arguments": '{"a":'}}]})) == []
    assert parser.feed(None, chunk({"tool_calls": [{"index": 0, "function": {"arguments": "1}"}}]})) == []
    # A later tool index completes the earlier one.
    second = chunk({"tool_calls": [{"index": 1, "id": "c1", "function": {"name": "g", "arguments": "{}"}}]})
    assert parser.feed(None, second) == [ToolCall(1, "c0", "f", '{"a":1}')]
    assert parser.feed(None, chunk({}, "tool_calls")) == [ToolCall(2, "c1", "g", "{}")]
    usage = {"prompt_tokens": 10, "completion_tokens": 4, "prompt_tokens_details": {"cached_tokens": 6}}
    assert parser.feed(None, chunk(None, usage=usage)) == []
    assert parser.feed(None, "[DONE]") == [Stop(StopReason.TOOL_USE, Usage(4, 4, 6))]
    assert parser.finish() == []


def test_reasoning_fields_of_compatible_servers_become_thinking() -> None:
    parser = oc.StreamParser()
    events = parser.feed(None, chunk({"reasoning": "think"})) + parser.feed(None, chunk({"content": "answer"}))
    assert events[1:] == [ThinkingDelta(0, "think"), TextDelta(1, "answer")]


def test_stream_complete_without_done_and_stream_cut_off() -> None:
    parser = oc.StreamParser()
    parser.feed(None, chunk({"content": "hi"}, "length"))
    assert parser.finish() == [Stop(StopReason.MAX_TOKENS, Usage())]
    cut = oc.StreamParser()
    cut.feed(None, chunk({"content": "hi"}))
    with pytest.raises(UpstreamError) as info:
        cut.finish()
    assert info.value.kind is FailureKind.CONNECTION_LOST and info.value.during_stream


def test_stream_errors() -> None:
    parser = oc.StreamParser()
    parser.feed(None, chunk({"content": "hi"}))
    with pytest.raises(UpstreamError) as info:
        parser.feed(None, json.dumps({"error": {"message": "The server had an error", "type": "server_error"}}))
    assert info.value.kind is FailureKind.SERVER_ERROR and info.value.during_stream
    with pytest.raises(UpstreamError) as info:
        oc.StreamParser().feed(None, "{not json")
    assert info.value.kind is FailureKind.MALFORMED and info.value.during_stream


def test_parse_response_rejects_wrong_shapes() -> None:
    for body in ([], {"choices": []}, {"choices": [{"message": "x"}]}):
        with pytest.raises(UpstreamError) as info:
            oc.parse_response(body)
        assert info.value.kind is FailureKind.MALFORMED


def err(error: Any) -> bytes:
    return json.dumps({"error": error}).encode()


@pytest.mark.parametrize(("status", "body", "headers", "kind", "retry_after"), [
    (429, err({"message": "Rate limit reached", "type": "requests", "code": "rate_limit_exceeded"}),
     {"retry-after": "7"}, FailureKind.RATE_LIMITED, 7.0),
    (429, err({"message": "slow down", "type": "tokens"}), {"retry-after-ms": "1500"}, FailureKind.RATE_LIMITED, 1.5),
    (429, err({"message": "You exceeded your current quota", "type": "insufficient_quota",
               "code": "insufficient_quota"}), {}, FailureKind.AUTH_FAILED, None),
    (400, err({"message": "too long", "type": "invalid_request_error", "code": "context_length_exceeded"}), {},
     FailureKind.CONTEXT_TOO_LONG, None),
    (400, json.dumps({"object": "error", "message": "This model's maximum context length is 4096 tokens.",
                      "type": "BadRequestError", "code": 400}).encode(), {}, FailureKind.CONTEXT_TOO_LONG, None),
    (400, err({"message": "flagged", "type": "invalid_request_error", "code": "content_policy_violation"}), {},
     FailureKind.CONTENT_FILTERED, None),
    (400, err({"message": "bad param", "type": "invalid_request_error"}), {}, FailureKind.BAD_REQUEST, None),
    (401, err({"message": "Incorrect API key provided: sk-abc123456789xyz.", "code": "invalid_api_key"}), {},
     FailureKind.AUTH_FAILED, None),
    (403, b"", {}, FailureKind.AUTH_FAILED, None),
    (404, err({"message": "The model `x` does not exist", "code": "model_not_found"}), {}, FailureKind.NOT_FOUND,
     None),
    (404, err("model 'qwen9' not found, try pulling it first"), {}, FailureKind.NOT_FOUND, None),  # Ollama
    (500, err({"message": "The server had an error", "type": "server_error"}), {}, FailureKind.SERVER_ERROR, None),
    (502, b"<html><body><h1>502 Bad Gateway</h1></body></html>", {}, FailureKind.SERVER_ERROR, None),
    (503, err({"message": "overloaded"}), {"retry-after": "2"}, FailureKind.OVERLOADED, 2.0),
    (422, b"{}", {}, FailureKind.BAD_REQUEST, None),
])
def test_classify_error(status: int, body: bytes, headers: dict[str, str], kind: FailureKind,
                        retry_after: float | None) -> None:
    error = oc.classify_error(status, body, headers)
    assert error.kind is kind
    assert error.status == status
    assert error.retry_after == retry_after
    assert "<html" not in error.message and len(error.message) <= 300
    assert "sk-abc123456789xyz" not in error.message
