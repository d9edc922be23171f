"""The Anthropic Messages dialect: round trips, real client captures, bad input, error classification."""

from __future__ import annotations

import json
from typing import Any

import anthropic
import httpx2
import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pydantic import TypeAdapter
from tests.conftest import FIXTURES

from outlast.dialects import anthropic_messages as am
from outlast.dialects.canonical import (
    Event,
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
    dumps,
    events_of,
    merge_usage,
)
from outlast.providers.errors import FailureKind, RequestError, UpstreamError
from outlast.providers.sse import SSEDecoder

CLIENTS = FIXTURES / "clients"
MID_SYSTEM_BETA = "claude-code-20250219,mid-conversation-system-2026-04-07"
EPHEMERAL = {"type": "ephemeral"}
STREAM_EVENT = TypeAdapter(anthropic.types.RawMessageStreamEvent)


# --------------------------------------------------------------------------- strategies

json_scalars = st.none() | st.booleans() | st.integers(-(2**53), 2**53) | st.floats(allow_nan=False,
                                                                                     allow_infinity=False) | st.text()
json_values = st.recursive(json_scalars, lambda inner: st.lists(inner, max_size=3)
                           | st.dictionaries(st.text(max_size=8), inner, max_size=3), max_leaves=8)
json_objects = st.dictionaries(st.text(max_size=8), json_values, max_size=4)
words = st.text(min_size=1, max_size=30)
ids = st.text(st.characters(categories=("L", "N")), min_size=1, max_size=12)
cache = st.sampled_from([None, EPHEMERAL])
texts = st.builds(Text, words, cache)
images = st.one_of(
    st.builds(Image, st.sampled_from(["image/png", "image/jpeg", "application/pdf"]), data=ids, cache_control=cache),
    st.builds(Image, st.sampled_from([None, "application/pdf"]), url=words.map(lambda s: "https://x.test/" + s),
              cache_control=cache),
)
tool_results = st.builds(ToolResult, ids, st.lists(texts | images, max_size=3).map(tuple), st.booleans(), cache)
tool_uses = st.builds(ToolUse, ids, ids, json_objects, cache)
thinkings = st.builds(Thinking, st.text(max_size=20), ids) | st.builds(Thinking, redacted=ids)
user_messages = st.builds(Message, st.just("user"), st.lists(texts | images | tool_results, max_size=4).map(tuple))
assistant_messages = st.builds(Message, st.just("assistant"),
                               st.lists(texts | tool_uses | thinkings, max_size=4).map(tuple))
system_messages = st.builds(Message, st.just("system"), st.lists(texts, min_size=1, max_size=2).map(tuple))
choices = st.one_of(
    st.none(),
    st.builds(ToolChoice, st.sampled_from(["auto", "any"]), st.none(), st.booleans()),
    st.builds(ToolChoice, st.just("tool"), ids, st.booleans()),
    st.just(ToolChoice("none")),
)
thinking_options = st.sampled_from([None, {"type": "adaptive"}, {"type": "disabled"},
                                    {"type": "enabled", "budget_tokens": 2048}])
unit = st.floats(0.0, 1.0, allow_nan=False)


@st.composite
def requests(draw: st.DrawFn) -> Request:
    mid_system = draw(st.booleans())
    message_kinds = user_messages | assistant_messages | (system_messages if mid_system else user_messages)
    extra = draw(st.sampled_from([{}, {"anthropic": {"output_config": {"effort": "high"},
                                                     "context_management": {"edits": []}}}]))
    return Request(
        model=draw(ids),
        messages=tuple(draw(st.lists(message_kinds, min_size=1, max_size=5))),
        system=tuple(draw(st.lists(texts, max_size=3))),
        tools=tuple(draw(st.lists(st.builds(Tool, ids, st.none() | words, json_objects, cache), max_size=3))),
        tool_choice=draw(choices),
        max_tokens=draw(st.integers(1, 200_000)),
        temperature=draw(st.none() | unit),
        top_p=draw(st.none() | unit),
        top_k=draw(st.none() | st.integers(0, 500)),
        stop=tuple(draw(st.lists(words, max_size=3))),
        stream=draw(st.booleans()),
        metadata=draw(st.sampled_from([{}, {"user_id": "u-1"}])),
        thinking=draw(thinking_options),
        extra=extra,
        headers={"anthropic-version": "2023-06-01", "anthropic-beta": MID_SYSTEM_BETA} if mid_system else {},
    )


usages = st.builds(Usage, st.integers(0, 10**6), st.integers(0, 10**6), st.integers(0, 10**6),
                   st.integers(0, 10**6))
stop_reasons = st.none() | st.sampled_from(list(StopReason))


