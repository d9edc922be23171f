"""Chat Completions, inbound: a request body as a canonical :class:`Request` (``parse_request``)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from outlast.dialects.canonical import (
    Image,
    Message,
    Part,
    Request,
    Text,
    Tool,
    ToolChoice,
    ToolResult,
    ToolUse,
)
from outlast.dialects.openai_chat._response import _arguments
from outlast.providers.errors import RequestError

# Fields parse_request reads itself; everything else goes to extra["openai"].
_MODELLED = frozenset({
    "model", "messages", "max_tokens", "max_completion_tokens", "temperature", "top_p", "top_k", "stop",
    "stream", "tools", "tool_choice", "parallel_tool_calls", "user", "n",
})
_ROLES = "system, developer, user, assistant, tool"


def _bad(message: str, param: str | None) -> RequestError:
    return RequestError(400, message, param=param)


def _text_parts(value: object, where: str, *, allow_refusal: bool = False) -> list[Text]:
    """A string, or a list of text parts, as Text values (system, developer, tool, assistant)."""
    if isinstance(value, str):
        return [Text(value)]
    if not isinstance(value, list):
        raise _bad(f"{where}: expected a string or a list of text parts", where)
    texts = []
    for i, part in enumerate(value):
        kind = part.get("type") if isinstance(part, dict) else None
        if kind == "text" and isinstance(part.get("text"), str):
            texts.append(Text(part["text"]))
        elif allow_refusal and kind == "refusal" and isinstance(part.get("refusal"), str):
            texts.append(Text(part["refusal"]))
        else:
            raise _bad(f"{where}[{i}]: expected a text part ({{\"type\": \"text\", \"text\": ...}})", f"{where}[{i}]")
    return texts


def _image(url: object, where: str) -> Image:
    if not isinstance(url, str) or not url:
        raise _bad(f"{where}.image_url.url: expected a data: or http(s) URL", f"{where}.image_url.url")
    if url.startswith("data:"):
        header, sep, data = url[5:].partition(",")
        media_type, _, encoding = header.partition(";")
        if not sep or encoding != "base64" or not media_type:
            raise _bad(f"{where}.image_url.url: expected a base64 data URL (data:<type>;base64,...)",
                       f"{where}.image_url.url")
        return Image(media_type=media_type, data=data)
    return Image(url=url)


def _user_parts(value: object, where: str) -> list[Part]:
    if isinstance(value, str):
        return [Text(value)]
    if not isinstance(value, list):
        raise _bad(f"{where}: expected a string or a list of content parts", where)
    parts: list[Part] = []
    for i, part in enumerate(value):
        at = f"{where}[{i}]"
        kind = part.get("type") if isinstance(part, dict) else None
        if kind == "text":
            if not isinstance(part.get("text"), str):
                raise _bad(f"{at}.text: expected a string", f"{at}.text")
            parts.append(Text(part["text"]))
        elif kind == "image_url":
            image = part.get("image_url")
            url = image.get("url") if isinstance(image, dict) else image
            parts.append(_image(url, at))
        elif kind is None:
            raise _bad(f"{at}: expected a content part object with a type", at)
        else:
            raise _bad(f"{at}.type: unsupported content part type {kind!r} (text and image_url are supported)",
                       f"{at}.type")
    return parts
def _tool_uses(calls: object, where: str) -> list[Part]:
    if not isinstance(calls, list):
        raise _bad(f"{where}: expected a list of tool calls", where)
    uses: list[Part] = []
    for i, call in enumerate(calls):
        at = f"{where}[{i}]"
        function = call.get("function") if isinstance(call, dict) else None
        if not isinstance(function, dict):
            raise _bad(f"{at}.function: field required", f"{at}.function")
        if not isinstance(call.get("id"), str):
            raise _bad(f"{at}.id: field required", f"{at}.id")
        if not isinstance(function.get("name"), str):
            raise _bad(f"{at}.function.name: field required", f"{at}.function.name")
        arguments = function.get("arguments", "")
        if not isinstance(arguments, str):
            raise _bad(f"{at}.function.arguments: expected a JSON string", f"{at}.function.arguments")
        uses.append(ToolUse(call["id"], function["name"], _arguments(arguments)))
    return uses


def _messages(value: object) -> tuple[tuple[Text, ...], tuple[Message, ...]]:
    if value is None:
        raise _bad("messages: field required", "messages")
    if not isinstance(value, list) or not value:
        raise _bad("messages: expected a non-empty list of messages", "messages")
    system: list[Text] = []
    messages: list[Message] = []
    leading = True
    results: list[Part] | None = None  # the user message a run of tool messages builds
    for i, message in enumerate(value):
        where = f"messages[{i}]"
        if not isinstance(message, dict):
            raise _bad(f"{where}: expected a message object", where)
        role = message.get("role")
        content = message.get("content")
        if role == "tool":
            leading = False
            call_id = message.get("tool_call_id")
            if not isinstance(call_id, str):
                raise _bad(f"{where}.tool_call_id: field required", f"{where}.tool_call_id")
            texts = [] if content is None or content == "" else _text_parts(content, f"{where}.content")
            if results is None:
                results = []
                messages.append(Message("user", ()))  # filled in below
            results.append(ToolResult(call_id, tuple(texts)))
            messages[-1] = Message("user", tuple(results))
            continue
        if role in ("system", "developer"):
            texts = _text_parts(content, f"{where}.content")
            if leading:
                system.extend(texts)
            else:
                messages.append(Message("system", tuple(texts)))
            results = None
            continue
        leading = False
        if role == "user":
            if content is None:
                raise _bad(f"{where}.content: field required", f"{where}.content")
            parts = _user_parts(content, f"{where}.content")
            if results is not None:  # a user turn right after tool results joins their message
                messages[-1] = Message("user", (*results, *parts))
            else:
                messages.append(Message("user", tuple(parts)))
        elif role == "assistant":
            parts = [] if content is None else list(_text_parts(content, f"{where}.content", allow_refusal=True))
            if content is None and isinstance(message.get("refusal"), str):
                parts.append(Text(message["refusal"]))
            calls = message.get("tool_calls")
            if calls is not None:
                parts.extend(_tool_uses(calls, f"{where}.tool_calls"))
            messages.append(Message("assistant", tuple(parts)))
        elif role is None:
            raise _bad(f"{where}.role: field required", f"{where}.role")
        else:
            raise _bad(f"{where}.role: expected one of {_ROLES}, got {role!r}", f"{where}.role")
        results = None
    return tuple(system), tuple(messages)


def _tools(value: object) -> tuple[Tool, ...]:
    if not isinstance(value, list):
        raise _bad("tools: expected a list of tools", "tools")
    tools = []
    for i, tool in enumerate(value):
        where = f"tools[{i}]"
        if not isinstance(tool, dict):
            raise _bad(f"{where}: expected a tool object", where)
        if tool.get("type", "function") != "function":
            raise _bad(f"{where}.type: only function tools are supported, got {tool.get('type')!r}",
                       f"{where}.type")
        function = tool.get("function")
        if not isinstance(function, dict):
            raise _bad(f"{where}.function: field required", f"{where}.function")
        name = function.get("name")
        if not isinstance(name, str) or not name:
            raise _bad(f"{where}.function.name: field required", f"{where}.function.name")
        description = function.get("description")
        if description is not None and not isinstance(description, str):
            raise _bad(f"{where}.function.description: expected a string", f"{where}.function.description")
        parameters = function.get("parameters")
        if parameters is None:
            tools.append(Tool(name, description))
        elif isinstance(parameters, dict):
            tools.append(Tool(name, description, parameters))
        else:
            raise _bad(f"{where}.function.parameters: expected a JSON schema object",
                       f"{where}.function.parameters")
    return tuple(tools)


def _tool_choice(value: object, parallel: object) -> ToolChoice | None:
    if parallel is not None and not isinstance(parallel, bool):
        raise _bad("parallel_tool_calls: expected a boolean", "parallel_tool_calls")
    disable = parallel is False
    if value is None:
        return ToolChoice("auto", disable_parallel=True) if disable else None
    if value == "auto":
        return ToolChoice("auto", disable_parallel=disable)
    if value == "required":
        return ToolChoice("any", disable_parallel=disable)
    if value == "none":
        return ToolChoice("none", disable_parallel=disable)
    if isinstance(value, dict):
        function = value.get("function")
        if value.get("type") == "function" and isinstance(function, dict) and isinstance(function.get("name"), str):
            return ToolChoice("tool", function["name"], disable_parallel=disable)
    raise _bad('tool_choice: expected "auto", "none", "required" or {"type": "function", "function": {"name": ...}}',
               "tool_choice")


def _whole(value: object) -> int | None:
    """An integer, also one written as a float (``100.0``, as JSON encoders may); else None."""
    if type(value) is int:
        return value
    if type(value) is float and value.is_integer():
        return int(value)
    return None


def _positive_int(body: Mapping[str, Any], field: str) -> int | None:
    value = body.get(field)
    if value is None:
        return None
    number = _whole(value)
    if number is None or number < 1:
        raise _bad(f"{field}: must be a positive integer", field)
    return number


def _number(body: Mapping[str, Any], field: str, high: float) -> float | None:
    value = body.get(field)
    if value is None:
        return None
    if type(value) not in (int, float) or not 0 <= value <= high:
        raise _bad(f"{field}: must be a number between 0 and {high:g}", field)
    return float(value)


def parse_request(body: object, headers: Mapping[str, str] | None = None) -> Request:
    """A Chat Completions request body as a canonical :class:`Request`.

    Raises :class:`RequestError` (400) naming the first field that is wrong.
    """
    if not isinstance(body, dict):
        raise _bad("request body: expected a JSON object", None)
    model = body.get("model")
    if model is None:
        raise _bad("model: field required", "model")
    if not isinstance(model, str) or not model:
        raise _bad("model: expected a non-empty string", "model")
    system, messages = _messages(body.get("messages"))
    n = body.get("n")
    if n is not None and n != 1:
        raise _bad("n: only n=1 is supported (one answer per request)", "n")
    max_tokens = _positive_int(body, "max_tokens")
    max_tokens = _positive_int(body, "max_completion_tokens") or max_tokens  # the newer name wins
    top_k = _positive_int(body, "top_k")
    stop = body.get("stop")
    if stop is None:
        stops: tuple[str, ...] = ()
    elif isinstance(stop, str):
        stops = (stop,)
    elif isinstance(stop, list) and all(isinstance(s, str) for s in stop):
        stops = tuple(stop)
    else:
        raise _bad("stop: expected a string or a list of strings", "stop")
    stream = body.get("stream", False)
    if stream is None:
        stream = False
    if not isinstance(stream, bool):
        raise _bad("stream: expected a boolean", "stream")
    options = body.get("stream_options")
    if options is not None and (not isinstance(options, dict)
                                or not isinstance(options.get("include_usage"), bool | None)):
        raise _bad("stream_options: expected an object such as {\"include_usage\": true}", "stream_options")
    tools = _tools(body["tools"]) if body.get("tools") is not None else ()
    metadata: dict[str, Any] = {}
    user = body.get("user")
    if user is not None:
        if not isinstance(user, str):
            raise _bad("user: expected a string", "user")
        metadata["user_id"] = user
    extra = {k: v for k, v in body.items() if k not in _MODELLED}
    return Request(
        model=model,
        messages=messages,
        system=system,
        tools=tools,
        tool_choice=_tool_choice(body.get("tool_choice"), body.get("parallel_tool_calls")),
        max_tokens=max_tokens,
        temperature=_number(body, "temperature", 2.0),
        top_p=_number(body, "top_p", 1.0),
        top_k=top_k,
        stop=stops,
        stream=stream,
        metadata=metadata,
        extra={"openai": extra} if extra else {},
    )
