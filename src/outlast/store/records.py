"""Turning a finished :class:`Exchange` into what the store writes, and the message helpers
threading and search need.

:func:`exchange_record` runs on the event loop, so it only copies scalars and lets orjson
(C code) serialise the canonical request and response; everything slower happens in the
recorder's writer thread.
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Iterable, Sequence
from typing import Any

import orjson

from outlast.dialects.canonical import Image, Message, Part, Text, ToolResult, ToolUse
from outlast.routing.router import Exchange

_MS = 1000.0


def _ms(value: float | None, origin: float) -> float | None:
    return None if value is None else round((value - origin) * _MS, 3)


def exchange_record(exchange: Exchange, conversation_id: str | None = None) -> dict[str, Any]:
    """The row (plus ``request``, ``response``, ``attempts`` and ``splices``) for one exchange.

    ``skipped`` lists the candidates passed over while unhealthy (``provider/model``); each
    attempt says why it was made (``purpose``: first, retry, failover, hedge, continuation),
    how a continuation was asked (``mode``: prefill or instruction) and the first-token
    deadline it was given; each splice where an answer broke (``after_chars`` of answer the
    caller had), which target broke and how, and which continued it (``None``: none could).

    Never holds a credential: the canonical request keeps only the client headers a provider
    needs (``anthropic-version``, ``anthropic-beta``), and errors are described without keys.
    """
    started = exchange.started
    served = exchange.served_by
    usage = exchange.usage
    response = exchange.response
    request = exchange.request
    error = exchange.error
    return {
        "id": exchange.id,
        "created": exchange.created,
        "key_id": exchange.key_id,
        "team": exchange.team,
        "dialect": exchange.dialect,
        "requested_model": exchange.requested_model,
        "served_provider": served.provider if served is not None else None,
        "served_model": served.model if served is not None else None,
        "upstream_model": exchange.served_model,
        "fallback": exchange.fallback,
        "data_class": exchange.data_class,
        "input_tokens": usage.input_tokens if usage is not None else None,
        "output_tokens": usage.output_tokens if usage is not None else None,
        "cache_read_tokens": usage.cache_read_input_tokens if usage is not None else None,
        "cache_write_tokens": usage.cache_creation_input_tokens if usage is not None else None,
        "first_token_ms": _ms(exchange.first_token_latency, 0.0),
        # A streamed answer is committed at its stop event, before the router marks the end.
        "total_ms": _ms(exchange.ended if exchange.ended is not None else time.monotonic(), started),
        "stop_reason": exchange.stop_reason.value if exchange.stop_reason is not None else None,
        "error": None if error is None else f"{type(error).__name__}: {error}"[:4000],
        "client_disconnected": exchange.client_disconnected,
        "conversation_id": conversation_id,
        "skipped": [str(t) for t in exchange.skipped],
        "request": orjson.dumps(request) if request is not None else None,
        "response": orjson.dumps(response) if response is not None else None,
        "attempts": [
            {
                "provider": a.target.provider,
                "model": a.target.model,
                "outcome": a.outcome,
                "started_ms": _ms(a.started, started),
                "first_event_ms": _ms(a.first_event, started),
                "ended_ms": _ms(a.ended, started),
                "error": None if a.error is None else a.error.describe()[:2000],
                "purpose": a.purpose,
                "mode": a.mode,
                "deadline_ms": None if a.deadline is None else round(a.deadline * _MS, 3),
            }
            for a in exchange.attempts
        ],
        "splices": [
            {
                "at_ms": _ms(s.at, started),
                "after_chars": s.after_chars,
                "broken_provider": s.broken.provider,
                "broken_model": s.broken.model,
                "failure": s.failure.value,
                "continued_provider": s.continued.provider if s.continued is not None else None,
                "continued_model": s.continued.model if s.continued is not None else None,
                "mode": s.mode,
            }
            for s in exchange.splices
        ],
    }


# --------------------------------------------------------------------------- parts


def tag_part(part: dict[str, Any]) -> dict[str, Any]:
    """A canonical part as orjson writes it (no type field) -> a typed part dict.

    The canonical dataclasses have disjoint field sets, so the fields say which one it was.
    Typed parts look like Anthropic's content blocks: ``{"type": "text", "text": ...}``,
    ``image``, ``tool_use``, ``tool_result`` (with typed ``content``), ``thinking``.
    """
    if "type" in part:
        return part
    if "tool_use_id" in part:
        return {"type": "tool_result", "tool_use_id": part["tool_use_id"],
                "content": [tag_part(p) for p in part.get("content") or ()],
                "is_error": bool(part.get("is_error"))}
    if "input" in part and "name" in part:
        return {"type": "tool_use", "id": part.get("id"), "name": part["name"], "input": part["input"]}
    if "thinking" in part or "redacted" in part:
        out: dict[str, Any] = {"type": "thinking", "thinking": part.get("thinking") or ""}
        if part.get("signature"):
            out["signature"] = part["signature"]
        if part.get("redacted"):
            out["redacted"] = part["redacted"]
        return out
    if "text" in part:
        return {"type": "text", "text": part["text"]}
    return {"type": "image", "media_type": part.get("media_type"), "data": part.get("data"), "url": part.get("url")}


def plain_text(parts: Iterable[dict[str, Any]]) -> str:
    """What search reads and transcripts show in one line: text, tool calls and tool results.
    Thinking is left out (it is long and the reader did not see it)."""
    pieces: list[str] = []
    for part in parts:
        kind = part.get("type")
        if kind == "text":
            if part.get("text"):
                pieces.append(part["text"])
        elif kind == "tool_use":
            pieces.append(f"[tool {part.get('name')}] {orjson.dumps(part.get('input') or {}).decode()}")
        elif kind == "tool_result":
            pieces.append(plain_text(part.get("content") or ()))
    return "\n".join(p for p in pieces if p)


# --------------------------------------------------------------------------- threading


def _message_key(role: str, parts: Sequence[dict[str, Any]]) -> bytes:
    """What must match for a resent message to count as the same one. Clients re-render
    history: whitespace, cache markers, thinking, the split into text blocks and tool-call
    argument formatting change, so only role, the trimmed text and tool ids take part."""
    texts: list[str] = []
    key: list[Any] = [role, ""]
    for part in parts:
        kind = part.get("type")
        if kind == "text":
            text = (part.get("text") or "").strip()
            if text:
                texts.append(text)
        elif kind == "tool_use":
            key.append(["u", part.get("id"), part.get("name")])
        elif kind == "tool_result":
            key.append(["r", part.get("tool_use_id")])
        elif kind == "image":
            key.append(["i"])
    key[1] = "\n".join(texts)
    return orjson.dumps(key)


def _canonical_key(role: str, parts: Sequence[Part]) -> bytes:
    """:func:`_message_key` of canonical parts, without serialising them first: the gateway
    hashes requests on the event loop (images and long texts would cost a round trip through
    JSON). ``tests/store/test_naming.py`` checks that it agrees with :func:`_message_key`."""
    texts: list[str] = []
    key: list[Any] = [role, ""]
    for part in parts:
        if isinstance(part, Text):
            text = part.text.strip()
            if text:
                texts.append(text)
        elif isinstance(part, ToolUse):
            key.append(["u", part.id, part.name])
        elif isinstance(part, ToolResult):
            key.append(["r", part.tool_use_id])
        elif isinstance(part, Image):
            key.append(["i"])
    key[1] = "\n".join(texts)
    return orjson.dumps(key)


def _step(state: bytes, key: bytes) -> bytes:
    return hashlib.blake2b(state + key, digest_size=16).digest()


def _chain(keys: Iterable[bytes]) -> list[str]:
    """``result[k]`` identifies the first ``k + 1`` message keys."""
    out: list[str] = []
    state = b""
    for key in keys:
        state = _step(state, key)
        out.append(state.hex())
    return out


def prefix_hashes(messages: Sequence[tuple[str, Sequence[dict[str, Any]]]]) -> list[str]:
    """``result[k]`` identifies the first ``k + 1`` messages (role, typed parts)."""
    return _chain(_message_key(role, parts) for role, parts in messages)


def message_hashes(messages: Sequence[Message]) -> list[str]:
    """:func:`prefix_hashes` of canonical messages (a request's, as the recorder will store it)."""
    return _chain(_canonical_key(message.role, message.content) for message in messages)


def answer_hash(previous: str, parts: Sequence[Part]) -> str:
    """The hash of the messages ``previous`` identifies (``""``: none) plus an answer made of
    ``parts``: a conversation's head after that answer is stored."""
    return _step(bytes.fromhex(previous), _canonical_key("assistant", parts)).hex()
