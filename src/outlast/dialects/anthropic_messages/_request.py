"""Anthropic Messages, inbound: a request body as a canonical :class:`Request` (``parse_request``)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from outlast.dialects.canonical import (
    Image,
    Message,
    Part,
    Request,
    Text,
    Thinking,
    Tool,
    ToolChoice,
    ToolResult,
    ToolUse,
)
from outlast.providers.errors import RequestError

PASSED_HEADERS = ("anthropic-version", "anthropic-beta")
_MODELLED = frozenset({
    "model", "messages", "system", "tools", "tool_choice", "max_tokens", "temperature", "top_p", "top_k",
    "stop_sequences", "stream", "metadata", "thinking",
})
_ROLES = ("user", "assistant", "system")
_CHOICES = ("auto", "any", "tool", "none")


def _bad(path: str, problem: str) -> RequestError:
    return RequestError(400, f"{path}: {problem}", param=path)


def _whole(value: object) -> int | None:
    """An integer, also one written as a float (``100.0``, as JSON encoders may); else None."""
    if type(value) is int:
        return value
    if type(value) is float and value.is_integer():
        return int(value)
    return None


def _is_number(value: object) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def parse_request(body: object, headers: Mapping[str, str] | None = None) -> Request:
    """A Messages request body (already JSON-decoded) as a canonical :class:`Request`.

    Raises :class:`RequestError` (400) naming the first field that is wrong.
    """
    if not isinstance(body, dict):
        raise RequestError(400, "request body: must be a JSON object")
    get = body.get
    model = get("model")
    if model is None:
        raise _bad("model", "field required")
    if not isinstance(model, str) or not model:
        raise _bad("model", "must be a non-empty string")
    raw_max = get("max_tokens")
    if raw_max is None:
        raise _bad("max_tokens", "field required")
    max_tokens = _whole(raw_max)
    if max_tokens is None or max_tokens < 1:
        raise _bad("max_tokens", "must be a positive integer")
    raw_messages = get("messages")
    if raw_messages is None:
        raise _bad("messages", "field required")
    if not isinstance(raw_messages, list):
        raise _bad("messages", "must be an array of messages")
    if not raw_messages:
        raise _bad("messages", "must contain at least one message")
    messages = tuple([_parse_message(m, i) for i, m in enumerate(raw_messages)])

    extra = {k: v for k, v in body.items() if k not in _MODELLED}
    tools: tuple[Tool, ...] = ()
    if (raw_tools := get("tools")) is not None:
        tools, server_tools = _parse_tools(raw_tools)
        if server_tools:
            extra["tools"] = server_tools
    temperature = _optional_number(get("temperature"), "temperature", 0.0, 1.0)
    top_p = _optional_number(get("top_p"), "top_p", 0.0, 1.0)
    raw_top_k = get("top_k")
    top_k = None if raw_top_k is None else _whole(raw_top_k)
    if raw_top_k is not None and (top_k is None or top_k < 0):
        raise _bad("top_k", "must be a non-negative integer")
    stop: tuple[str, ...] = ()
    if (raw_stop := get("stop_sequences")) is not None:
        if not isinstance(raw_stop, list) or not all(isinstance(s, str) for s in raw_stop):
            raise _bad("stop_sequences", "must be an array of strings")
        stop = tuple(raw_stop)
    stream = get("stream", False)
    if stream is None:
        stream = False
    if not isinstance(stream, bool):
        raise _bad("stream", "must be true or false")
    metadata = get("metadata")
    if metadata is None:
        metadata = {}
    elif not isinstance(metadata, dict):
        raise _bad("metadata", "must be an object")
    elif (user_id := metadata.get("user_id")) is not None and not isinstance(user_id, str):
        raise _bad("metadata.user_id", "must be a string")
    return Request(
        model=model,
        messages=messages,
        system=_parse_system(get("system")),
        tools=tools,
        tool_choice=_parse_tool_choice(get("tool_choice")),
        max_tokens=max_tokens,
        temperature=temperature,
        top_p=top_p,
        top_k=top_k,
        stop=stop,
        stream=stream,
        metadata=metadata,
        thinking=_parse_thinking(get("thinking")),
        extra={"anthropic": extra} if extra else {},
        headers=_kept_headers(headers),
    )


def _kept_headers(headers: Mapping[str, str] | None) -> dict[str, str]:
    if not headers:
        return {}
    kept = {}
    for name, value in headers.items():
        lowered = name.lower()
        if lowered in PASSED_HEADERS:
            kept[lowered] = value
    return kept


def _optional_number(value: object, path: str, low: float, high: float) -> float | None:
    if value is None:
        return None
    if not _is_number(value):
        raise _bad(path, "must be a number")
    assert isinstance(value, int | float)
    if not low <= value <= high:
        raise _bad(path, f"must be between {low:g} and {high:g}")
    return value


def _parse_system(system: object) -> tuple[Text, ...]:
    if system is None:
        return ()
    if isinstance(system, str):
        return (Text(system),) if system else ()
    if not isinstance(system, list):
        raise _bad("system", "must be a string or an array of text blocks")
    return tuple([_parse_text_only(block, f"system.{i}") for i, block in enumerate(system)])


def _parse_text_only(block: object, path: str) -> Text:
    if not isinstance(block, dict):
        raise _bad(path, "must be a text block")
    if block.get("type") != "text":
        raise _bad(path, f"must be a text block, not {block.get('type')!r}")
    text = block.get("text")
    if not isinstance(text, str):
        raise _bad(f"{path}.text", "must be a string")
    return Text(text, _cache_control(block, path))


def _parse_message(message: object, i: int) -> Message:
    path = f"messages.{i}"
    if not isinstance(message, dict):
        raise _bad(path, "must be an object with role and content")
    role = message.get("role")
    if role is None:
        raise _bad(f"{path}.role", "field required")
    if role not in _ROLES:
        raise _bad(f"{path}.role", f"must be 'user', 'assistant' or 'system', not {role!r}")
    content = message.get("content")
    if isinstance(content, str):
        return Message(role, (Text(content),))
    if content is None:
        raise _bad(f"{path}.content", "field required")
    if not isinstance(content, list):
        raise _bad(f"{path}.content", "must be a string or an array of content blocks")
    if role == "system":
        return Message(role, tuple([_parse_text_only(b, f"{path}.content.{j}") for j, b in enumerate(content)]))
    return Message(role, tuple([_parse_block(b, f"{path}.content.{j}") for j, b in enumerate(content)]))


def _cache_control(block: Mapping[str, Any], path: str) -> Mapping[str, Any] | None:
    value = block.get("cache_control")
    if value is not None and not isinstance(value, dict):
        raise _bad(f"{path}.cache_control", "must be an object such as {\"type\": \"ephemeral\"}")
    return value


def _str_field(block: Mapping[str, Any], name: str, path: str) -> str:
    value = block.get(name)
    if value is None:
        raise _bad(f"{path}.{name}", "field required")
    if not isinstance(value, str):
        raise _bad(f"{path}.{name}", "must be a string")
    return value


def _parse_block(block: object, path: str) -> Part:
    if not isinstance(block, dict):
        raise _bad(path, "must be a content block object")
    kind = block.get("type")
    if kind == "text":
        return Text(_str_field(block, "text", path), _cache_control(block, path))
    if kind == "tool_result":
        return _parse_tool_result(block, path)
    if kind == "tool_use":
        tool_input = block.get("input", {})
        if not isinstance(tool_input, dict):
            raise _bad(f"{path}.input", "must be an object")
        return ToolUse(_str_field(block, "id", path), _str_field(block, "name", path), tool_input,
                       _cache_control(block, path))
    if kind == "thinking":
        signature = block.get("signature")
        if signature is not None and not isinstance(signature, str):
            raise _bad(f"{path}.signature", "must be a string")
        return Thinking(_str_field(block, "thinking", path), signature or None)
    if kind == "redacted_thinking":
        return Thinking(redacted=_str_field(block, "data", path))
    if kind == "image" or kind == "document":
        return _parse_media(block, kind, path)
    if kind is None:
        raise _bad(f"{path}.type", "field required")
    raise _bad(path, f"unknown content block type {kind!r}")


def _parse_tool_result(block: Mapping[str, Any], path: str) -> ToolResult:
    tool_use_id = _str_field(block, "tool_use_id", path)
    is_error = block.get("is_error")
    if is_error is None:
        is_error = False
    elif not isinstance(is_error, bool):
        raise _bad(f"{path}.is_error", "must be true or false")
    content = block.get("content")
    parts: tuple[Text | Image, ...]
    if content is None:
        parts = ()
    elif isinstance(content, str):
        parts = (Text(content),)
    elif isinstance(content, list):
        items: list[Text | Image] = []
        for j, item in enumerate(content):
            part = _parse_block(item, f"{path}.content.{j}")
            if not isinstance(part, Text | Image):
                raise _bad(f"{path}.content.{j}", "a tool result may only hold text, image and document blocks")
            items.append(part)
        parts = tuple(items)
    else:
        raise _bad(f"{path}.content", "must be a string or an array of content blocks")
    return ToolResult(tool_use_id, parts, is_error, _cache_control(block, path))


def _parse_media(block: Mapping[str, Any], kind: str, path: str) -> Text | Image:
    source = block.get("source")
    if not isinstance(source, dict):
        raise _bad(f"{path}.source", "field required" if source is None else "must be an object")
    source_type = source.get("type")
    cache_control = _cache_control(block, path)
    spath = f"{path}.source"
    if source_type == "base64":
        return Image(_str_field(source, "media_type", spath), data=_str_field(source, "data", spath),
                     cache_control=cache_control)
    if source_type == "url":
        media_type = "application/pdf" if kind == "document" else None
        return Image(media_type, url=_str_field(source, "url", spath), cache_control=cache_control)
    if source_type == "text" and kind == "document":
        return Text(_str_field(source, "data", spath), cache_control)
    raise _bad(f"{spath}.type", f"{kind} source type {source_type!r} is not supported")


def _parse_tools(raw: object) -> tuple[tuple[Tool, ...], list[Any]]:
    if not isinstance(raw, list):
        raise _bad("tools", "must be an array of tools")
    tools: list[Tool] = []
    server: list[Any] = []
    for i, tool in enumerate(raw):
        path = f"tools.{i}"
        if not isinstance(tool, dict):
            raise _bad(path, "must be an object")
        kind = tool.get("type")
        if kind is not None and not isinstance(kind, str):
            raise _bad(f"{path}.type", "must be a string")
        if kind is not None and kind != "custom":
            server.append(tool)  # a server tool (web_search, bash, ...): sent on, unmodelled
            continue
        name = _str_field(tool, "name", path)
        description = tool.get("description")
        if description is not None and not isinstance(description, str):
            raise _bad(f"{path}.description", "must be a string")
        schema = tool.get("input_schema")
        if schema is None:
            raise _bad(f"{path}.input_schema", "field required")
        if not isinstance(schema, dict):
            raise _bad(f"{path}.input_schema", "must be a JSON Schema object")
        tools.append(Tool(name, description, schema, _cache_control(tool, path)))
    return tuple(tools), server


def _parse_tool_choice(raw: object) -> ToolChoice | None:
    if raw is None:
        return None
    if not isinstance(raw, dict):
        raise _bad("tool_choice", "must be an object such as {\"type\": \"auto\"}")
    kind = raw.get("type")
    if kind not in _CHOICES:
        raise _bad("tool_choice.type", f"must be one of 'auto', 'any', 'tool', 'none', not {kind!r}")
    name = None
    if kind == "tool":
        name = _str_field(raw, "name", "tool_choice")
    disable = raw.get("disable_parallel_tool_use")
    if disable is None:
        disable = False
    elif not isinstance(disable, bool):
        raise _bad("tool_choice.disable_parallel_tool_use", "must be true or false")
    return ToolChoice(kind, name, disable)


def _parse_thinking(raw: object) -> Mapping[str, Any] | None:
    if raw is None:
        return None
    if not isinstance(raw, dict):
        raise _bad("thinking", "must be an object such as {\"type\": \"adaptive\"}")
    kind = raw.get("type")
    if kind == "enabled":
        raw_budget = raw.get("budget_tokens")
        if raw_budget is None:
            raise _bad("thinking.budget_tokens", "field required when thinking is enabled")
        budget = _whole(raw_budget)
        if budget is None or budget < 1:
            raise _bad("thinking.budget_tokens", "must be a positive integer")
        if type(raw_budget) is not int:
            raw = {**raw, "budget_tokens": budget}
    elif kind not in ("adaptive", "disabled"):
        raise _bad("thinking.type", f"must be 'enabled', 'adaptive' or 'disabled', not {kind!r}")
    return raw
