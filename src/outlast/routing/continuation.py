"""Continuing an answer that broke mid-way on another candidate.

:class:`Progress` remembers what the caller has already been sent; :func:`continuation`
builds the request that asks the next candidate for the rest, either as an assistant
prefill (the conversation ends with the partial answer, which the model continues) or,
for a target that refuses prefill, as an explicit instruction after it; :class:`Splicer`
turns the continuation's events into the rest of the caller's one stream: no second
start, text joined onto the block that broke, later blocks numbered after the ones sent,
and usage that sums both parts.
"""

from __future__ import annotations

from dataclasses import replace

from outlast.dialects.canonical import (
    Event,
    Message,
    Request,
    Start,
    Stop,
    Text,
    TextDelta,
    ThinkingDelta,
    ToolCall,
    Usage,
    merge_usage,
)

PREFILL = "prefill"
INSTRUCTION = "instruction"

CONTINUE_INSTRUCTION = (
    "Your previous reply was cut off by a network failure right after the text above. Continue it from "
    "exactly where it stops, as if nothing had happened: do not repeat any of it, do not add a preamble, "
    "and do not mention the interruption."
)


def estimate_tokens(chars: int) -> int:
    return (chars + 3) // 4


class Progress:
    """What the caller has received so far. ``observe`` runs once per event on the hot path,
    so it does as little as it can: a class check and, for text, one list append."""

    __slots__ = ("chars", "last_index", "last_kind", "max_index", "model", "start_usage", "stop", "text",
                 "tool_calls")

    def __init__(self) -> None:
        self.text: list[str] = []
        self.chars = 0  # of text and thinking: what the broken part cost, roughly
        self.tool_calls: list[ToolCall] = []
        self.max_index = -1
        self.last_index = -1
        self.last_kind = ""
        self.start_usage = Usage()
        self.model = ""
        self.stop: Stop | None = None

    def observe(self, event: Event) -> None:
        cls = event.__class__
        if cls is TextDelta:
            text = event.text  # type: ignore[union-attr]
            self.text.append(text)
            self.chars += len(text)
            index = event.index  # type: ignore[union-attr]
            if index != self.last_index:
                self.last_index, self.last_kind = index, "text"
                if index > self.max_index:
                    self.max_index = index
        elif cls is ThinkingDelta:
            self.chars += len(event.thinking)  # type: ignore[union-attr]
            index = event.index  # type: ignore[union-attr]
            self.last_index, self.last_kind = index, "thinking"
            if index > self.max_index:
                self.max_index = index
        elif cls is ToolCall:
            self.tool_calls.append(event)  # type: ignore[arg-type]
            index = event.index  # type: ignore[union-attr]
            self.last_index, self.last_kind = index, "tool"
            if index > self.max_index:
                self.max_index = index
        elif cls is Start:
            self.model = event.model  # type: ignore[union-attr]
            self.start_usage = event.usage  # type: ignore[union-attr]
        elif cls is Stop:
            self.stop = event  # type: ignore[assignment]

    def partial_text(self) -> str:
        return "".join(self.text)

    def usage_so_far(self) -> Usage:
        """The broken part's usage: its input as reported, its output estimated from what was sent."""
        start = self.start_usage
        return replace(start, output_tokens=max(start.output_tokens, estimate_tokens(self.chars)))


def continuation(request: Request, progress: Progress, mode: str) -> Request:
    """The request that asks for the rest of the answer ``progress`` holds the start of."""
    text = progress.partial_text()
    if mode == PREFILL:
        # Vendors refuse a prefill that ends in whitespace; the model supplies it again.
        text = text.rstrip()
    messages = list(request.messages)
    if text:
        messages.append(Message("assistant", (Text(text),)))
    if mode == INSTRUCTION or not text:
        messages.append(Message("user", (Text(CONTINUE_INSTRUCTION),)))
    max_tokens = request.max_tokens
    if max_tokens is not None:
        max_tokens = max(1, max_tokens - estimate_tokens(progress.chars))
    # Thinking would be a second reasoning block after the answer began; the rest is plain text.
    return replace(request, messages=tuple(messages), max_tokens=max_tokens, thinking=None)


class Splicer:
    """Maps a continuation's events onto the caller's stream."""

    __slots__ = ("_carried", "_joined", "_map", "_next", "_start_usage", "model", "progress", "usage")

    def __init__(self, progress: Progress, carried: Usage | None = None) -> None:
        self.progress = progress
        self._map: dict[int, int] = {}
        self._next = progress.max_index + 1
        self._joined = progress.last_kind != "text"  # True once the broken text block is taken
        # What the parts so far cost: the first part's input, every part's output (estimated
        # for broken parts) and, after a second break, the earlier continuations' input.
        self._carried = carried or Usage()
        self.usage = progress.usage_so_far() + self._carried
        self._start_usage = Usage()
        self.model: str | None = None

    def carried(self) -> Usage:
        """Input this continuation cost, to be added if it breaks too."""
        return Usage(input_tokens=self._carried.input_tokens + self._start_usage.input_tokens)

    def map(self, event: Event) -> Event | None:
        """The event as the caller should see it, or None to drop it."""
        cls = event.__class__
        if cls is TextDelta:
            return TextDelta(self._index(event.index, text=True), event.text)  # type: ignore[union-attr]
        if isinstance(event, ToolCall):
            return replace(event, index=self._index(event.index, text=False))
        if isinstance(event, Stop):
            return replace(event, usage=self.usage + merge_usage(self._start_usage, event.usage))
        if cls is Start:
            self._start_usage = event.usage  # type: ignore[union-attr]
            self.model = event.model  # type: ignore[union-attr]
            return None
        return None  # thinking: the answer is already under way

    def _index(self, index: int, *, text: bool) -> int:
        mapped = self._map.get(index)
        if mapped is None:
            if text and not self._joined:
                mapped = self.progress.last_index
                self._joined = True
            else:
                mapped = self._next
                self._next += 1
            self._map[index] = mapped
        return mapped
