"""Conversations out: Markdown for people, JSON and JSON Lines for tools.

The JSON shape (one object per conversation; JSON Lines puts each on a line of its own)::

    {"id", "title", "source", "model", "created", "updated" (ISO 8601, UTC), "system",
     "messages": [{"role", "created", "content": [typed parts]}]}

Parts are typed like Anthropic content blocks: text, thinking, tool_use, tool_result, image.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import orjson

from outlast.store.base import Conversation

FORMATS = ("md", "json", "jsonl")


def iso(when: float | None) -> str | None:
    if when is None:
        return None
    return datetime.fromtimestamp(when, UTC).isoformat().replace("+00:00", "Z")


def as_dict(conversation: Conversation) -> dict[str, Any]:
    s = conversation.summary
    return {
        "id": s.id, "title": s.title, "source": s.source, "model": s.model,
        "created": iso(s.created), "updated": iso(s.updated), "system": conversation.system,
        "messages": [{"role": m.role, "created": iso(m.created), "content": m.parts} for m in conversation.messages],
    }


def as_json(conversation: Conversation, *, indent: bool = True) -> bytes:
    return orjson.dumps(as_dict(conversation), option=orjson.OPT_INDENT_2 if indent else 0)


def _fence(text: str, language: str = "") -> str:
    fence = "```"
    while fence in text:
        fence += "`"
    return f"{fence}{language}\n{text}\n{fence}"


def part_markdown(part: dict[str, Any]) -> str:
    kind = part.get("type")
    if kind == "text":
        return str(part.get("text", ""))
    if kind == "thinking":
        thinking = str(part.get("thinking", "")).strip()
        return "> *thinking:* " + thinking.replace("\n", "\n> ") if thinking else ""
    if kind == "tool_use":
        arguments = orjson.dumps(part.get("input") or {}, option=orjson.OPT_INDENT_2).decode()
        return f"**Tool call** `{part.get('name')}`:\n\n" + _fence(arguments, "json")
    if kind == "tool_result":
        text = "\n".join(str(p.get("text", "")) for p in part.get("content") or () if p.get("type") == "text")
        label = "**Tool error**" if part.get("is_error") else "**Tool result**"
        return f"{label}:\n\n" + _fence(text)
    if kind == "image":
        return f"[image: {part.get('url') or part.get('media_type') or 'inline'}]"
    return ""


def as_markdown(conversation: Conversation) -> str:
    s = conversation.summary
    lines = [f"# {s.title or '(untitled)'}", ""]
    facts = [f"id `{s.id}`", f"source {s.source}"]
    if s.model:
        facts.append(f"model {s.model}")
    facts.append(f"{iso(s.created)} to {iso(s.updated)}")
    lines += [" · ".join(facts), ""]
    if conversation.system:
        lines += ["## System", "", conversation.system.strip(), ""]
    for message in conversation.messages:
        when = f" · {iso(message.created)}" if message.created else ""
        lines += [f"## {message.role.capitalize()}{when}", ""]
        body = "\n\n".join(filter(None, (part_markdown(p) for p in message.parts)))
        lines += [body.strip(), ""]
    return "\n".join(lines)


def render(conversation: Conversation, fmt: str) -> bytes:
    if fmt == "md":
        return as_markdown(conversation).encode()
    if fmt == "json":
        return as_json(conversation)
    if fmt == "jsonl":
        return as_json(conversation, indent=False) + b"\n"
    raise ValueError(f"unknown format {fmt!r} (choose from {', '.join(FORMATS)})")
