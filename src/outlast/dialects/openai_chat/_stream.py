"""Chat Completions streams: canonical events as ``chat.completion.chunk`` SSE (``StreamRenderer``)
and back (``StreamParser``)."""

from __future__ import annotations

import time
from typing import Any

import orjson

from outlast.dialects.canonical import Event, Start, Stop, TextDelta, ThinkingDelta, ToolCall, Usage
from outlast.dialects.openai_chat._errors import _classify_object, error_body
from outlast.dialects.openai_chat._response import _finish, _malformed, _parse_usage, _reasoning, _stop_reason, _usage
from outlast.providers.errors import FailureKind, UpstreamError
from outlast.providers.sse import comment

# =========================================================================== inbound: rendering


def _tool_call(index: int, call_id: str, name: str, arguments: str) -> dict[str, Any]:
    return {"index": index, "id": call_id, "type": "function", "function": {"name": name, "arguments": arguments}}


_DONE = b"data: [DONE]\n\n"
_TAIL = b"}\n\n"


class StreamRenderer:
    """Canonical events as ``chat.completion.chunk`` SSE frames for one answer.

    The constant head of every chunk (id, object, created, model) is built once, at
    :class:`Start`; each event then costs one small ``orjson.dumps``.
    """

    __slots__ = ("_created", "_head", "_include_usage", "_message_id", "_tools")

    def __init__(self, *, message_id: str, include_usage: bool = False) -> None:
        self._message_id = message_id
        self._include_usage = include_usage
        self._created = int(time.time())
        self._tools = 0
        self._head = self._make_head("")

    def _make_head(self, model: str) -> bytes:
        return (b'data: {"id":' + orjson.dumps(self._message_id) + b',"object":"chat.completion.chunk","created":'
                + str(self._created).encode() + b',"model":' + orjson.dumps(model) + b',"choices":')

    def _choice(self, delta: bytes, finish: bytes = b"null") -> bytes:
        return (self._head + b'[{"index":0,"delta":' + delta + b',"logprobs":null,"finish_reason":' + finish
                + b"}]" + _TAIL)

    def render(self, event: Event) -> bytes:
        if isinstance(event, TextDelta):
            if not event.text:
                return b""
            return self._choice(b'{"content":' + orjson.dumps(event.text) + b"}")
        if isinstance(event, ToolCall):
            call = _tool_call(self._tools, event.id, event.name, event.arguments)
            self._tools += 1
            return self._choice(orjson.dumps({"tool_calls": [call]}))
        if isinstance(event, Start):
            self._head = self._make_head(event.model)
            return self._choice(b'{"role":"assistant","content":""}')
        if isinstance(event, Stop):
            out = self._choice(b"{}", b'"' + _finish(event.stop_reason).encode() + b'"')
            if self._include_usage:
                out += self._head + b'[],"usage":' + orjson.dumps(_usage(event.usage)) + _TAIL
            return out + _DONE
        return b""  # ThinkingDelta: Chat Completions has no standard field for reasoning

    def error(self, kind: str, message: str) -> bytes:
        """An in-stream error frame; the openai SDK raises ``APIError`` on it. No ``[DONE]`` follows."""
        return b"data: " + orjson.dumps(error_body(500, kind, message)) + b"\n\n"

    def comment(self, text: str) -> bytes:
        return comment(text)


# =========================================================================== outbound: parsing