@st.composite
def event_streams(draw: st.DrawFn) -> list[Event]:
    """A canonical stream with blocks at contiguous indices, each delta carrying one thing."""
    events: list[Event] = [Start(draw(ids), draw(ids), draw(usages))]
    for index in range(draw(st.integers(0, 5))):
        kind = draw(st.sampled_from(["text", "thinking", "redacted", "tool"]))
        if kind == "text":
            events.extend(TextDelta(index, t) for t in draw(st.lists(words, min_size=1, max_size=4)))
        elif kind == "thinking":
            events.extend(ThinkingDelta(index, t) for t in draw(st.lists(words, max_size=3)))
            events.append(ThinkingDelta(index, signature=draw(ids)))
        elif kind == "redacted":
            events.append(ThinkingDelta(index, redacted=draw(ids)))
        else:
            events.append(ToolCall(index, draw(ids), draw(ids), dumps(draw(json_objects))))
    events.append(Stop(draw(stop_reasons), draw(usages), draw(st.none() | words)))
    return events


def sse_frames(raw: bytes) -> list[tuple[str | None, str]]:
    decoder = SSEDecoder()
    frames = []
    for line in raw.split(b"\n"):  # SSE lines end at CR/LF only, never at U+0085 or U+2028
        event = decoder.feed(line.decode())
        if event is not None:
            frames.append((event.event, event.data))
    assert decoder.flush() is None, "every frame ends with a blank line"
    return frames


def parse_stream(raw: bytes) -> list[Event]:
    parser = am.StreamParser()
    events: list[Event] = []
    for name, data in sse_frames(raw):
        events.extend(parser.feed(name, data))
    return events + parser.finish()


def render_all(events: list[Event], message_id: str = "msg_test") -> bytes:
    renderer = am.StreamRenderer(message_id=message_id)
    return b"".join(renderer.render(e) for e in events)


# --------------------------------------------------------------------------- round trips


@settings(max_examples=300, suppress_health_check=[HealthCheck.too_slow])
@given(requests())
def test_request_round_trips_through_the_wire_form(request: Request) -> None:
    body = am.render_request(request, request.model, stream=request.stream)
    wire = orjson.loads(orjson.dumps(body))  # what really travels
    assert am.parse_request(wire, request.headers) == request


@settings(max_examples=200)
@given(st.builds(Response, ids, ids, st.lists(st.builds(Text, st.text(max_size=20)) | tool_uses.map(
    lambda t: ToolUse(t.id, t.name, t.input)) | thinkings | st.builds(Thinking, st.text(max_size=9)),
    max_size=4).map(tuple), stop_reasons, st.none() | words, usages))
def test_response_round_trips_and_is_a_valid_sdk_message(response: Response) -> None:
    body = am.render_response(response, message_id="msg_x")
    anthropic.types.Message.model_validate(body)
    parsed = am.parse_response(orjson.loads(orjson.dumps(body)))
    expected_content = tuple(Thinking(p.thinking, p.signature or None, p.redacted) if isinstance(p, Thinking) else p
                             for p in response.content)
    assert parsed == Response("msg_x", response.model, expected_content, response.stop_reason,
                              response.stop_sequence, response.usage)


@settings(max_examples=200)
@given(event_streams())
def test_stream_round_trips_event_for_event(events: list[Event]) -> None:
    raw = render_all(events, "msg_rt")
    start, stop = events[0], events[-1]
    assert isinstance(start, Start) and isinstance(stop, Stop)
    expected = [Start("msg_rt", start.model, start.usage), *events[1:-1],
                Stop(stop.stop_reason, merge_usage(start.usage, stop.usage), stop.stop_sequence)]
    assert parse_stream(raw) == expected
    for name, data in sse_frames(raw):
        payload = json.loads(data)
        assert payload["type"] == name
        if name != "ping":  # the SDK types leave ping out of the union
            STREAM_EVENT.validate_python(payload)


@settings(max_examples=100)
@given(event_streams())
def test_stream_renders_contiguous_blocks_whatever_the_canonical_indices(events: list[Event]) -> None:
    shifted = [_shift(e) for e in events]  # indices 7, 10, 13, ...
    raw = render_all(shifted)
    starts = [json.loads(d)["index"] for n, d in sse_frames(raw) if n == "content_block_start"]
    assert starts == list(range(len(starts)))
    parsed = collect(parse_stream(raw))
    original = collect(events)
    assert parsed.content == original.content and parsed.usage == original.usage


def _shift(event: Event) -> Event:
    if isinstance(event, TextDelta):
        return TextDelta(event.index * 3 + 7, event.text)
    if isinstance(event, ThinkingDelta):
        return ThinkingDelta(event.index * 3 + 7, event.thinking, event.signature, event.redacted)
    if isinstance(event, ToolCall):
        return ToolCall(event.index * 3 + 7, event.id, event.name, event.arguments)
    return event


