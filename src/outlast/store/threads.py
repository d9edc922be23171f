"""Threading exchanges into conversations: which conversation an exchange continues and which
of its messages are new. Pure: the store hands in what it knows of stored conversations.

A conversation's *head* is a hash of every message it holds (``records.prefix_hashes``). After
an exchange, the head covers the request's messages plus the answer; a later request whose
messages start with exactly those (the client resending history, plus a new turn) continues
it. A request that matches no head, or forks an earlier point, starts a new conversation
holding its whole history. An exchange can name its conversation explicitly (the client's
``x-outlast-conversation-id``, or the name the gateway gave it before the answer:
:mod:`outlast.store.naming`): then the messages past what it already holds are appended (see
:func:`append_point`), or, for a name not stored yet, it begins with the whole history.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from outlast.ids import time_ordered
from outlast.store.records import prefix_hashes, tag_part

Typed = tuple[str, list[dict[str, Any]]]  # (role, typed parts)


@dataclass(slots=True)
class Placement:
    conversation_id: str
    new: bool  # the conversation does not exist yet
    start: int  # position of the first appended message
    messages: list[Typed]  # to append
    head_hash: str
    title: str


def new_conversation_id() -> str:
    """Time-ordered like exchange ids, so ids sort by when a conversation began."""
    return time_ordered(6)


def request_messages(request: dict[str, Any] | None) -> list[Typed]:
    if not request:
        return []
    return [(m.get("role", "user"), [tag_part(p) for p in m.get("content") or ()])
            for m in request.get("messages") or ()]


def title_of(messages: Sequence[Typed]) -> str:
    for role, parts in messages:
        if role == "user":
            for part in parts:
                if part.get("type") == "text" and part.get("text", "").strip():
                    line = " ".join(part["text"].split())
                    return line[:80] + ("…" if len(line) > 80 else "")
    return "(untitled)"


def head_candidates(asked: Sequence[Typed], hashes: Sequence[str]) -> list[str]:
    """Heads end with an answer, so only prefixes ending with an assistant message can match."""
    return [hashes[k] for k in range(len(asked)) if asked[k][0] == "assistant"]


def append_point(asked: Sequence[Typed], hashes: Sequence[str], head: str | None, count: int) -> int:
    """How many of a request's messages the conversation it names already holds (its head is
    ``head``, after ``count`` messages): those before the point are not stored again.

    When the request resends the conversation so far, its head is one of the request's prefix
    hashes. When it does not, the client sent the history differently from how it is stored:
    typically without messages that have no text (a ChatGPT reasoning-only turn, which a
    text-only client cannot send), or with only the new turn. Then what follows its last
    answer is new, so a new turn is never lost."""
    if count == 0:
        return 0
    if head:
        for k in range(len(asked) - 1, -1, -1):
            if hashes[k] == head:
                return k + 1
    for k in range(len(asked) - 1, -1, -1):
        if asked[k][0] == "assistant":
            return k + 1
    return 0


def place(
    explicit_id: str | None,
    asked: list[Typed],
    answer: list[dict[str, Any]],
    *,
    state_of: Callable[[str], tuple[str | None, int] | None],
    find_head: Callable[[list[str]], tuple[str, str, int] | None],
    hashes: list[str] | None = None,
) -> Placement | None:
    """Where an exchange's messages go. ``state_of(id)`` is a stored conversation's head hash
    and message count (``None``: no such conversation); ``find_head(hashes)`` returns ``(id,
    hash, count)`` of a conversation whose head is one of ``hashes``, preferring the longest.
    ``None`` when there is nothing to store (no answer)."""
    if not answer:
        return None
    everything = [*asked, ("assistant", answer)]
    if hashes is None:
        hashes = prefix_hashes(everything)
    head = hashes[-1]
    if explicit_id:
        state = state_of(explicit_id)
        if state is None:
            return Placement(explicit_id, True, 0, everything, head, title_of(everything))
        stored_head, count = state
        keep = append_point(asked, hashes, stored_head, count)
        return Placement(explicit_id, False, count, everything[keep:], head, "")
    candidates = head_candidates(asked, hashes)
    found = find_head(candidates) if candidates else None
    if found is not None:
        conversation_id, matched, count = found
        length = hashes.index(matched) + 1
        return Placement(conversation_id, False, count, everything[length:], head, "")
    return Placement(new_conversation_id(), True, 0, everything, head, title_of(everything))