class StreamParser:
    """``chat.completion.chunk`` SSE data into canonical events.

    Block indices are given in order of appearance: text (and reasoning) deltas extend the
    open block of their kind; a tool call is held until complete (a later tool index
    starts, or ``finish_reason`` arrives) and then takes the next index.
    """

    __slots__ = ("_block", "_done", "_finish", "_index", "_pending", "_saw_tools", "_started", "_usage")

    def __init__(self) -> None:
        self._started = False
        self._index = -1  # index of the newest block
        self._block: str | None = None  # kind of the newest block: "text" | "thinking" | "tool"
        self._pending: dict[int, list[Any]] = {}  # tool index -> [id, name, [argument pieces]]
        self._finish: object = None
        self._saw_tools = False
        self._usage: Usage | None = None
        self._done = False

    @property
    def done(self) -> bool:
        """True once the :class:`Stop` has been emitted."""
        return self._done

    def _open(self, kind: str) -> int:
        if self._block != kind or kind == "tool":
            self._index += 1
            self._block = kind
        return self._index

    def _flush_tools(self, out: list[Event], below: int | None = None) -> None:
        """Emit the held tool calls (those with a tool index below ``below``, or all)."""
        for key in sorted(self._pending):
            if below is not None and key >= below:
                break
            call_id, name, pieces = self._pending.pop(key)
            out.append(ToolCall(self._open("tool"), call_id or f"call_{key}", name, "".join(pieces)))

    def _stop(self) -> Stop:
        self._done = True
        return Stop(_stop_reason(self._finish, self._saw_tools), self._usage or Usage())

    def feed(self, event_name: str | None, data: str) -> list[Event]:
        if self._done:
            return []
        if data == "[DONE]":
            out: list[Event] = [] if self._started else [Start("", "")]
            self._started = True
            self._flush_tools(out)
            out.append(self._stop())
            return out
        try:
            chunk = orjson.loads(data)
        except orjson.JSONDecodeError:
            raise _malformed("upstream sent a stream chunk that is not JSON", during_stream=True) from None
        if not isinstance(chunk, dict):
            raise _malformed("upstream sent a stream chunk that is not a JSON object", during_stream=True)
        if chunk.get("error") is not None:
            raise _classify_object(None, chunk["error"], during_stream=True)
        out = []
        if not self._started:
            self._started = True
            out.append(Start(str(chunk.get("id") or ""), str(chunk.get("model") or "")))
        usage = chunk.get("usage")
        if usage:
            self._usage = _parse_usage(usage)
        choices = chunk.get("choices")
        if not choices or not isinstance(choices, list):
            return out
        choice = choices[0]
        if not isinstance(choice, dict):
            raise _malformed("upstream sent a stream choice that is not an object", during_stream=True)
        delta = choice.get("delta")
        if isinstance(delta, dict):
            reasoning = _reasoning(delta)
            if reasoning:
                out.append(ThinkingDelta(self._open("thinking"), reasoning))
            text = delta.get("content")
            if isinstance(text, str) and text:
                out.append(TextDelta(self._open("text"), text))
            calls = delta.get("tool_calls")
            if isinstance(calls, list):
                for call in calls:
                    self._tool_delta(call, out)
        finish = choice.get("finish_reason")
        if finish is not None:
            self._finish = finish
            self._flush_tools(out)
        return out

    def _tool_delta(self, call: object, out: list[Event]) -> None:
        if not isinstance(call, dict):
            raise _malformed("upstream sent a tool call delta that is not an object", during_stream=True)
        key = call.get("index")
        if not isinstance(key, int):
            key = max(self._pending, default=-1) + (1 if call.get("id") else 0)
        self._saw_tools = True
        pending = self._pending.get(key)
        if pending is None:
            self._flush_tools(out, below=key)  # a new tool index starts: every earlier call is complete
            pending = self._pending[key] = [None, "", []]
        if call.get("id"):
            pending[0] = call["id"]
        function = call.get("function")
        if isinstance(function, dict):
            if function.get("name"):
                pending[1] += function["name"]
            if isinstance(function.get("arguments"), str):
                pending[2].append(function["arguments"])

    def finish(self) -> list[Event]:
        """The upstream closed the stream. A stream that said why it stopped but sent no
        ``[DONE]`` is complete; one that did not is cut off."""
        if self._done:
            return []
        if self._finish is None:
            raise UpstreamError(FailureKind.CONNECTION_LOST, "stream ended before finish_reason/[DONE]",
                                during_stream=True)
        out: list[Event] = []
        self._flush_tools(out)
        out.append(self._stop())
        return out