def test_stream_events_carry_event_lines_and_open_with_a_ping() -> None:
    raw = render_all([Start("m", "claude-x", Usage(input_tokens=12)), TextDelta(0, "Hi"), TextDelta(0, " there"),
                      Stop(StopReason.END_TURN, Usage(output_tokens=3))])
    names = [n for n, _ in sse_frames(raw)]
    assert names == ["message_start", "ping", "content_block_start", "content_block_delta", "content_block_delta",
                     "content_block_stop", "message_delta", "message_stop"]
    delta = json.loads(sse_frames(raw)[6][1])
    assert delta["usage"] == {"input_tokens": 0, "cache_creation_input_tokens": 0, "cache_read_input_tokens": 0,
                              "output_tokens": 3}
    assert delta["delta"] == {"stop_reason": "end_turn", "stop_sequence": None}


def test_interleaved_text_and_tool_call_close_and_reopen_blocks() -> None:
    events: list[Event] = [Start("m", "x"), TextDelta(0, "Let me look."), ToolCall(1, "toolu_1", "Read", '{"p":1}'),
                           TextDelta(0, "again"), Stop(StopReason.TOOL_USE)]
    frames = [(n, json.loads(d)) for n, d in sse_frames(render_all(events))]
    blocks = [(p["index"], p["content_block"]["type"]) for n, p in frames if n == "content_block_start"]
    assert blocks == [(0, "text"), (1, "tool_use"), (2, "text")]
    stops = [p["index"] for n, p in frames if n == "content_block_stop"]
    assert stops == [0, 1, 2]


def test_the_anthropic_sdk_accumulates_the_rendered_stream() -> None:
    """The real client library reads our bytes into the message we meant."""
    events = events_of(Response("r", "claude-sim", (
        Thinking("Think.", signature="sig-1"), Text("Hello"), ToolUse("toolu_9", "Bash", {"command": "ls"})),
        StopReason.TOOL_USE, None, Usage(10, 5, 2, 1)))
    raw = render_all(events, "msg_sdk")

    def handler(request: httpx2.Request) -> httpx2.Response:
        return httpx2.Response(200, content=raw, headers={"content-type": "text/event-stream"})

    client = anthropic.Anthropic(api_key="k", base_url="http://gw.test",
                                 http_client=httpx2.Client(transport=httpx2.MockTransport(handler)))
    with client.messages.stream(model="claude-sim", max_tokens=10, messages=[{"role": "user", "content": "x"}]) as s:
        message = s.get_final_message()
    assert message.id == "msg_sdk" and message.stop_reason == "tool_use"
    assert [b.type for b in message.content] == ["thinking", "text", "tool_use"]
    assert message.content[0].signature == "sig-1"  # type: ignore[union-attr]
    assert message.content[2].input == {"command": "ls"}  # type: ignore[union-attr]
    assert message.usage.input_tokens == 10 and message.usage.output_tokens == 5


def test_stream_error_frame_and_comment() -> None:
    renderer = am.StreamRenderer(message_id="m")
    name, data = sse_frames(renderer.error("overloaded_error", "the answer broke off"))[0]
    assert name == "error"
    assert json.loads(data) == {"type": "error", "error": {"type": "overloaded_error",
                                                           "message": "the answer broke off"}}
    assert json.loads(sse_frames(renderer.error("server_error", "x"))[0][1])["error"]["type"] == "api_error"
    assert renderer.comment("still here").startswith(b": still here")


# --------------------------------------------------------------------------- real captures


def _captures() -> list[tuple[str, dict[str, Any]]]:
    found = []
    for name in ("claude-code-2.1.197.jsonl", "python-sdks.jsonl"):
        for i, line in enumerate((CLIENTS / name).read_text().splitlines()):
            capture = json.loads(line)
            if capture["path"] == "/v1/messages":
                found.append((f"{name}:{i + 1}", capture))
    for path in sorted(CLIENTS.glob("*.request.json")):
        document = json.loads(path.read_text())
        for i, capture in enumerate(document if isinstance(document, list) else [document]):
            if capture["path"] == "/v1/messages":
                found.append((f"{path.name}:{i}", _unredact(capture)))
    return found


def _unredact(capture: dict[str, Any]) -> dict[str, Any]:
    """Redacted captures summarise their tool lists; keep the one tool given whole."""
    body = dict(capture["body"])
    tools = body.get("tools")
    if isinstance(tools, dict):
        body["tools"] = [tools["first_tool_full"]]
    elif isinstance(tools, str):
        del body["tools"]
    return {**capture, "body": body}


CAPTURES = _captures()


def test_every_anthropic_capture_was_found() -> None:
    assert len(CAPTURES) == 1 + 3 + 5 + 2 * 2


