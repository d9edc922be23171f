"""The one canonical model every dialect and provider translates to and from.

These are plain values: no identity, no storage keys, no I/O. A request arrives in
some wire dialect, is parsed into a :class:`Request`, routed, rendered into the
chosen provider's own format, and the provider's answer comes back as a stream of
:data:`Event` values that the caller's dialect renders again.

Streams are the normal case. A provider always yields events in this order::

    Start  (TextDelta | ThinkingDelta | ToolCall)*  Stop

Text and thinking arrive as deltas tagged with the index of the content block
they belong to; a tool call is only emitted once its block is complete, so that a
failure inside it never leaves broken JSON with the client. A non-streaming
answer is the same events collected by :func:`collect`.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any, Literal, TypeAlias

import orjson

Role: TypeAlias = Literal["user", "assistant", "system"]


class StopReason(StrEnum):
    """Why the model stopped. Values are Anthropic's names; OpenAI's map onto them."""

    END_TURN = "end_turn"  # OpenAI "stop"
    MAX_TOKENS = "max_tokens"  # OpenAI "length"
    TOOL_USE = "tool_use"  # OpenAI "tool_calls"
    STOP_SEQUENCE = "stop_sequence"  # OpenAI "stop"
    CONTENT_FILTER = "content_filter"  # OpenAI "content_filter", Anthropic "refusal"
    PAUSE_TURN = "pause_turn"  # Anthropic only; OpenAI "stop"


# --------------------------------------------------------------------------- parts


@dataclass(frozen=True, slots=True)
class Text:
    text: str
    cache_control: Mapping[str, Any] | None = None


@dataclass(frozen=True, slots=True)
class Image:
    """An image given inline (``data`` is base64) or by ``url``; exactly one is set."""

    media_type: str | None = None
    data: str | None = None
    url: str | None = None
    cache_control: Mapping[str, Any] | None = None


@dataclass(frozen=True, slots=True)
class ToolUse:
    """The model asks for a tool to be run. ``input`` is the parsed JSON arguments."""

    id: str
    name: str
    input: Mapping[str, Any]
    cache_control: Mapping[str, Any] | None = None


@dataclass(frozen=True, slots=True)
class ToolResult:
    tool_use_id: str
    content: tuple[Text | Image, ...] = ()
    is_error: bool = False
    cache_control: Mapping[str, Any] | None = None


@dataclass(frozen=True, slots=True)
class Thinking:
    """Model reasoning. ``signature`` is opaque and only meaningful to the vendor that issued it;
    ``redacted`` holds Anthropic's encrypted ``redacted_thinking`` data instead of text."""

    thinking: str = ""
    signature: str | None = None
    redacted: str | None = None


Part: TypeAlias = Text | Image | ToolUse | ToolResult | Thinking


@dataclass(frozen=True, slots=True)
class Message:
    role: Role
    content: tuple[Part, ...]

    def text(self) -> str:
        return "".join(p.text for p in self.content if isinstance(p, Text))


@dataclass(frozen=True, slots=True)
class Tool:
    name: str
    description: str | None = None
    input_schema: Mapping[str, Any] = field(default_factory=lambda: {"type": "object", "properties": {}})
    cache_control: Mapping[str, Any] | None = None


@dataclass(frozen=True, slots=True)
class ToolChoice:
    """``auto``: the model decides; ``any``: must call some tool (OpenAI "required");
    ``tool``: must call ``name``; ``none``: must not call tools."""

    type: Literal["auto", "any", "tool", "none"] = "auto"
    name: str | None = None
    disable_parallel: bool = False


@dataclass(frozen=True, slots=True)
class Usage:
    input_tokens: int = 0
    output_tokens: int = 0
    cache_read_input_tokens: int = 0
    cache_creation_input_tokens: int = 0

    def __add__(self, other: Usage) -> Usage:
        return Usage(
            self.input_tokens + other.input_tokens,
            self.output_tokens + other.output_tokens,
            self.cache_read_input_tokens + other.cache_read_input_tokens,
            self.cache_creation_input_tokens + other.cache_creation_input_tokens,
        )


@dataclass(frozen=True, slots=True)
class Request:
    """A model request, independent of wire format.

    ``extra`` keeps fields one wire family understands and the canonical form does
    not (Anthropic's ``output_config`` or ``context_management``, OpenAI's ``seed``
    or ``response_format``), keyed by family (``"anthropic"``, ``"openai"``,
    ``"gemini"``). A provider of the same family sends them on; others ignore them.
    ``headers`` holds the client headers a provider of that family needs
    (``anthropic-version``, ``anthropic-beta``), never credentials.
    """

    model: str
    messages: tuple[Message, ...]
    system: tuple[Text, ...] = ()
    tools: tuple[Tool, ...] = ()
    tool_choice: ToolChoice | None = None
    max_tokens: int | None = None
    temperature: float | None = None
    top_p: float | None = None
    top_k: int | None = None
    stop: tuple[str, ...] = ()
    stream: bool = False
    metadata: Mapping[str, Any] = field(default_factory=dict)
    thinking: Mapping[str, Any] | None = None
    extra: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)
    headers: Mapping[str, str] = field(default_factory=dict)

    def system_text(self) -> str:
        return "\n\n".join(t.text for t in self.system)


@dataclass(frozen=True, slots=True)
class Response:
    id: str
    model: str
    content: tuple[Part, ...]
    stop_reason: StopReason | None = StopReason.END_TURN
    stop_sequence: str | None = None
    usage: Usage = Usage()

    def text(self) -> str:
        return "".join(p.text for p in self.content if isinstance(p, Text))


