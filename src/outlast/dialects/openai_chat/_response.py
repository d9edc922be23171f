"""Chat Completions responses, both directions, and the vocabulary requests and streams share:
finish reasons, usage, tool-call arguments (:data:`RAW_ARGUMENTS`)."""

from __future__ import annotations

import time
from collections.abc import Mapping
from typing import Any

import orjson

from outlast.dialects.canonical import Part, Response, StopReason, Text, Thinking, ToolUse, Usage
from outlast.dialects.openai_chat._errors import _classify_object
from outlast.providers.errors import FailureKind, UpstreamError

RAW_ARGUMENTS = "_raw"  # key of the input dict that holds tool arguments that were not valid JSON

_FINISH_OUT = {
    StopReason.END_TURN: "stop",
    StopReason.STOP_SEQUENCE: "stop",
    StopReason.PAUSE_TURN: "stop",
    StopReason.MAX_TOKENS: "length",
    StopReason.TOOL_USE: "tool_calls",
    StopReason.CONTENT_FILTER: "content_filter",
}
_FINISH_IN = {
    "stop": StopReason.END_TURN,
    "length": StopReason.MAX_TOKENS,
    "tool_calls": StopReason.TOOL_USE,
    "function_call": StopReason.TOOL_USE,
    "content_filter": StopReason.CONTENT_FILTER,
}


# =========================================================================== tool-call arguments


def _arguments(text: str) -> dict[str, Any]:
    if not text.strip():
        return {}
    try:
        value = orjson.loads(text)
    except orjson.JSONDecodeError:
        return {RAW_ARGUMENTS: text}
    return value if isinstance(value, dict) else {"value": value}


def _dump_arguments(value: Mapping[str, Any]) -> str:
    if len(value) == 1 and isinstance(raw := value.get(RAW_ARGUMENTS), str):
        return raw
    return orjson.dumps(value).decode()


# =========================================================================== inbound: responses


def _finish(reason: StopReason | None) -> str:
    return "stop" if reason is None else _FINISH_OUT.get(reason, "stop")


def _usage(usage: Usage) -> dict[str, Any]:
    prompt = usage.input_tokens + usage.cache_read_input_tokens + usage.cache_creation_input_tokens
    return {
        "prompt_tokens": prompt,
        "completion_tokens": usage.output_tokens,
        "total_tokens": prompt + usage.output_tokens,
        "prompt_tokens_details": {"cached_tokens": usage.cache_read_input_tokens},
    }


def render_response(response: Response, *, message_id: str) -> dict[str, Any]:
    """A ``chat.completion`` object. Thinking is not rendered (no standard field)."""
    texts = [p.text for p in response.content if isinstance(p, Text)]
    calls = [p for p in response.content if isinstance(p, ToolUse)]
    message: dict[str, Any] = {"role": "assistant", "content": "".join(texts) if texts or not calls else None,
                               "refusal": None}
    if calls:
        message["tool_calls"] = [
            {"id": c.id, "type": "function", "function": {"name": c.name, "arguments": _dump_arguments(c.input)}}
            for c in calls
        ]
    return {
        "id": message_id,
        "object": "chat.completion",
        "created": int(time.time()),
        "model": response.model,
        "choices": [{"index": 0, "message": message, "logprobs": None,
                     "finish_reason": _finish(response.stop_reason)}],
        "usage": _usage(response.usage),
    }


# =========================================================================== outbound: responses


def _malformed(message: str, *, during_stream: bool = False) -> UpstreamError:
    return UpstreamError(FailureKind.MALFORMED, message, during_stream=during_stream)


def _parse_usage(value: object) -> Usage:
    if not isinstance(value, dict):
        return Usage()
    prompt = value.get("prompt_tokens") or 0
    details = value.get("prompt_tokens_details")
    cached = (details.get("cached_tokens") or 0) if isinstance(details, dict) else 0
    return Usage(input_tokens=max(0, prompt - cached), output_tokens=value.get("completion_tokens") or 0,
                 cache_read_input_tokens=cached)


def _stop_reason(value: object, saw_tools: bool) -> StopReason:
    if isinstance(value, str) and value in _FINISH_IN:
        return _FINISH_IN[value]
    return StopReason.TOOL_USE if saw_tools else StopReason.END_TURN


def _reasoning(holder: Mapping[str, Any]) -> str | None:
    value = holder.get("reasoning_content")
    if value is None:
        value = holder.get("reasoning")
    return value if isinstance(value, str) and value else None


def parse_response(body: object) -> Response:
    """A ``chat.completion`` object as a :class:`Response`; ``UpstreamError(MALFORMED)`` on a wrong shape."""
    if not isinstance(body, dict):
        raise _malformed("upstream answer is not a JSON object")
    if isinstance(body.get("error"), dict | str):
        raise _classify_object(200, body["error"], during_stream=False)
    choices = body.get("choices")
    if not isinstance(choices, list) or not choices or not isinstance(choices[0], dict):
        raise _malformed("upstream answer has no choices")
    message = choices[0].get("message")
    if not isinstance(message, dict):
        raise _malformed("upstream answer has no message")
    content: list[Part] = []
    reasoning = _reasoning(message)
    if reasoning:
        content.append(Thinking(reasoning))
    text = message.get("content")
    if isinstance(text, str) and text:
        content.append(Text(text))
    calls = message.get("tool_calls")
    if isinstance(calls, list):
        for call in calls:
            function = call.get("function") if isinstance(call, dict) else None
            if not isinstance(function, dict) or not isinstance(function.get("name"), str):
                raise _malformed("upstream tool call has no function name")
            arguments = function.get("arguments")
            content.append(ToolUse(str(call.get("id") or f"call_{len(content)}"), function["name"],
                                   _arguments(arguments if isinstance(arguments, str) else "")))
    saw_tools = any(isinstance(p, ToolUse) for p in content)
    return Response(
        id=str(body.get("id") or ""),
        model=str(body.get("model") or ""),
        content=tuple(content),
        stop_reason=_stop_reason(choices[0].get("finish_reason"), saw_tools),
        usage=_parse_usage(body.get("usage")),
    )