@pytest.mark.parametrize(("name", "capture"), CAPTURES, ids=[n for n, _ in CAPTURES])
def test_real_client_requests_parse_and_render_back(name: str, capture: dict[str, Any]) -> None:
    body = capture["body"]
    request = am.parse_request(body, capture["headers"])
    assert request.model == body["model"] and request.max_tokens == body["max_tokens"]
    assert len(request.messages) == len(body["messages"])
    assert set(request.headers) <= {"anthropic-version", "anthropic-beta"}
    rendered = am.render_request(request, "upstream-model", stream=True)
    assert rendered["model"] == "upstream-model" and rendered["stream"] is True
    # the same family sends everything on: re-parsing gives the same request
    assert am.parse_request(orjson.loads(orjson.dumps(rendered)), request.headers) == Request(
        **{**{f: getattr(request, f) for f in Request.__slots__}, "model": "upstream-model", "stream": True})


def test_claude_code_first_turn_is_understood_in_full() -> None:
    capture = json.loads((CLIENTS / "claude-code-2.1.197.jsonl").read_text().splitlines()[1])
    request = am.parse_request(capture["body"], capture["headers"])
    assert len(request.tools) == 24 and request.tools[1].name == "Bash"
    assert request.tools[0].input_schema["$schema"] == "https://json-schema.org/draft/2020-12/schema"
    assert request.thinking == {"type": "adaptive"}
    assert request.extra["anthropic"] == {"output_config": {"effort": "high"},
                                          "context_management": {"edits": [{"type": "clear_thinking_20251015",
                                                                            "keep": "all"}]}}
    assert [m.role for m in request.messages] == ["user", "system"]
    assert request.messages[1].text().startswith("Available agent types")
    assert [t.cache_control for t in request.system] == [None, EPHEMERAL, EPHEMERAL]
    assert request.messages[0].content[-1] == Text("say hi", EPHEMERAL)
    assert json.loads(request.metadata["user_id"])["session_id"]
    assert request.headers == {"anthropic-version": "2023-06-01",
                               "anthropic-beta": capture["headers"]["anthropic-beta"]}
    assert request.stream is True and request.max_tokens == 64000


def test_claude_code_history_keeps_thinking_signatures_and_tool_results() -> None:
    capture = _unredact(json.loads((CLIENTS / "cc_thinking_continue.request.json").read_text()))
    thinking = am.parse_request(capture["body"])
    assert thinking.messages[2].content[0] == Thinking("The user wants a greeting.",
                                                       "sig_capture_7606bb35b4994df688b4d3f5f30562f3")
    tool = am.parse_request(_unredact(json.loads((CLIENTS / "cc_tool_bash.request.json").read_text()))["body"])
    assert tool.messages[2].content == (ToolUse("toolu_5d990cd175d1499f9a59d3b1", "Bash", {
        "command": "echo capture-tool-ok && ls -la", "description": "List files"}),)
    result = tool.messages[3].content[0]
    assert isinstance(result, ToolResult) and not result.is_error and result.cache_control == EPHEMERAL
    assert result.content[0].text.startswith("capture-tool-ok")  # type: ignore[union-attr]


