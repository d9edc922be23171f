"""Chat Completions, outbound: a request body for any OpenAI-compatible server (``render_request``)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from outlast.dialects.canonical import Image, Part, Request, Text, ToolChoice, ToolResult, ToolUse
from outlast.dialects.openai_chat._response import _dump_arguments

_EMPTY: Mapping[str, Any] = {}


def _image_part(image: Image) -> dict[str, Any]:
    url = image.url if image.url is not None else f"data:{image.media_type};base64,{image.data}"
    return {"type": "image_url", "image_url": {"url": url}}


def _user_content(parts: list[Part]) -> str | list[dict[str, Any]]:
    if len(parts) == 1 and isinstance(parts[0], Text):
        return parts[0].text
    content: list[dict[str, Any]] = []
    for part in parts:
        if isinstance(part, Text):
            content.append({"type": "text", "text": part.text})
        elif isinstance(part, Image):
            content.append(_image_part(part))
    return content


def _render_messages(request: Request) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    if request.system:
        out.append({"role": "system", "content": request.system_text()})
    for message in request.messages:
        if message.role == "assistant":
            texts = [p.text for p in message.content if isinstance(p, Text)]
            calls = [{"id": p.id, "type": "function", "function": {"name": p.name,
                                                                     "arguments": _dump_arguments(p.input)}}
                     for p in message.content if isinstance(p, ToolUse)]
            rendered: dict[str, Any] = {"role": "assistant", "content": "".join(texts) if texts or not calls else None}
            if calls:
                rendered["tool_calls"] = calls
            out.append(rendered)
        elif message.role == "system":
            out.append({"role": "system", "content": message.text()})
        else:
            rest: list[Part] = []
            for part in message.content:
                if isinstance(part, ToolResult):
                    out.append({"role": "tool", "tool_call_id": part.tool_use_id,
                                "content": "".join(c.text for c in part.content if isinstance(c, Text))})
                    rest.extend(c for c in part.content if isinstance(c, Image))
                elif isinstance(part, Text | Image):
                    rest.append(part)
            if rest or not any(isinstance(p, ToolResult) for p in message.content):
                out.append({"role": "user", "content": _user_content(rest) if rest else ""})
    return out


def _render_tool_choice(choice: ToolChoice) -> object:
    if choice.type == "tool":
        return {"type": "function", "function": {"name": choice.name}}
    return {"auto": "auto", "any": "required", "none": "none"}[choice.type]


def render_request(request: Request, model: str, *, stream: bool,
                   max_tokens_field: str = "max_tokens") -> dict[str, Any]:
    """A Chat Completions body for ``model`` from any canonical request."""
    body: dict[str, Any] = {"model": model, "messages": _render_messages(request)}
    if request.max_tokens is not None:
        body[max_tokens_field] = request.max_tokens
    if request.temperature is not None:
        body["temperature"] = request.temperature
    if request.top_p is not None:
        body["top_p"] = request.top_p
    if request.stop:
        body["stop"] = list(request.stop)
    if request.tools:
        body["tools"] = [
            {"type": "function", "function": {"name": t.name, "parameters": dict(t.input_schema)}
             | ({"description": t.description} if t.description is not None else {})}
            for t in request.tools
        ]
        if request.tool_choice is not None:
            body["tool_choice"] = _render_tool_choice(request.tool_choice)
            if request.tool_choice.disable_parallel:
                body["parallel_tool_calls"] = False
    user = request.metadata.get("user_id")
    if isinstance(user, str) and len(user) <= 64:
        body["user"] = user
    extra = request.extra.get("openai", _EMPTY)
    for key, value in extra.items():
        if key not in body and key not in ("stream", "stream_options"):
            body[key] = value
    if stream:
        body["stream"] = True
        options = extra.get("stream_options")
        body["stream_options"] = {**options, "include_usage": True} if isinstance(options, dict) else {
            "include_usage": True}
    return body
