"""Gemini dialect (outbound): request rendering, stream and response parsing, error classes."""

from __future__ import annotations

import itertools
import json
from typing import Any

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from outlast.dialects import gemini
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
)
from outlast.providers.errors import FailureKind, UpstreamError
from outlast.providers.sse import SSEDecoder

texts = st.text(min_size=1, max_size=30)
names = st.from_regex(r"[a-z][a-z0-9_]{0,15}", fullmatch=True)
args = st.dictionaries(st.text(min_size=1, max_size=8),
                       st.none() | st.booleans() | st.integers(-1000, 1000) | st.text(max_size=10), max_size=4)


# --------------------------------------------------------------------------- a Gemini answer, as the wire has it


def wire_chunks(response: Response, pieces: int) -> list[dict[str, Any]]:
    """``response`` as streamGenerateContent chunks: text cut into ``pieces``, one call per chunk."""
    chunks: list[list[dict[str, Any]]] = []
    for part in response.content:
        if isinstance(part, Text):
            step = max(1, len(part.text) // pieces)
            chunks += [[{"text": part.text[i:i + step]}] for i in range(0, len(part.text), step)]
        elif isinstance(part, Thinking):
            chunks.append([{"text": part.thinking, "thought": True}])
        elif isinstance(part, ToolUse):
            chunks.append([{"functionCall": {"name": part.name, "args": dict(part.input)}}])
    chunks = chunks or [[]]
    finish = {StopReason.MAX_TOKENS: "MAX_TOKENS", StopReason.CONTENT_FILTER: "SAFETY"}.get(response.stop_reason,
                                                                                            "STOP")
    u = response.usage
    out = []
    for i, parts in enumerate(chunks):
        candidate: dict[str, Any] = {"content": {"role": "model", "parts": parts}, "index": 0}
        if i == len(chunks) - 1:
            candidate["finishReason"] = finish
        out.append({"candidates": [candidate], "modelVersion": response.model, "responseId": response.id,
                    "usageMetadata": {"promptTokenCount": u.input_tokens + u.cache_read_input_tokens,
                                      "candidatesTokenCount": u.output_tokens,
                                      "cachedContentTokenCount": u.cache_read_input_tokens}})
    return out


@st.composite
def responses(draw: Any) -> Response:
    content: list[Any] = [Thinking(t) for t in draw(st.lists(texts, max_size=1))]
    content += [Text(t) for t in draw(st.lists(texts, max_size=1))]
    calls = draw(st.lists(st.tuples(names, args), max_size=3))
    content += [ToolUse(f"id{i}", name, a) for i, (name, a) in enumerate(calls)]
    stop = StopReason.TOOL_USE if calls else draw(st.sampled_from(
        [StopReason.END_TURN, StopReason.MAX_TOKENS, StopReason.CONTENT_FILTER]))
    return Response("resp-1", "gemini-2.5-flash", tuple(content), stop,
                    usage=Usage(draw(st.integers(0, 10**6)), draw(st.integers(0, 10**6)),
                                draw(st.integers(0, 10**6))))


def same_ids(response: Response, like: Response) -> Response:
    """``response`` with its synthesized tool ids replaced by ``like``'s, in order."""
    ids = iter(p.id for p in like.content if isinstance(p, ToolUse))
    content = tuple(ToolUse(next(ids), p.name, p.input) if isinstance(p, ToolUse) else p for p in response.content)
    return Response(response.id, response.model, content, response.stop_reason, usage=response.usage)


def sse(chunks: list[dict[str, Any]]) -> bytes:
    return b"".join(b"data: " + orjson.dumps(c) + b"\r\n\r\n" for c in chunks)


def parse_sse(raw: bytes) -> list[Any]:
    decoder, parser, events = SSEDecoder(), gemini.StreamParser(), []
    for line in raw.splitlines(keepends=True):
        event = decoder.feed(line.decode())
        if event is not None:
            events += parser.feed(event.event, event.data)
    return events + parser.finish()


@settings(max_examples=150, deadline=None)
@given(responses(), st.integers(1, 5))
def test_stream_round_trip(response: Response, pieces: int) -> None:
    events = parse_sse(sse(wire_chunks(response, pieces)))
    collected = collect(events)
    assert same_ids(collected, response) == response
    calls = [p for p in collected.content if isinstance(p, ToolUse)]
    assert all(c.id.startswith("call_") for c in calls) and len({c.id for c in calls}) == len(calls)


@settings(max_examples=100, deadline=None)
@given(responses())
def test_response_round_trip(response: Response) -> None:
    whole = wire_chunks(response, 1)
    parts = [p for c in whole for p in c["candidates"][0]["content"]["parts"]]
    body = {**whole[-1], "candidates": [{**whole[-1]["candidates"][0], "content": {"role": "model", "parts": parts}}]}
    assert same_ids(gemini.parse_response(body), response) == response


def test_stream_events_in_order() -> None:
    chunks = [
        {"candidates": [{"content": {"parts": [{"text": "plan", "thought": True}]}}], "responseId": "r",
         "modelVersion": "gemini-x"},
        {"candidates": [{"content": {"parts": [{"text": "Hi"}, {"functionCall": {"name": "f", "args": {"a": 1}}}]}}]},
        {"candidates": [{"content": {"parts": [{"functionCall": {"id": "given", "name": "g"}}]},
                         "finishReason": "STOP"}],
         "usageMetadata": {"promptTokenCount": 10, "candidatesTokenCount": 3, "thoughtsTokenCount": 2}},
    ]
    events = parse_sse(sse(chunks))
    assert events[0] == Start("r", "gemini-x")
    assert events[1:3] == [ThinkingDelta(0, "plan"), TextDelta(1, "Hi")]
    first, second = events[3], events[4]
    assert isinstance(first, ToolCall) and (first.index, first.name, first.arguments) == (2, "f", '{"a":1}')
    assert second == ToolCall(3, "given", "g", "{}")
    assert events[5] == Stop(StopReason.TOOL_USE, Usage(10, 5))


def test_stream_without_finish_reason_is_cut_off() -> None:
    parser = gemini.StreamParser()
    parser.feed(None, json.dumps({"candidates": [{"content": {"parts": [{"text": "Hel"}]}}]}))
    with pytest.raises(UpstreamError) as info:
        parser.finish()
    assert info.value.kind is FailureKind.CONNECTION_LOST and info.value.during_stream


def test_blocked_prompt_and_bad_chunks() -> None:
    with pytest.raises(UpstreamError) as info:
        gemini.StreamParser().feed(None, json.dumps({"promptFeedback": {"blockReason": "SAFETY"}}))
    assert info.value.kind is FailureKind.CONTENT_FILTERED
    with pytest.raises(UpstreamError) as info:
        gemini.parse_response({"promptFeedback": {"blockReason": "PROHIBITED_CONTENT"}, "candidates": []})
    assert info.value.kind is FailureKind.CONTENT_FILTERED
    with pytest.raises(UpstreamError) as info:
        gemini.StreamParser().feed(None, "<html>")
    assert info.value.kind is FailureKind.MALFORMED and info.value.during_stream
    with pytest.raises(UpstreamError) as info:
        gemini.StreamParser().feed(None, json.dumps({"error": {"code": 503, "status": "UNAVAILABLE",
                                                               "message": "overloaded"}}))
    assert info.value.kind is FailureKind.OVERLOADED
    with pytest.raises(UpstreamError) as info:
        gemini.parse_response({"candidates": []})
    assert info.value.kind is FailureKind.MALFORMED


@pytest.mark.parametrize(("reason", "stop"), [("STOP", StopReason.END_TURN), ("MAX_TOKENS", StopReason.MAX_TOKENS),
                                              ("SAFETY", StopReason.CONTENT_FILTER),
                                              ("RECITATION", StopReason.CONTENT_FILTER),
                                              ("PROHIBITED_CONTENT", StopReason.CONTENT_FILTER),
                                              ("BLOCKLIST", StopReason.CONTENT_FILTER)])
def test_finish_reasons(reason: str, stop: StopReason) -> None:
    body = {"candidates": [{"content": {"parts": [{"text": "x"}]}, "finishReason": reason}]}
    assert gemini.parse_response(body).stop_reason is stop


# --------------------------------------------------------------------------- requests


def test_render_request_maps_every_field() -> None:
    schema = {"$schema": "https://json-schema.org/draft/2020-12/schema", "type": "object",
              "additionalProperties": False, "title": "Args",
              "properties": {"cmd": {"type": "string", "format": "uri"},
                             "n": {"type": ["integer", "null"], "exclusiveMinimum": 0},
                             "mode": {"const": "fast"}, "where": {"$ref": "#/$defs/Place"}},
              "required": ["cmd", "ghost"], "$defs": {"Place": {"type": "object", "properties": {
                  "city": {"type": "string"}}, "additionalProperties": False}}}
    request = Request(
        model="x",
        system=(Text("be brief"), Text("be kind")),
        messages=(
            Message("user", (Text("hi"), Image(media_type="image/png", data="AAAA"), Image(url="gs://b/c.jpg"))),
            Message("system", (Text("mid-conversation note"),)),
            Message("assistant", (Thinking("hmm", signature="s"), Text("running"), ToolUse("t1", "bash", {"cmd": "ls"}),
                                  ToolUse("t2", "noargs", {}))),
            Message("user", (ToolResult("t1", (Text("a.txt"),)), ToolResult("t2", (Text("boom"),), is_error=True),
                             Text("go on"))),
        ),
        tools=(Tool("bash", "run a command", schema), Tool("noargs")),
        tool_choice=ToolChoice("tool", "bash"),
        max_tokens=50, temperature=0.5, top_p=0.9, top_k=40, stop=("END",),
        extra={"gemini": {"safetySettings": [], "generationConfig": {"seed": 1}}, "openai": {"seed": 2}},
    )
    body = gemini.render_request(request, "gemini-2.5-flash", stream=True)
    assert body["systemInstruction"] == {"parts": [{"text": "be brief"}, {"text": "be kind"}]}
    assert body["contents"] == [
        {"role": "user", "parts": [{"text": "hi"}, {"inlineData": {"mimeType": "image/png", "data": "AAAA"}},
                                   {"fileData": {"mimeType": "image/*", "fileUri": "gs://b/c.jpg"}},
                                   {"text": "mid-conversation note"}]},
        {"role": "model", "parts": [
            {"text": "running"},
            {"functionCall": {"name": "bash", "args": {"cmd": "ls"}}, "thoughtSignature": gemini.SKIP_SIGNATURE},
            {"functionCall": {"name": "noargs", "args": {}}}]},
        {"role": "user", "parts": [{"functionResponse": {"name": "bash", "response": {"result": "a.txt"}}},
                                   {"functionResponse": {"name": "noargs", "response": {"error": "boom"}}},
                                   {"text": "go on"}]},
    ]
    bash, noargs = body["tools"][0]["functionDeclarations"]
    assert noargs == {"name": "noargs"}  # an object without properties is sent without parameters
    assert bash["parameters"] == {
        "type": "object",
        "properties": {"cmd": {"type": "string"}, "n": {"type": "integer", "nullable": True},
                       "mode": {"enum": ["fast"]},
                       "where": {"type": "object", "properties": {"city": {"type": "string"}}}},
        "required": ["cmd"],
    }
    assert body["toolConfig"] == {"functionCallingConfig": {"mode": "ANY", "allowedFunctionNames": ["bash"]}}
    assert body["generationConfig"] == {"seed": 1, "maxOutputTokens": 50, "temperature": 0.5, "topP": 0.9,
                                        "topK": 40, "stopSequences": ["END"]}
    assert body["safetySettings"] == [] and "seed" not in body


@st.composite
def requests(draw: Any) -> Request:
    messages: list[Message] = []
    used: list[ToolUse] = []
    for turn in range(draw(st.integers(1, 6))):
        if turn % 2 == 0:
            parts: list[Any] = [ToolResult(u.id, (Text(draw(texts)),)) for u in used]
            parts += [Text(t) for t in draw(st.lists(texts, min_size=0 if parts else 1, max_size=2))]
            messages.append(Message(draw(st.sampled_from(["user", "system"])) if not used else "user", tuple(parts)))
            used = []
        else:
            used = [ToolUse(f"u{turn}_{i}", name, a) for i, (name, a) in
                    enumerate(draw(st.lists(st.tuples(names, args), max_size=3)))]
            text = [Text(t) for t in draw(st.lists(texts, min_size=0 if used else 1, max_size=1))]
            messages.append(Message("assistant", (*text, *used)))
    return Request("m", tuple(messages), system=tuple(Text(t) for t in draw(st.lists(texts, max_size=2))))


@settings(max_examples=150, deadline=None)
@given(requests())
def test_rendered_requests_have_the_shape_gemini_wants(request: Request) -> None:
    body = gemini.render_request(request, "m", stream=True)
    roles = [c["role"] for c in body["contents"]]
    assert all(a != b for a, b in itertools.pairwise(roles))  # alternating
    assert set(roles) <= {"user", "model"}
    called: list[str] = []
    for content in body["contents"]:
        assert content["parts"]
        signed = [p for p in content["parts"] if "thoughtSignature" in p]
        if any("functionCall" in p for p in content["parts"]):
            assert len(signed) == 1 and "functionCall" in signed[0]
        for part in content["parts"]:
            if "functionCall" in part:
                called.append(part["functionCall"]["name"])
            if "functionResponse" in part:
                assert part["functionResponse"]["name"] in called
            if "text" in part:
                assert part["text"]
    sent = sum(len(c["parts"]) for c in body["contents"])
    expected = sum(len(m.content) for m in request.messages)  # texts are never empty here
    assert sent == expected  # nothing lost, nothing invented


# --------------------------------------------------------------------------- errors


def gerr(code: int, status: str, message: str, details: list[Any] | None = None) -> bytes:
    error: dict[str, Any] = {"code": code, "message": message, "status": status}
    if details is not None:
        error["details"] = details
    return json.dumps({"error": error}).encode()


@pytest.mark.parametrize(("status", "body", "headers", "kind", "retry_after"), [
    (429, gerr(429, "RESOURCE_EXHAUSTED", "quota", [
        {"@type": "type.googleapis.com/google.rpc.RetryInfo", "retryDelay": "37s"}]), {}, FailureKind.RATE_LIMITED,
     37.0),
    (429, gerr(429, "RESOURCE_EXHAUSTED", "quota"), {"retry-after": "4"}, FailureKind.RATE_LIMITED, 4.0),
    (503, gerr(503, "UNAVAILABLE", "The model is overloaded."), {}, FailureKind.OVERLOADED, None),
    (500, gerr(500, "INTERNAL", "An internal error has occurred."), {}, FailureKind.SERVER_ERROR, None),
    (504, gerr(504, "DEADLINE_EXCEEDED", "Deadline expired"), {}, FailureKind.TIMEOUT, None),
    (401, gerr(401, "UNAUTHENTICATED", "bad creds"), {}, FailureKind.AUTH_FAILED, None),
    (403, gerr(403, "PERMISSION_DENIED", "no"), {}, FailureKind.AUTH_FAILED, None),
    (400, gerr(400, "INVALID_ARGUMENT", "API key not valid. Please pass a valid API key.", [
        {"@type": "type.googleapis.com/google.rpc.ErrorInfo", "reason": "API_KEY_INVALID"}]), {},
     FailureKind.AUTH_FAILED, None),
    (404, gerr(404, "NOT_FOUND", "models/x is not found"), {}, FailureKind.NOT_FOUND, None),
    (400, gerr(400, "INVALID_ARGUMENT", "The input token count (2000000) exceeds the maximum number of tokens "
               "allowed (1048576)."), {}, FailureKind.CONTEXT_TOO_LONG, None),
    (400, gerr(400, "INVALID_ARGUMENT", "Request contains an invalid argument."), {}, FailureKind.BAD_REQUEST, None),
    (400, gerr(400, "FAILED_PRECONDITION", "User location is not supported for the API use."), {},
     FailureKind.AUTH_FAILED, None),
    (502, b"<html>Bad Gateway</html>", {}, FailureKind.SERVER_ERROR, None),
])
def test_classify_error(status: int, body: bytes, headers: dict[str, str], kind: FailureKind,
                        retry_after: float | None) -> None:
    error = gemini.classify_error(status, body, headers)
    assert error.kind is kind
    assert error.status == status
    assert error.retry_after == retry_after
    assert "<html" not in error.message


def test_classify_error_reads_a_list_wrapped_error_and_hides_keys() -> None:
    body = b"[" + gerr(400, "INVALID_ARGUMENT", "bad key AIzaSyA1234567890abcdefgh") + b"]"
    error = gemini.classify_error(400, body, {})
    assert error.kind is FailureKind.BAD_REQUEST
    assert "AIzaSyA1234567890abcdefgh" not in error.message
