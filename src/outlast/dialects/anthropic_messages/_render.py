"""Anthropic Messages, outbound: a Messages request body from any canonical :class:`Request`."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from outlast.dialects.canonical import (
    Image,
    Message,
    Part,
    Request,
    Text,
    Thinking,
    Tool,
    ToolResult,
    ToolUse,
)

DEFAULT_MAX_TOKENS = 4096


def render_request(request: Request, model: str, *, stream: bool) -> dict[str, Any]:
    """A Messages request body for ``model`` from any canonical request (see the package
    docstring for what is adjusted on the way)."""
    max_tokens = request.max_tokens
    thinking = request.thinking
    if max_tokens is None:
        max_tokens = DEFAULT_MAX_TOKENS
        budget = thinking.get("budget_tokens") if thinking else None
        if isinstance(budget, int) and thinking and thinking.get("type") == "enabled" and budget >= max_tokens:
            max_tokens = budget + DEFAULT_MAX_TOKENS
    messages = request.messages
    if any(m.role == "system" for m in messages) and not _mid_conversation_system(request.headers):
        messages = _fold_system(messages)
    body: dict[str, Any] = {
        "model": model,
        "max_tokens": max_tokens,
        "messages": _render_messages(messages),
    }
    if request.system:
        body["system"] = _render_content(request.system)
    if request.tools:
        body["tools"] = [_render_tool(t) for t in request.tools]
    if (choice := request.tool_choice) is not None:
        rendered: dict[str, Any] = {"type": choice.type}
        if choice.type == "tool":
            rendered["name"] = choice.name
        if choice.disable_parallel and choice.type != "none":
            rendered["disable_parallel_tool_use"] = True
        body["tool_choice"] = rendered
    if request.temperature is not None:
        body["temperature"] = min(1.0, max(0.0, request.temperature))
    if request.top_p is not None:
        body["top_p"] = request.top_p
    if request.top_k is not None:
        body["top_k"] = request.top_k
    if request.stop:
        body["stop_sequences"] = list(request.stop)
    user_id = request.metadata.get("user_id") if request.metadata else None
    if isinstance(user_id, str):
        body["metadata"] = {"user_id": user_id}
    if thinking is not None:
        body["thinking"] = thinking
    if stream:
        body["stream"] = True
    extra = request.extra.get("anthropic")
    if extra:
        for key, value in extra.items():
            if key == "tools":
                body["tools"] = [*body.get("tools", ()), *value]
            elif key not in body:
                body[key] = value
    return body


def _render_messages(messages: Sequence[Message]) -> list[dict[str, Any]]:
    rendered = []
    for message in messages:
        content = _render_content(message.content)
        if not content and message.content:
            continue  # everything in it was dropped (unsigned thinking, empty text): the API refuses it empty
        rendered.append({"role": message.role, "content": content})
    return rendered


_COUNT_TOKENS_FIELDS = ("model", "messages", "system", "tools", "tool_choice", "thinking", "context_management",
                        "mcp_servers")


def render_count_tokens_request(request: Request, model: str) -> dict[str, Any]:
    """The body for ``POST /v1/messages/count_tokens``: the fields that endpoint accepts."""
    body = render_request(request, model, stream=False)
    return {k: body[k] for k in _COUNT_TOKENS_FIELDS if k in body}


def _mid_conversation_system(headers: Mapping[str, str]) -> bool:
    beta = headers.get("anthropic-beta") if headers else None
    return beta is not None and "mid-conversation-system" in beta


def _fold_system(messages: Sequence[Message]) -> tuple[Message, ...]:
    """Mid-conversation system messages folded into neighbouring user turns (see the package docstring)."""
    out: list[Message] = []
    pending: list[Part] = []  # system text waiting for the next user message
    for message in messages:
        if message.role == "system":
            note = _reminder(message)
            if not note:
                continue
            if out and out[-1].role == "user" and not pending:
                out[-1] = Message("user", out[-1].content + note)
            else:
                pending.extend(note)
        elif pending and message.role == "user":
            content = message.content
            cut = 0
            while cut < len(content) and isinstance(content[cut], ToolResult):
                cut += 1
            out.append(Message("user", content[:cut] + tuple(pending) + content[cut:]))
            pending = []
        else:
            if pending:
                out.append(Message("user", tuple(pending)))
                pending = []
            out.append(message)
    if pending:
        out.append(Message("user", tuple(pending)))
    return tuple(out)


def _reminder(message: Message) -> tuple[Text, ...]:
    texts = [p for p in message.content if isinstance(p, Text) and p.text]
    if not texts:
        return ()
    body = "\n\n".join(t.text for t in texts)
    return (Text(f"<system-reminder>\n{body}\n</system-reminder>", texts[-1].cache_control),)


def _render_content(parts: Sequence[Part]) -> str | list[dict[str, Any]]:
    """One plain text part is sent as a string (every Messages server accepts that); else blocks."""
    if len(parts) == 1:
        only = parts[0]
        if type(only) is Text and only.cache_control is None and only.text:
            return only.text
    blocks = []
    for part in parts:
        block = _render_part(part)
        if block is not None:
            blocks.append(block)
    return blocks


def _render_part(part: Part) -> dict[str, Any] | None:
    block: dict[str, Any]
    if isinstance(part, Text):
        if not part.text:
            return None  # the API rejects empty text blocks
        block = {"type": "text", "text": part.text}
    elif isinstance(part, ToolUse):
        block = {"type": "tool_use", "id": part.id, "name": part.name, "input": part.input}
    elif isinstance(part, ToolResult):
        block = {"type": "tool_result", "tool_use_id": part.tool_use_id}
        if part.content:
            block["content"] = _render_content(part.content)
        if part.is_error:
            block["is_error"] = True
    elif isinstance(part, Thinking):
        if part.redacted is not None:
            return {"type": "redacted_thinking", "data": part.redacted}
        if not part.signature:
            return None  # unsigned reasoning (another vendor's) cannot be verified by Anthropic
        return {"type": "thinking", "thinking": part.thinking, "signature": part.signature}
    else:
        block = _render_media(part)
    if part.cache_control is not None:
        block["cache_control"] = part.cache_control
    return block


def _render_media(image: Image) -> dict[str, Any]:
    kind = "document" if image.media_type == "application/pdf" else "image"
    if image.data is not None:
        media_type = image.media_type or _sniff(image.data)
        return {"type": kind, "source": {"type": "base64", "media_type": media_type, "data": image.data}}
    return {"type": kind, "source": {"type": "url", "url": image.url}}


def _sniff(data: str) -> str:
    for prefix, media_type in (("iVBOR", "image/png"), ("/9j/", "image/jpeg"), ("R0lGOD", "image/gif"),
                               ("UklGR", "image/webp"), ("JVBER", "application/pdf")):
        if data.startswith(prefix):
            return media_type
    return "image/png"


def _render_tool(tool: Tool) -> dict[str, Any]:
    rendered: dict[str, Any] = {"name": tool.name}
    if tool.description is not None:
        rendered["description"] = tool.description
    rendered["input_schema"] = tool.input_schema
    if tool.cache_control is not None:
        rendered["cache_control"] = tool.cache_control
    return rendered
