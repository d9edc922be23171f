"""Anthropic Messages responses, both directions, and the usage and stop-reason vocabulary streams share."""

from __future__ import annotations

from typing import Any

from outlast.dialects.anthropic_messages._errors import _from_error_payload
from outlast.dialects.canonical import Part, Response, StopReason, Text, Thinking, ToolUse, Usage
from outlast.providers.errors import FailureKind, UpstreamError

_STOP_IN = {s.value: s for s in StopReason} | {
    "refusal": StopReason.CONTENT_FILTER,
    "model_context_window_exceeded": StopReason.MAX_TOKENS,
}
_STOP_OUT = {s: s.value for s in StopReason} | {StopReason.CONTENT_FILTER: "refusal"}


def _render_usage(usage: Usage) -> dict[str, int]:
    return {
        "input_tokens": usage.input_tokens,
        "cache_creation_input_tokens": usage.cache_creation_input_tokens,
        "cache_read_input_tokens": usage.cache_read_input_tokens,
        "output_tokens": usage.output_tokens,
    }


def _parse_usage(raw: object) -> Usage:
    if not isinstance(raw, dict):
        return Usage()
    get = raw.get
    return Usage(get("input_tokens") or 0, get("output_tokens") or 0, get("cache_read_input_tokens") or 0,
                 get("cache_creation_input_tokens") or 0)


def _stop_out(reason: StopReason | None) -> str | None:
    return None if reason is None else _STOP_OUT[reason]


def _stop_in(reason: object) -> StopReason | None:
    if reason is None:
        return None
    return _STOP_IN.get(reason, StopReason.END_TURN) if isinstance(reason, str) else StopReason.END_TURN


def render_response(response: Response, *, message_id: str) -> dict[str, Any]:
    """The non-streaming Messages response body."""
    content: list[dict[str, Any]] = []
    for part in response.content:
        if isinstance(part, Text):
            content.append({"type": "text", "text": part.text})
        elif isinstance(part, ToolUse):
            content.append({"type": "tool_use", "id": part.id, "name": part.name, "input": part.input})
        elif isinstance(part, Thinking):
            if part.redacted is not None:
                content.append({"type": "redacted_thinking", "data": part.redacted})
            else:
                content.append({"type": "thinking", "thinking": part.thinking, "signature": part.signature or ""})
    return {
        "id": message_id,
        "type": "message",
        "role": "assistant",
        "model": response.model,
        "content": content,
        "stop_reason": _stop_out(response.stop_reason),
        "stop_sequence": response.stop_sequence,
        "usage": _render_usage(response.usage),
    }


def _malformed(message: str, *, during_stream: bool = False) -> UpstreamError:
    return UpstreamError(FailureKind.MALFORMED, message, during_stream=during_stream)


def parse_response(body: object) -> Response:
    """A non-streaming Messages response as a canonical :class:`Response`.

    Raises :class:`UpstreamError` (``MALFORMED``) on a wrong shape, or the classified
    error when the body is an Anthropic error document.
    """
    if not isinstance(body, dict):
        raise _malformed("upstream answered with JSON that is not a Messages response")
    if body.get("type") == "error":
        error = body.get("error")
        raise _from_error_payload(error if isinstance(error, dict) else {}, None, None)
    content = body.get("content")
    if not isinstance(content, list):
        raise _malformed("upstream response has no content array")
    parts: list[Part] = []
    try:
        for block in content:
            kind = block["type"]
            if kind == "text":
                parts.append(Text(_must_str(block["text"])))
            elif kind == "tool_use":
                tool_input = block.get("input") or {}
                if not isinstance(tool_input, dict):
                    raise TypeError
                parts.append(ToolUse(_must_str(block["id"]), _must_str(block["name"]), tool_input))
            elif kind == "thinking":
                parts.append(Thinking(_must_str(block["thinking"]), block.get("signature") or None))
            elif kind == "redacted_thinking":
                parts.append(Thinking(redacted=_must_str(block["data"])))
            # server tool blocks and other types have no canonical form; they are skipped
    except (KeyError, TypeError):
        raise _malformed("upstream response has a content block of the wrong shape") from None
    stop_sequence = body.get("stop_sequence")
    return Response(
        id=str(body.get("id") or ""),
        model=str(body.get("model") or ""),
        content=tuple(parts),
        stop_reason=_stop_in(body.get("stop_reason")),
        stop_sequence=stop_sequence if isinstance(stop_sequence, str) else None,
        usage=_parse_usage(body.get("usage")),
    )


def _must_str(value: object) -> str:
    if not isinstance(value, str):
        raise TypeError
    return value
