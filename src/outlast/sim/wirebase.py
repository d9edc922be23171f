"""What the three wire formats share: the error they raise, SSE framing, ids and JSON encoding."""

from __future__ import annotations

import base64
import os
from dataclasses import dataclass, field
from typing import Any

import orjson


def dumps(value: Any) -> bytes:
    return orjson.dumps(value)


def sse(data: Any, event: str | None = None, newline: bytes = b"\n") -> bytes:
    """One SSE event: ``event: X`` (when given) and one ``data:`` line, then a blank line."""
    payload = data if isinstance(data, bytes) else orjson.dumps(data)
    head = b"event: " + event.encode() + newline if event else b""
    return head + b"data: " + payload + newline + newline


def new_id(prefix: str, length: int = 24) -> str:
    """A unique, vendor-looking id: ``msg_01...``, ``chatcmpl-...``, ``req_011C...``."""
    raw = base64.b64encode(os.urandom(length * 3 // 4 + 3), altchars=b"xZ")
    return prefix + raw[:length].decode()


@dataclass
class WireError(Exception):
    """A request the vendor refuses: rendered in that vendor's own error shape."""

    status: int
    message: str
    code: str | None = None
    param: str | None = None
    kind: str | None = None  # override the error type the status would give
    retry_after: float | None = None
    headers: dict[str, str] = field(default_factory=dict)

    def __str__(self) -> str:
        return f"{self.status}: {self.message}"


@dataclass
class Ctx:
    """Per-request facts a renderer needs beyond the reply."""

    vendor: str
    model: str
    flavour: str = ""
    request_id: str = ""
    created: int = 0
    include_usage: bool = False
    extras: dict[str, Any] = field(default_factory=dict)


def as_text(content: Any) -> str:
    """Text of a message content that may be a string, a list of parts/blocks, or something else."""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        out = []
        for part in content:
            if isinstance(part, str):
                out.append(part)
            elif isinstance(part, dict):
                for key in ("text", "content", "thinking"):
                    value = part.get(key)
                    if isinstance(value, str):
                        out.append(value)
                        break
                    if isinstance(value, list):
                        out.append(as_text(value))
                        break
        return "\n".join(out)
    return ""


def pieces(text: str, size: int) -> list[str]:
    """``text`` in fragments of ``size`` characters (at least one fragment)."""
    return [text[i:i + size] for i in range(0, len(text), size)] or [""]
