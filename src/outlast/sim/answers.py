"""What a simulated model answers: deterministic text or a tool call, with realistic token counts.

Every wire format first reduces its request to a :class:`Conversation`; :func:`answer` turns that into a
:class:`Reply`, which the wire format renders.  The same request and seed always give the same reply, streamed
or not.  ``[[reply:TEXT]]`` in the last user text makes the answer exactly TEXT; ``[[tool:NAME]]`` asks for a
call to that tool.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass, field, replace
from typing import Any

WORDS = (
    "the", "system", "keeps", "working", "while", "a", "provider", "recovers", "and", "every", "answer", "stays",
    "with", "you", "so", "nothing", "is", "lost", "today", "we", "checked", "each", "route", "again", "before",
    "the", "deadline", "because", "a", "careful", "plan", "needs", "clear", "notes", "about", "what", "failed",
    "where", "it", "failed", "and", "how", "quickly", "the", "fallback", "model", "carried", "the", "work",
    "forward", "for", "the", "team", "small", "steady", "changes", "make", "reliable", "software", "and", "good",
    "tests", "show", "the", "real", "shape", "of", "every", "request", "when", "streams", "break", "halfway", "the",
    "client", "still", "sees", "one", "coherent", "reply", "with", "honest", "usage", "numbers", "and", "a", "stop",
    "reason", "that", "matches", "what", "happened", "on", "the", "wire", "across", "vendors", "regions", "and",
    "local", "models", "alike",
)
PLACES = ("Paris", "Lisbon", "Oslo", "Nairobi", "Kyoto", "Quito", "Dublin", "Hobart")
REPLY = re.compile(r"\[\[reply:(.*?)\]\]", re.DOTALL)
TOOL = re.compile(r"\[\[tool:([^\]]+)\]\]")


def tokens(chars: int) -> int:
    """About four characters a token, never zero."""
    return max(1, (chars + 3) // 4)


@dataclass
class Conversation:
    """A request reduced to what decides the answer; each wire format fills one in."""

    model: str
    stream: bool = False
    max_tokens: int | None = None
    last_role: str = "user"  # "user", "assistant" or "tool"
    last_user_text: str = ""
    last_tool_result: str = ""
    tools: list[tuple[str, dict[str, Any]]] = field(default_factory=list)
    tool_choice: str | None = None  # None = auto, "none", "any" or a tool name
    thinking: bool = False
    input_chars: int = 0
    fingerprint: bytes = b""  # stable bytes of the conversation, hashed with the seed


@dataclass
class ToolCall:
    name: str
    arguments: dict[str, Any]


@dataclass
class Reply:
    text: str = ""
    thinking: str = ""
    tool: ToolCall | None = None
    stop: str = "end"  # "end", "max_tokens", "tool" or "filtered" (stopped by the vendor's safety system)
    input_tokens: int = 1
    output_tokens: int = 1
    digest: bytes = b""

    def text_pieces(self) -> list[str]:
        """The text as streamed: one word (with its leading space) a piece."""
        return split_words(self.text)


def split_words(text: str) -> list[str]:
    pieces = re.findall(r"\s*\S+", text)
    if pieces and text[len("".join(pieces)):]:
        pieces[-1] += text[len("".join(pieces)):]
    return pieces


def _words(digest: bytes, start: int, count: int) -> list[str]:
    out = []
    for i in range(count):
        b = digest[(start + i) % len(digest)] + 7 * i + start
        out.append(WORDS[b % len(WORDS)])
    return out


def _sentence(digest: bytes, start: int, count: int) -> str:
    words = _words(digest, start, count)
    return " ".join(words).capitalize() + "."


def schema_value(schema: Any, digest: bytes, depth: int = 0, name: str = "") -> Any:
    """A value satisfying a JSON schema well enough: required properties filled by type."""
    if not isinstance(schema, dict):
        return "value"
    if schema.get("enum"):
        return schema["enum"][0]
    if "const" in schema:
        return schema["const"]
    for key in ("anyOf", "oneOf", "allOf"):
        if isinstance(schema.get(key), list) and schema[key]:
            return schema_value(schema[key][0], digest, depth + 1, name)
    kind = schema.get("type", "object" if "properties" in schema else "string")
    if isinstance(kind, list):
        kind = next((k for k in kind if k != "null"), "null")
    kind = str(kind).lower()  # Gemini's OpenAPI subset writes OBJECT, STRING...
    pick = digest[depth % len(digest)]
    if kind == "string":
        if "city" in name.lower() or "location" in name.lower():
            return PLACES[pick % len(PLACES)]
        return " ".join(_words(digest, depth + 3, 2))
    if kind == "integer":
        low = int(schema.get("minimum", 1))
        return low + pick % 10
    if kind == "number":
        return float(schema.get("minimum", 0)) + (pick % 100) / 4
    if kind == "boolean":
        return bool(pick % 2)
    if kind == "null":
        return None
    if kind == "array":
        if depth > 4:
            return []
        return [schema_value(schema.get("items", {}), digest, depth + 1, name)] * max(1, int(schema.get("minItems", 1)))
    if kind == "object":
        if depth > 4:
            return {}
        props = schema.get("properties") or {}
        required = [r for r in schema.get("required") or [] if isinstance(r, str)]
        return {prop: schema_value(props.get(prop, {}), digest, depth + 1, prop) for prop in required}
    return "value"


_MEMO: dict[tuple[bytes, int, int | None, bool, bool, int], Reply] = {}


def answer(conv: Conversation, seed: int = 0, *, blank: bool = False) -> Reply:
    """The reply to ``conv``; memoised, since it depends only on the conversation and the seed."""
    key = (conv.fingerprint, seed, conv.max_tokens, blank, conv.thinking, conv.input_chars)
    reply = _MEMO.get(key)
    if reply is None:
        if len(_MEMO) >= 4096:
            _MEMO.clear()
        reply = _MEMO[key] = _answer(conv, seed, blank)
    return reply


def _answer(conv: Conversation, seed: int, blank: bool) -> Reply:
    digest = hashlib.blake2b(conv.fingerprint, digest_size=16, key=str(seed).encode()).digest()
    reply = Reply(input_tokens=tokens(conv.input_chars), digest=digest)
    if blank:
        reply.output_tokens = 1
        return reply
    wanted = REPLY.search(conv.last_user_text) if conv.last_role == "user" else None
    tool = _choose_tool(conv, wanted is not None)
    if conv.thinking:
        reply.thinking = "Let me think about this. " + _sentence(digest, 5, 6 + digest[1] % 10)
    if tool is not None:
        schema = next(s for n, s in conv.tools if n == tool)
        args = schema_value(schema, digest)
        reply.tool = ToolCall(tool, args if isinstance(args, dict) else {})
        reply.stop = "tool"
        reply.text = ""
        cost = tokens(len(tool) + len(repr(args))) + 10
    else:
        if wanted is not None:
            reply.text = wanted.group(1)
        elif conv.last_role == "tool":
            result = " ".join(conv.last_tool_result.split())[:200]
            reply.text = f"The tool returned: {result}. " + _sentence(digest, 2, 6 + digest[0] % 8)
        else:
            count = 2 + digest[0] % 3
            reply.text = " ".join(_sentence(digest, 11 * i, 5 + digest[i + 1] % 9) for i in range(count))
        cost = tokens(len(reply.text))
    cost += tokens(len(reply.thinking)) if reply.thinking else 0
    limit = conv.max_tokens
    if limit is not None and cost > limit:
        reply.tool = None
        budget = max(0, limit * 4 - len(reply.thinking))
        reply.text = (reply.text or " ".join(_words(digest, 1, limit)))[:budget]
        reply.stop = "max_tokens"
        cost = limit
    reply.output_tokens = max(1, cost)
    return reply


def filtered(reply: Reply) -> Reply:
    """``reply`` stopped half-way by the vendor's safety system: the first half of its words, no tool call."""
    words = reply.text_pieces() if reply.tool is None else []
    kept = "".join(words[: len(words) // 2])
    return replace(reply, text=kept, tool=None, stop="filtered",
                   output_tokens=tokens(len(kept) + len(reply.thinking)))


def _choose_tool(conv: Conversation, text_wanted: bool) -> str | None:
    if not conv.tools or conv.tool_choice == "none":
        return None
    names = [name for name, _ in conv.tools]
    if conv.tool_choice not in (None, "any") and conv.tool_choice in names:
        return conv.tool_choice
    asked = TOOL.search(conv.last_user_text) if conv.last_role == "user" else None
    if asked and asked.group(1).strip() in names:
        return asked.group(1).strip()
    if conv.tool_choice == "any":
        return names[0]
    if conv.last_role == "user" and not text_wanted:
        return names[0]
    return None