def test_sdk_requests_carry_tools_thinking_and_metadata() -> None:
    lines = [json.loads(line) for line in (CLIENTS / "python-sdks.jsonl").read_text().splitlines()]
    weather = am.parse_request(lines[0]["body"], lines[0]["headers"])
    assert weather.tools == (Tool("get_weather", "Weather for a city", {
        "type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}),)
    assert weather.system == (Text("You are terse.", EPHEMERAL),) and weather.metadata == {"user_id": "u-1"}
    assert weather.headers["anthropic-version"] == "2026-10-21"
    assert am.parse_request(lines[1]["body"]).thinking == {"type": "enabled", "budget_tokens": 1024}
    # count_tokens has no max_tokens; the gateway supplies one before parsing
    counted = am.parse_request({**lines[3]["body"], "max_tokens": 1})
    assert am.render_count_tokens_request(counted, "m") == {"model": "m", "messages": [{"role": "user",
                                                                                         "content": "hi"}]}


def test_credentials_and_other_headers_are_never_kept() -> None:
    request = am.parse_request({"model": "m", "max_tokens": 1, "messages": [{"role": "user", "content": "x"}]},
                               {"X-Api-Key": "sk-secret", "Authorization": "Bearer sk-secret",
                                "Anthropic-Version": "2023-06-01", "user-agent": "ua"})
    assert request.headers == {"anthropic-version": "2023-06-01"}


# --------------------------------------------------------------------------- outbound from other families


def _openai_style(**changes: Any) -> Request:
    base = Request(
        model="gpt-5.1",
        messages=(
            Message("user", (Text("What is in this picture?"), Image(data="iVBORw0KGgo="))),
            Message("assistant", (Thinking("reasoning from another vendor"), Text(""),
                                  ToolUse("call_1", "look", {"q": 1}))),
            Message("user", (ToolResult("call_1", (Text("a cat"),)),)),
        ),
        temperature=1.7,
        metadata={"user_id": "u-9", "team": "x"},
        extra={"openai": {"seed": 7}},
    )
    return Request(**{**{f: getattr(base, f) for f in Request.__slots__}, **changes})


def test_a_request_from_an_openai_caller_becomes_a_valid_messages_request() -> None:
    body = am.render_request(_openai_style(), "claude-sonnet-4-6", stream=True)
    assert body["max_tokens"] == am.DEFAULT_MAX_TOKENS
    assert body["temperature"] == 1.0
    assert body["metadata"] == {"user_id": "u-9"}
    assert "seed" not in body
    image = body["messages"][0]["content"][1]
    assert image == {"type": "image", "source": {"type": "base64", "media_type": "image/png",
                                                 "data": "iVBORw0KGgo="}}
    assert body["messages"][1]["content"] == [{"type": "tool_use", "id": "call_1", "name": "look",
                                               "input": {"q": 1}}]
    assert body["messages"][2]["content"] == [{"type": "tool_result", "tool_use_id": "call_1", "content": "a cat"}]


def test_a_message_left_empty_by_the_clean_up_is_dropped() -> None:
    request = Request(model="m", messages=(Message("user", (Text("hi"),)),
                                           Message("assistant", (Thinking("unsigned"), Text(""))),
                                           Message("user", (Text("again"),))))
    body = am.render_request(request, "m", stream=False)
    assert body["messages"] == [{"role": "user", "content": "hi"}, {"role": "user", "content": "again"}]


def test_max_tokens_default_leaves_room_above_a_thinking_budget() -> None:
    body = am.render_request(_openai_style(thinking={"type": "enabled", "budget_tokens": 10000}), "m", stream=False)
    assert body["max_tokens"] > 10000 and "stream" not in body


def test_pdf_images_travel_as_documents_and_back() -> None:
    request = am.parse_request({"model": "m", "max_tokens": 5, "messages": [{"role": "user", "content": [
        {"type": "document", "source": {"type": "base64", "media_type": "application/pdf", "data": "JVBERi0x"}},
        {"type": "document", "source": {"type": "text", "media_type": "text/plain", "data": "plain words"}},
        {"type": "image", "source": {"type": "url", "url": "https://x.test/a.png"}}]}]})
    assert request.messages[0].content == (Image("application/pdf", data="JVBERi0x"), Text("plain words"),
                                           Image(url="https://x.test/a.png"))
    blocks = am.render_request(request, "m", stream=False)["messages"][0]["content"]
    assert [b["type"] for b in blocks] == ["document", "text", "image"]


def test_server_tools_and_unknown_fields_pass_through_to_the_same_family_only() -> None:
    body = {"model": "m", "max_tokens": 5, "messages": [{"role": "user", "content": "x"}],
            "tools": [{"name": "f", "input_schema": {"type": "object"}},
                      {"type": "web_search_20250305", "name": "web_search", "max_uses": 2}],
            "service_tier": "auto", "container": "c1"}
    request = am.parse_request(body)
    assert [t.name for t in request.tools] == ["f"]
    assert request.extra["anthropic"]["tools"] == [body["tools"][1]]
    rendered = am.render_request(request, "m", stream=False)
    assert rendered["tools"] == body["tools"]
    assert rendered["service_tier"] == "auto" and rendered["container"] == "c1"


# --------------------------------------------------------------------------- mid-conversation system messages


def _with_system(headers: dict[str, str]) -> Request:
    return Request(model="m", messages=(
        Message("user", (Text("hello"),)),
        Message("system", (Text("Agents: claude, Explore"),)),
        Message("assistant", (ToolUse("t1", "Bash", {}),)),
        Message("system", (Text("Mind the sandbox", EPHEMERAL),)),
        Message("user", (ToolResult("t1", (Text("ok"),)), Text("go on"))),
    ), headers=headers)


def test_system_messages_are_kept_when_the_client_asked_for_the_beta() -> None:
    body = am.render_request(_with_system({"anthropic-beta": MID_SYSTEM_BETA}), "m", stream=True)
    assert [m["role"] for m in body["messages"]] == ["user", "system", "assistant", "system", "user"]


def test_system_messages_are_folded_into_user_turns_without_the_beta() -> None:
    body = am.render_request(_with_system({}), "m", stream=True)
    messages = body["messages"]
    assert [m["role"] for m in messages] == ["user", "assistant", "user"]
    assert messages[0]["content"] == [
        {"type": "text", "text": "hello"},
        {"type": "text", "text": "<system-reminder>\nAgents: claude, Explore\n</system-reminder>"}]
    # tool results stay first in their turn; the note follows them and keeps its cache breakpoint
    last = messages[2]["content"]
    assert [b["type"] for b in last] == ["tool_result", "text", "text"]
    assert last[1] == {"type": "text", "text": "<system-reminder>\nMind the sandbox\n</system-reminder>",
                       "cache_control": EPHEMERAL}


def test_a_trailing_system_message_becomes_its_own_user_turn() -> None:
    request = Request(model="m", messages=(Message("assistant", (Text("hi"),)),
                                           Message("system", (Text("note"),))))
    messages = am.render_request(request, "m", stream=False)["messages"]
    assert messages[-1] == {"role": "user", "content": "<system-reminder>\nnote\n</system-reminder>"}


# --------------------------------------------------------------------------- bad input

GOOD: dict[str, Any] = {"model": "m", "max_tokens": 10, "messages": [{"role": "user", "content": "hi"}]}


def _body(**changes: Any) -> dict[str, Any]:
    body = {**GOOD, **changes}
    return {k: v for k, v in body.items() if v is not ...}


BAD = [
    ("not an object", ["model"], "request body"),
    ("no model", _body(model=...), "model: field required"),
    ("empty model", _body(model=""), "model: must be a non-empty string"),
    ("no max_tokens", _body(max_tokens=...), "max_tokens: field required"),
    ("zero max_tokens", _body(max_tokens=0), "max_tokens: must be a positive integer"),
    ("bool max_tokens", _body(max_tokens=True), "max_tokens: must be a positive integer"),
    ("no messages", _body(messages=...), "messages: field required"),
    ("messages object", _body(messages={}), "messages: must be an array"),
    ("empty messages", _body(messages=[]), "messages: must contain at least one message"),
    ("bad role", _body(messages=[{"role": "tool", "content": "x"}]), "messages.0.role: must be"),
    ("no content", _body(messages=[{"role": "user"}]), "messages.0.content: field required"),
    ("unknown block", _body(messages=[{"role": "user", "content": "a"}, {"role": "assistant", "content": "b"},
                                      {"role": "user", "content": [{"type": "foo"}]}]),
     "messages.2.content.0: unknown content block type 'foo'"),
    ("text not string", _body(messages=[{"role": "user", "content": [{"type": "text", "text": 3}]}]),
     "messages.0.content.0.text: must be a string"),
    ("tool_use without id", _body(messages=[{"role": "assistant", "content": [{"type": "tool_use", "name": "x"}]}]),
     "messages.0.content.0.id: field required"),
    ("tool_result bad content", _body(messages=[{"role": "user", "content": [
        {"type": "tool_result", "tool_use_id": "t", "content": 5}]}]), "messages.0.content.0.content: must be"),
    ("image without source", _body(messages=[{"role": "user", "content": [{"type": "image"}]}]),
     "messages.0.content.0.source: field required"),
    ("file image", _body(messages=[{"role": "user", "content": [{"type": "image", "source": {"type": "file"}}]}]),
     "messages.0.content.0.source.type: image source type 'file' is not supported"),
    ("system number", _body(system=5), "system: must be a string or an array of text blocks"),
    ("system image", _body(system=[{"type": "image"}]), "system.0: must be a text block"),
    ("tool without schema", _body(tools=[{"name": "f"}]), "tools.0.input_schema: field required"),
    ("tool choice type", _body(tool_choice={"type": "required"}), "tool_choice.type: must be one of"),
    ("tool choice name", _body(tool_choice={"type": "tool"}), "tool_choice.name: field required"),
    ("temperature", _body(temperature=1.5), "temperature: must be between 0 and 1"),
    ("temperature type", _body(temperature="hot"), "temperature: must be a number"),
    ("top_k", _body(top_k=-1), "top_k: must be a non-negative integer"),
    ("stop sequences", _body(stop_sequences="END"), "stop_sequences: must be an array of strings"),
    ("stream", _body(stream="yes"), "stream: must be true or false"),
    ("metadata user", _body(metadata={"user_id": 5}), "metadata.user_id: must be a string"),
    ("thinking budget", _body(thinking={"type": "enabled"}), "thinking.budget_tokens: field required"),
    ("thinking type", _body(thinking={"type": "max"}), "thinking.type: must be"),
]


@pytest.mark.parametrize(("body", "message"), [(b, m) for _, b, m in BAD], ids=[n for n, _, _ in BAD])
def test_bad_requests_name_the_field(body: object, message: str) -> None:
    with pytest.raises(RequestError) as caught:
        am.parse_request(body)
    assert caught.value.status == 400
    assert message in caught.value.message
    field = message.split(":")[0]
    if field != "request body":
        assert caught.value.param == field


# --------------------------------------------------------------------------- parsing upstream streams


def feed_all(frames: list[tuple[str | None, Any]]) -> tuple[am.StreamParser, list[Event]]:
    parser = am.StreamParser()
    events: list[Event] = []
    for name, payload in frames:
        events.extend(parser.feed(name, payload if isinstance(payload, str) else json.dumps(payload)))
    return parser, events


MESSAGE_START = ("message_start", {"type": "message_start", "message": {
    "id": "msg_up", "type": "message", "role": "assistant", "model": "claude-up", "content": [],
    "usage": {"input_tokens": 25, "cache_read_input_tokens": 5, "output_tokens": 1}}})
TOOL_FRAMES = [
    MESSAGE_START,
    ("content_block_start", {"type": "content_block_start", "index": 0,
                             "content_block": {"type": "tool_use", "id": "toolu_1", "name": "Bash", "input": {}}}),
    ("ping", {"type": "ping"}),
    ("content_block_delta", {"type": "content_block_delta", "index": 0,
                             "delta": {"type": "input_json_delta", "partial_json": ""}}),
    ("content_block_delta", {"type": "content_block_delta", "index": 0,
                             "delta": {"type": "input_json_delta", "partial_json": '{"command": "l'}}),
    ("content_block_delta", {"type": "content_block_delta", "index": 0,
                             "delta": {"type": "input_json_delta", "partial_json": 's"}'}}),
    ("content_block_stop", {"type": "content_block_stop", "index": 0}),
    ("message_delta", {"type": "message_delta", "delta": {"stop_reason": "tool_use", "stop_sequence": None},
                       "usage": {"output_tokens": 9}}),
]


def test_tool_use_blocks_are_held_until_complete() -> None:
    parser, events = feed_all([*TOOL_FRAMES, ("message_stop", {"type": "message_stop"})])
    assert events == [Start("msg_up", "claude-up", Usage(25, 1, 5, 0)),
                      ToolCall(0, "toolu_1", "Bash", '{"command": "ls"}'),
                      Stop(StopReason.TOOL_USE, Usage(25, 9, 5, 0))]
    assert parser.done and parser.finish() == []


def test_a_stream_without_message_stop_but_with_message_delta_is_complete() -> None:
    parser, events = feed_all(TOOL_FRAMES)
    assert isinstance(events[-1], ToolCall)
    assert not parser.done
    assert parser.finish() == [Stop(StopReason.TOOL_USE, Usage(25, 9, 5, 0))]


def test_a_stream_cut_before_the_end_is_a_lost_connection() -> None:
    parser, _ = feed_all(TOOL_FRAMES[:5])
    with pytest.raises(UpstreamError) as caught:
        parser.finish()
    assert caught.value.kind is FailureKind.CONNECTION_LOST and caught.value.during_stream
    assert "before message_stop" in caught.value.message


def test_refusal_and_thinking_deltas_are_parsed() -> None:
    _, events = feed_all([
        MESSAGE_START,
        (None, {"type": "content_block_start", "index": 0,
                "content_block": {"type": "thinking", "thinking": "", "signature": ""}}),
        (None, {"type": "content_block_delta", "index": 0, "delta": {"type": "thinking_delta", "thinking": "hm"}}),
        (None, {"type": "content_block_delta", "index": 0, "delta": {"type": "signature_delta", "signature": "s"}}),
        (None, {"type": "content_block_stop", "index": 0}),
        (None, {"type": "message_delta", "delta": {"stop_reason": "refusal"}, "usage": {"output_tokens": 2}}),
        (None, {"type": "message_stop"}),
    ])
    assert events[1:] == [ThinkingDelta(0, "hm"), ThinkingDelta(0, signature="s"),
                          Stop(StopReason.CONTENT_FILTER, Usage(25, 2, 5, 0))]


@pytest.mark.parametrize(("error_type", "kind"), [
    ("overloaded_error", FailureKind.OVERLOADED), ("api_error", FailureKind.SERVER_ERROR),
    ("rate_limit_error", FailureKind.RATE_LIMITED), ("something_new", FailureKind.SERVER_ERROR)])
def test_in_stream_error_events_are_classified(error_type: str, kind: FailureKind) -> None:
    parser = am.StreamParser()
    parser.feed(*MESSAGE_START[:1], json.dumps(MESSAGE_START[1]))
    with pytest.raises(UpstreamError) as caught:
        parser.feed("error", json.dumps({"type": "error", "error": {"type": error_type, "message": "Overloaded"}}))
    assert caught.value.kind is kind and caught.value.during_stream
    assert caught.value.vendor_code == error_type and caught.value.message == "Overloaded"


@pytest.mark.parametrize("frames", [
    [MESSAGE_START, ("content_block_delta", '{"type": "content_block_delta", "index": 0, "delta": {"type": "te')],
    [MESSAGE_START, ("content_block_delta", "[1, 2]")],
    [("content_block_delta", {"type": "content_block_delta", "index": 0,
                              "delta": {"type": "text_delta", "text": "x"}})],
    [MESSAGE_START, ("content_block_delta", {"type": "content_block_delta", "index": 0, "delta": {}})],
    [*TOOL_FRAMES[:4], ("content_block_delta", {"type": "content_block_delta", "index": 0,
                                                "delta": {"type": "input_json_delta", "partial_json": "{nope"}}),
     ("content_block_stop", {"type": "content_block_stop", "index": 0})],
], ids=["cut json", "not an object", "delta before start", "delta without type", "tool arguments not json"])
def test_unreadable_stream_events_are_malformed(frames: list[tuple[str | None, Any]]) -> None:
    with pytest.raises(UpstreamError) as caught:
        feed_all(frames)
    assert caught.value.kind is FailureKind.MALFORMED and caught.value.during_stream


def test_parse_response_rejects_wrong_shapes_and_reads_error_documents() -> None:
    for body in ([], {"content": "x"}, {"content": [{"type": "text"}]}, {"content": [{"no": "type"}]}):
        with pytest.raises(UpstreamError) as caught:
            am.parse_response(body)
        assert caught.value.kind is FailureKind.MALFORMED
    with pytest.raises(UpstreamError) as caught:
        am.parse_response({"type": "error", "error": {"type": "overloaded_error", "message": "Overloaded"}})
    assert caught.value.kind is FailureKind.OVERLOADED


# --------------------------------------------------------------------------- classifying vendor errors


def _error(kind: str, message: str) -> bytes:
    return orjson.dumps({"type": "error", "error": {"type": kind, "message": message}, "request_id": "req_1"})


@pytest.mark.parametrize(("status", "body", "headers", "kind", "retry_after"), [
    (529, _error("overloaded_error", "Overloaded"), {}, FailureKind.OVERLOADED, None),
    (500, _error("overloaded_error", "Overloaded"), {}, FailureKind.OVERLOADED, None),
    (429, _error("rate_limit_error", "slow down"), {"retry-after": "7"}, FailureKind.RATE_LIMITED, 7.0),
    (429, b"<html>", {"Retry-After": "3"}, FailureKind.RATE_LIMITED, 3.0),
    (500, _error("api_error", "Internal server error"), {}, FailureKind.SERVER_ERROR, None),
    (500, _error("invalid_request_error", "odd"), {}, FailureKind.SERVER_ERROR, None),
    (502, b"Bad Gateway", {}, FailureKind.SERVER_ERROR, None),
    (503, _error("api_error", "Internal server error"), {}, FailureKind.OVERLOADED, None),
    (504, _error("timeout_error", "Request timed out"), {}, FailureKind.TIMEOUT, None),
    (401, _error("authentication_error", "invalid x-api-key"), {}, FailureKind.AUTH_FAILED, None),
    (403, _error("permission_error", "no"), {}, FailureKind.AUTH_FAILED, None),
    (402, _error("billing_error", "credit balance is too low"), {}, FailureKind.AUTH_FAILED, None),
    (404, _error("not_found_error", "model: claude-nope"), {}, FailureKind.NOT_FOUND, None),
    (400, _error("invalid_request_error", "prompt is too long: 210000 tokens > 200000 maximum"), {},
     FailureKind.CONTEXT_TOO_LONG, None),
    (400, _error("invalid_request_error", "input length and `max_tokens` exceed context limit: 1 + 2 > 3"), {},
     FailureKind.CONTEXT_TOO_LONG, None),
    (400, _error("invalid_request_error", "Output blocked by content filtering policy"), {},
     FailureKind.CONTENT_FILTERED, None),
    (413, _error("request_too_large", "Request exceeds the maximum allowed number of bytes."), {},
     FailureKind.BAD_REQUEST, None),
    (400, _error("invalid_request_error", "messages.1: bad"), {}, FailureKind.BAD_REQUEST, None),
    (400, b"\x00\xffgarbage", {}, FailureKind.BAD_REQUEST, None),
])
def test_classify_error(status: int, body: bytes, headers: dict[str, str], kind: FailureKind,
                        retry_after: float | None) -> None:
    error = am.classify_error(status, body, headers)
    assert error.kind is kind and error.status == status and error.retry_after == retry_after
    if body.startswith(b"{"):
        document = json.loads(body)["error"]
        assert error.message == document["message"] and error.vendor_code == document["type"]
    else:
        assert f"HTTP {status}" in error.message and error.vendor_code is None


def test_classify_error_never_repeats_headers() -> None:
    error = am.classify_error(401, b"", {"x-api-key": "sk-ant-secret", "retry-after": "1"})
    assert "sk-ant-secret" not in error.message and "sk-ant-secret" not in error.describe()


@pytest.mark.parametrize(("status", "kind", "expected"), [
    (529, "overloaded_error", "overloaded_error"), (500, "server_error", "api_error"),
    (429, "rate_limited", "rate_limit_error"), (404, "whatever", "not_found_error"),
    (400, "invalid_request_error", "invalid_request_error"), (503, "mystery", "api_error"),
    (401, "authentication_error", "authentication_error")])
def test_error_body_uses_anthropic_error_types(status: int, kind: str, expected: str) -> None:
    assert am.error_body(status, kind, "why", "param", "code") == {"type": "error",
                                                                   "error": {"type": expected, "message": "why"}}
