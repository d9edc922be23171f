"""Server-sent events: an incremental decoder for upstream streams, and the encoder."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(slots=True)  # not frozen: a frozen dataclass's __init__ costs twice as much, once per event
class SSEEvent:
    event: str | None
    data: str


class SSEDecoder:
    """Turns lines of an ``text/event-stream`` body into events (WHATWG rules, minus ``id``/``retry``:
    a blank line dispatches the event, if it has data).

    Feed it one line at a time (with or without its line ending); it returns an event
    when a blank line completes one. Comment lines (``:``) are ignored.
    """

    __slots__ = ("_data", "_event")

    def __init__(self) -> None:
        self._event: str | None = None
        self._data: list[str] = []

    def feed(self, line: str) -> SSEEvent | None:
        line = line.rstrip("\r\n")
        if not line:
            if not self._data:  # no data: nothing is dispatched (an event name alone is dropped)
                self._event = None
                return None
            event = SSEEvent(self._event, "\n".join(self._data))
            self._event, self._data = None, []
            return event
        if line[0] == ":":
            return None
        name, _, value = line.partition(":")
        if value.startswith(" "):
            value = value[1:]
        if name == "data":
            self._data.append(value)
        elif name == "event":
            self._event = value
        return None

    def flush(self) -> SSEEvent | None:
        """An event left without its closing blank line when the stream ended."""
        if not self._data:
            return None
        event = SSEEvent(self._event, "\n".join(self._data))
        self._event, self._data = None, []
        return event


class SSEBuffer:
    """Incremental SSE parsing over raw bytes, as they arrive from the socket.

    ``feed(chunk)`` returns every event the chunk completed (a whole short answer often
    arrives in one chunk). Frames end at a blank line; ``\r\n`` line endings are accepted.
    Raises ``UnicodeDecodeError`` for a frame that is not UTF-8.
    """

    __slots__ = ("_pending",)

    def __init__(self) -> None:
        self._pending = b""

    def feed(self, chunk: bytes) -> list[SSEEvent]:
        buffer = self._pending + chunk if self._pending else chunk
        if b"\r" in buffer:
            # A trailing \r may be the first half of a \r\n split across chunks: keep it back.
            held = buffer.endswith(b"\r")
            buffer = (buffer[:-1] if held else buffer).replace(b"\r\n", b"\n")
            if held:
                buffer += b"\r"
        end = buffer.rfind(b"\n\n")
        if end < 0:
            self._pending = buffer
            return []
        # Everything before the last blank line is whole frames (decoded at once: a frame never
        # ends inside a character); what follows it waits for the rest.
        self._pending = buffer[end + 2:]
        events: list[SSEEvent] = []
        for frame in buffer[:end].decode().split("\n\n"):
            if frame.startswith("data: ") and "\n" not in frame:  # the common case: one data line
                events.append(SSEEvent(None, frame[6:]))
            elif frame:
                events += _frame(frame)
        return events

    def flush(self) -> SSEEvent | None:
        """An event left without its closing blank line when the stream ended."""
        pending, self._pending = self._pending.rstrip(b"\r\n"), b""
        events = _frame(pending.decode()) if pending else []
        return events[-1] if events else None


def _frame(frame: str) -> list[SSEEvent]:
    """The events of one frame's lines (a frame may begin or end with a blank line of a longer run)."""
    decoder = SSEDecoder()
    events = [event for line in frame.split("\n") if (event := decoder.feed(line)) is not None]
    tail = decoder.flush()
    if tail is not None:
        events.append(tail)
    return events


def encode(data: bytes | str, event: str | None = None) -> bytes:
    """One SSE frame. ``data`` must not contain newlines (JSON from orjson never does)."""
    if isinstance(data, str):
        data = data.encode()
    if event is None:
        return b"data: " + data + b"\n\n"
    return b"event: " + event.encode() + b"\ndata: " + data + b"\n\n"


def comment(text: str) -> bytes:
    """An SSE comment line: clients ignore it; humans reading the raw stream see it."""
    return b": " + text.replace("\n", " ").encode() + b"\n\n"