# --------------------------------------------------------------------------- stream events


@dataclass(frozen=True, slots=True)
class Start:
    """The upstream accepted the request and began answering. ``usage`` holds what is
    known at the start (usually input tokens), possibly zeros."""

    id: str
    model: str
    usage: Usage = Usage()


@dataclass(frozen=True, slots=True)
class TextDelta:
    index: int
    text: str


@dataclass(frozen=True, slots=True)
class ThinkingDelta:
    """A piece of reasoning text, or the block's ``signature`` (or ``redacted`` data), which
    arrives once, at the end of the block."""

    index: int
    thinking: str = ""
    signature: str | None = None
    redacted: str | None = None


@dataclass(frozen=True, slots=True)
class ToolCall:
    """A complete tool-call block. ``arguments`` is the raw JSON text the model produced."""

    index: int
    id: str
    name: str
    arguments: str

    def input(self) -> dict[str, Any]:
        return parse_arguments(self.arguments)


@dataclass(frozen=True, slots=True)
class Stop:
    stop_reason: StopReason | None
    usage: Usage = Usage()
    stop_sequence: str | None = None


Event: TypeAlias = Start | TextDelta | ThinkingDelta | ToolCall | Stop


def parse_arguments(arguments: str) -> dict[str, Any]:
    """Tool-call arguments as a dict; empty text is ``{}``. Non-object JSON is wrapped, not lost."""
    if not arguments.strip():
        return {}
    value = orjson.loads(arguments)
    return value if isinstance(value, dict) else {"value": value}


def collect(events: Iterable[Event]) -> Response:
    """Fold a complete event stream into a :class:`Response`.

    Deltas with the same index are joined into one block; blocks keep the order of
    their indices. Raises ``ValueError`` if the stream had no :class:`Start`.
    """
    start: Start | None = None
    stop: Stop | None = None
    blocks: dict[int, list[Any]] = {}
    for event in events:
        if isinstance(event, TextDelta):
            blocks.setdefault(event.index, ["text", []])[1].append(event.text)
        elif isinstance(event, ThinkingDelta):
            block = blocks.setdefault(event.index, ["thinking", [], None, None])
            block[1].append(event.thinking)
            if event.signature is not None:
                block[2] = event.signature
            if event.redacted is not None:
                block[3] = event.redacted
        elif isinstance(event, ToolCall):
            blocks[event.index] = ["tool", event]
        elif isinstance(event, Start):
            start = event
        elif isinstance(event, Stop):
            stop = event
    if start is None:
        raise ValueError("stream ended without a start event")
    content: list[Part] = []
    for index in sorted(blocks):
        block = blocks[index]
        if block[0] == "text":
            content.append(Text("".join(block[1])))
        elif block[0] == "thinking":
            content.append(Thinking("".join(block[1]), signature=block[2], redacted=block[3]))
        else:
            call: ToolCall = block[1]
            content.append(ToolUse(call.id, call.name, call.input()))
    usage = start.usage if stop is None else merge_usage(start.usage, stop.usage)
    return Response(
        id=start.id,
        model=start.model,
        content=tuple(content),
        stop_reason=None if stop is None else stop.stop_reason,
        stop_sequence=None if stop is None else stop.stop_sequence,
        usage=usage,
    )


def events_of(response: Response) -> list[Event]:
    """The stream that :func:`collect` would fold into ``response`` (the inverse)."""
    events: list[Event] = [Start(response.id, response.model, Usage(
        input_tokens=response.usage.input_tokens,
        cache_read_input_tokens=response.usage.cache_read_input_tokens,
        cache_creation_input_tokens=response.usage.cache_creation_input_tokens,
    ))]
    for index, part in enumerate(response.content):
        if isinstance(part, Text):
            events.append(TextDelta(index, part.text))
        elif isinstance(part, Thinking):
            events.append(ThinkingDelta(index, part.thinking, part.signature, part.redacted))
        elif isinstance(part, ToolUse):
            events.append(ToolCall(index, part.id, part.name, dumps(part.input)))
    events.append(Stop(response.stop_reason, response.usage, response.stop_sequence))
    return events


def coalesce(events: list[Event]) -> list[Event]:
    """Join adjacent text (or reasoning) deltas of the same block that arrived together.

    Providers parse whatever one socket read delivered as a batch; merging its deltas
    spares every layer above one hop per token without delaying anything.
    """
    if len(events) < 2:
        return events
    out: list[Event] = []
    for event in events:
        last = out[-1] if out else None
        if type(event) is TextDelta and type(last) is TextDelta and last.index == event.index:
            out[-1] = TextDelta(event.index, last.text + event.text)
        elif (type(event) is ThinkingDelta and type(last) is ThinkingDelta and last.index == event.index
              and last.signature is None and last.redacted is None and event.redacted is None):
            out[-1] = ThinkingDelta(event.index, last.thinking + event.thinking, event.signature)
        else:
            out.append(event)
    return out


def merge_usage(at_start: Usage, at_stop: Usage) -> Usage:
    """Usage reported at the stop wins where it is non-zero; the start fills the gaps.

    Anthropic reports input tokens in ``message_start`` and output tokens in
    ``message_delta``; OpenAI reports everything once, at the end.
    """
    return Usage(
        at_stop.input_tokens or at_start.input_tokens,
        at_stop.output_tokens or at_start.output_tokens,
        at_stop.cache_read_input_tokens or at_start.cache_read_input_tokens,
        at_stop.cache_creation_input_tokens or at_start.cache_creation_input_tokens,
    )


def dumps(value: Any) -> str:
    return orjson.dumps(value).decode()
