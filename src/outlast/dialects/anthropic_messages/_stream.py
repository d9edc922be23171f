"""Anthropic Messages streams: canonical events as SSE (``StreamRenderer``) and back (``StreamParser``)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import orjson

from outlast.dialects.anthropic_messages._errors import _error_type, _from_error_payload
from outlast.dialects.anthropic_messages._response import (
    _malformed,
    _must_str,
    _parse_usage,
    _render_usage,
    _stop_in,
    _stop_out,
)
from outlast.dialects.canonical import (
    Event,
    Start,
    Stop,
    StopReason,
    TextDelta,
    ThinkingDelta,
    ToolCall,
    Usage,
    merge_usage,
)
from outlast.providers.errors import FailureKind, UpstreamError
from outlast.providers.sse import comment, encode

# --------------------------------------------------------------------------- streams: rendering

_TEXT_DELTA_HEAD = b'event: content_block_delta\ndata: {"type":"content_block_delta","index":'
_TEXT_DELTA_MID = b',"delta":{"type":"text_delta","text":'
_PING = encode(b'{"type":"ping"}', "ping")
_MESSAGE_STOP = encode(b'{"type":"message_stop"}', "message_stop")


def _frame(name: str, payload: dict[str, Any]) -> bytes:
    return encode(orjson.dumps(payload), name)


class StreamRenderer:
    """Canonical events as Messages SSE bytes, with ``event:`` lines (Claude Code needs them).

    Output block indices count from 0 in the order blocks open, whatever the
    canonical indices were; a text or thinking block stays open until an event for
    another block (or the stop) arrives.
    """

    __slots__ = ("_block", "_key", "_message_id", "_next")

    def __init__(self, *, message_id: str) -> None:
        self._message_id = message_id
        self._key: tuple[int, str] | None = None  # (canonical index, "text"|"thinking") of the open block
        self._block = -1  # output index of the open block
        self._next = 0

    def render(self, event: Event) -> bytes:
        if isinstance(event, TextDelta):
            out = b""
            if self._key != (event.index, "text"):
                out = self._open(event.index, "text", {"type": "text", "text": ""})
            if not event.text:
                return out
            return (out + _TEXT_DELTA_HEAD + str(self._block).encode() + _TEXT_DELTA_MID
                    + orjson.dumps(event.text) + b"}}\n\n")
        if isinstance(event, ThinkingDelta):
            return self._thinking(event)
        if isinstance(event, ToolCall):
            out = self._close()
            index = self._take_index()
            out += _frame("content_block_start", {
                "type": "content_block_start", "index": index,
                "content_block": {"type": "tool_use", "id": event.id, "name": event.name, "input": {}}})
            if event.arguments:
                out += _frame("content_block_delta", {
                    "type": "content_block_delta", "index": index,
                    "delta": {"type": "input_json_delta", "partial_json": event.arguments}})
            return out + _frame("content_block_stop", {"type": "content_block_stop", "index": index})
        if isinstance(event, Start):
            return _frame("message_start", {"type": "message_start", "message": {
                "id": self._message_id, "type": "message", "role": "assistant", "model": event.model,
                "content": [], "stop_reason": None, "stop_sequence": None,
                "usage": _render_usage(event.usage)}}) + _PING
        if isinstance(event, Stop):
            return self._close() + _frame("message_delta", {
                "type": "message_delta",
                "delta": {"stop_reason": _stop_out(event.stop_reason), "stop_sequence": event.stop_sequence},
                "usage": _render_usage(event.usage)}) + _MESSAGE_STOP
        raise TypeError(f"not a stream event: {event!r}")

    def error(self, kind: str, message: str) -> bytes:
        """An in-stream ``error`` event, as the API sends when an answer fails after it began."""
        return _frame("error", {"type": "error", "error": {"type": _error_type(kind, 500), "message": message}})

    def comment(self, text: str) -> bytes:
        return comment(text)

    def _take_index(self) -> int:
        index = self._next
        self._next += 1
        return index

    def _open(self, canonical: int, kind: str, block: dict[str, Any]) -> bytes:
        out = self._close()
        self._key = (canonical, kind)
        self._block = self._take_index()
        return out + _frame("content_block_start", {"type": "content_block_start", "index": self._block,
                                                    "content_block": block})

    def _close(self) -> bytes:
        if self._key is None:
            return b""
        self._key = None
        return _frame("content_block_stop", {"type": "content_block_stop", "index": self._block})

    def _thinking(self, event: ThinkingDelta) -> bytes:
        if event.redacted is not None:
            out = self._close()
            index = self._take_index()
            return out + _frame("content_block_start", {
                "type": "content_block_start", "index": index,
                "content_block": {"type": "redacted_thinking", "data": event.redacted}},
            ) + _frame("content_block_stop", {"type": "content_block_stop", "index": index})
        out = b""
        if self._key != (event.index, "thinking"):
            out = self._open(event.index, "thinking", {"type": "thinking", "thinking": "", "signature": ""})
        if event.thinking:
            out += _frame("content_block_delta", {"type": "content_block_delta", "index": self._block,
                                                  "delta": {"type": "thinking_delta", "thinking": event.thinking}})
        if event.signature:
            out += _frame("content_block_delta", {"type": "content_block_delta", "index": self._block,
                                                  "delta": {"type": "signature_delta", "signature": event.signature}})
        return out


# --------------------------------------------------------------------------- streams: parsing


class StreamParser:
    """An upstream Messages event stream, one SSE event at a time, as canonical events.

    Tool-use blocks are held until ``content_block_stop`` and emitted as one
    :class:`ToolCall` whose arguments are checked to be JSON. After ``message_stop``
    everything is ignored. Raises :class:`UpstreamError` (``during_stream=True``)
    for in-stream ``error`` events and for data that cannot be read.
    """

    __slots__ = ("_delta_seen", "_done", "_start_usage", "_started", "_stop_reason", "_stop_sequence", "_tools",
                 "_usage")

    def __init__(self) -> None:
        self._started = False
        self._done = False
        self._delta_seen = False
        self._start_usage = Usage()
        self._usage = Usage()
        self._stop_reason: StopReason | None = None
        self._stop_sequence: str | None = None
        self._tools: dict[int, tuple[str, str, list[str]]] = {}

    @property
    def done(self) -> bool:
        """True once ``message_stop`` (or :meth:`finish`) produced the :class:`Stop`."""
        return self._done

    def feed(self, event_name: str | None, data: str) -> list[Event]:
        if self._done:
            return []
        try:
            payload = orjson.loads(data)
        except orjson.JSONDecodeError:
            raise _malformed("upstream sent a stream event that is not JSON", during_stream=True) from None
        if not isinstance(payload, dict):
            raise _malformed("upstream sent a stream event that is not a JSON object", during_stream=True)
        kind = event_name or payload.get("type")
        if kind == "content_block_delta" and self._started:  # the hot path: one text delta
            delta = payload.get("delta")
            if type(delta) is dict and delta.get("type") == "text_delta":
                text, index = delta.get("text"), payload.get("index")
                if type(text) is str and type(index) is int:
                    return [TextDelta(index, text)]
        try:
            return self._dispatch(kind, payload)
        except (KeyError, TypeError, AttributeError):
            raise _malformed(f"upstream sent a {kind} event of the wrong shape", during_stream=True) from None

    def _dispatch(self, kind: object, payload: dict[str, Any]) -> list[Event]:
        if kind == "content_block_delta":
            self._require_start(kind)
            delta = payload["delta"]
            index = payload["index"]
            delta_type = delta["type"]
            if delta_type == "text_delta":
                return [TextDelta(index, _must_str(delta["text"]))]
            if delta_type == "input_json_delta":
                self._tools[index][2].append(_must_str(delta["partial_json"]))
                return []
            if delta_type == "thinking_delta":
                return [ThinkingDelta(index, _must_str(delta["thinking"]))]
            if delta_type == "signature_delta":
                return [ThinkingDelta(index, signature=_must_str(delta["signature"]))]
            return []  # citations_delta and future kinds carry nothing canonical
        if kind == "content_block_start":
            self._require_start(kind)
            return self._block_start(payload["index"], payload["content_block"])
        if kind == "content_block_stop":
            tool = self._tools.pop(payload["index"], None)
            if tool is None:
                return []
            arguments = "".join(tool[2])
            if arguments:
                try:
                    orjson.loads(arguments)
                except orjson.JSONDecodeError:
                    raise _malformed(f"upstream sent tool call {tool[1]!r} with arguments that are not JSON",
                                     during_stream=True) from None
            return [ToolCall(payload["index"], tool[0], tool[1], arguments)]
        if kind == "ping":
            return []
        if kind == "message_start":
            message = payload["message"]
            self._started = True
            self._start_usage = _parse_usage(message.get("usage"))
            return [Start(str(message.get("id") or ""), str(message.get("model") or ""), self._start_usage)]
        if kind == "message_delta":
            delta = payload.get("delta") or {}
            self._delta_seen = True
            self._stop_reason = _stop_in(delta.get("stop_reason"))
            sequence = delta.get("stop_sequence")
            self._stop_sequence = sequence if isinstance(sequence, str) else None
            if "usage" in payload:
                self._usage = _parse_usage(payload["usage"])
            return []
        if kind == "message_stop":
            self._require_start(kind)
            return [self._stop()]
        if kind == "error":
            error = payload.get("error")
            raise _from_error_payload(error if isinstance(error, dict) else {}, None, None, during_stream=True)
        return []  # unknown event types are ignored, as the API asks of clients

    def finish(self) -> list[Event]:
        """Called when the upstream stream ended. A stream that sent ``message_delta`` but
        not ``message_stop`` is complete; anything shorter is a lost connection."""
        if self._done:
            return []
        if self._started and self._delta_seen and not self._tools:
            return [self._stop()]
        raise UpstreamError(FailureKind.CONNECTION_LOST,
                            "the stream ended before message_stop" if self._started
                            else "the stream ended before message_start",
                            during_stream=True)

    def _require_start(self, kind: object) -> None:
        if not self._started:
            raise _malformed(f"upstream sent {kind} before message_start", during_stream=True)

    def _block_start(self, index: int, block: Mapping[str, Any]) -> list[Event]:
        block_type = block["type"]
        if block_type == "text":
            text = _must_str(block.get("text", ""))
            return [TextDelta(index, text)] if text else []
        if block_type == "tool_use":
            initial = block.get("input")
            self._tools[index] = (_must_str(block["id"]), _must_str(block["name"]),
                                  [] if not initial else [orjson.dumps(initial).decode()])
            return []
        if block_type == "thinking":
            text = _must_str(block.get("thinking", ""))
            return [ThinkingDelta(index, text)] if text else []
        if block_type == "redacted_thinking":
            return [ThinkingDelta(index, redacted=_must_str(block["data"]))]
        return []

    def _stop(self) -> Stop:
        self._done = True
        return Stop(self._stop_reason, merge_usage(self._start_usage, self._usage), self._stop_sequence)
