"""Redaction: the secrets in a request swapped for placeholders before it leaves, swapped back in the answer.

    found = redact(request)              # None: nothing to redact
    if found is not None:
        request, redaction = found       # providers see {{OUTLAST_SECRET_1}} where the key was
        events = redaction.restore(events)   # the caller sees the key again, streamed or not
        stored = redaction.hide_response(response)   # what is stored keeps the placeholder

Secrets are what :func:`outlast.policy.detectors.find_secrets` finds (the same detectors that raise
a request's data class), in the text a model reads: system prompt, message text, tool results and
the string values of tool calls. A placeholder is numbered by first appearance in the request, so
the same secret gets the same placeholder everywhere in it, and numbers a request already contains
literally are skipped (a placeholder always means this exchange's secret).

In the answer, text deltas and complete tool calls are restored (in a tool call's JSON arguments the
secret is JSON-escaped). A placeholder split across deltas is found by holding back only a tail that
could still become one (at most ``len("{{OUTLAST_SECRET_999999}}")`` characters); everything else
passes through at once. Reasoning (thinking) is left as the model wrote it: its signature covers
the text the provider saw.

The format uses braces, not square brackets, so that it never closes the ``[[...]]`` markers
people (and ``outlast sim``) put around text.
"""

from __future__ import annotations

import re
from collections.abc import AsyncGenerator, AsyncIterator, Callable, Iterable, Mapping
from dataclasses import replace
from typing import Any

import orjson

from outlast.dialects.canonical import Part, Request, Response, Text, TextDelta, ToolCall, ToolResult, ToolUse
from outlast.policy.detectors import Finding, find_secrets

HEAD = "{{OUTLAST_SECRET_"
TAIL = "}}"
PATTERN = re.compile(r"\{\{OUTLAST_SECRET_(\d{1,6})\}\}")
_MAX_DIGITS = 6

# What a request filter gives the gateway: the request to route, and what turns the answer's
# events back (None when nothing was redacted).
Restore = Callable[[AsyncIterator[Any]], AsyncGenerator[Any, None]]
RequestFilter = Callable[[Request], tuple[Request, Restore | None]]


def placeholder(n: int) -> str:
    return f"{HEAD}{n}{TAIL}"


def pending_from(text: str) -> int:
    """Where the tail of ``text`` that could still grow into a placeholder begins (``len(text)``
    when none could): the earliest ``{`` after which the text is a proper prefix of one."""
    size = len(text)
    lo = max(0, size - len(HEAD) - _MAX_DIGITS - len(TAIL) + 1)
    at = text.find("{", lo)
    while at != -1:
        if _could_become(text, at):
            return at
        at = text.find("{", at + 1)
    return size


def _could_become(text: str, at: int) -> bool:
    rest = len(text) - at
    if rest <= len(HEAD):
        return text.startswith(HEAD[:rest], at)
    if not text.startswith(HEAD, at):
        return False
    i = at + len(HEAD)
    digits = i
    while digits < len(text) and text[digits].isdigit():
        digits += 1
    if digits == i or digits - i > _MAX_DIGITS:
        return False
    return text[digits:] in ("", "}")


_JWT_CHARS = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_=.+/")


def _widen(text: str, finding: Finding) -> tuple[int, int]:
    """The whole secret: detectors that only need to *notice* one match less than all of it (a
    private key's BEGIN line, a JSON web token without its signature)."""
    start, end = finding.start, finding.end
    if finding.kind == "Private Key":
        begin = text.rfind("-----BEGIN", max(0, start - 16), end)
        start = begin if begin != -1 else start
        marker = "Private-MAC:" if text.startswith("PuTTY", finding.start) else "-----END"
        stop = text.find(marker, end)
        if stop == -1:
            return start, len(text)  # cut short: the rest is key material
        line_end = text.find("\n", stop)
        if marker == "-----END":
            dashes = text.find("-----", stop + len(marker))
            return start, dashes + 5 if dashes != -1 and (line_end == -1 or dashes < line_end) else len(text)
        return start, line_end if line_end != -1 else len(text)
    if finding.kind == "JSON Web Token":
        while end < len(text) and text[end] in _JWT_CHARS:
            end += 1
        while end > finding.end and text[end - 1] == ".":  # a full stop after the token
            end -= 1
    return start, end


def _spans(text: str, findings: Iterable[Finding]) -> list[tuple[int, int]]:
    """Merged spans of secrets, in order."""
    merged: list[tuple[int, int]] = []
    for start, end in sorted(_widen(text, f) for f in findings):
        if merged and start <= merged[-1][1]:
            merged[-1] = (merged[-1][0], max(end, merged[-1][1]))
        else:
            merged.append((start, end))
    return merged


class Redaction:
    """One exchange's secrets and their placeholders (never logged, never stored)."""

    __slots__ = ("_next", "_taken", "by_placeholder", "by_secret", "kinds")

    def __init__(self, taken: Iterable[int] = ()) -> None:
        self.by_secret: dict[str, str] = {}
        self.by_placeholder: dict[str, str] = {}
        self.kinds: list[str] = []  # what was redacted, for the audit log (kinds only)
        self._taken = set(taken)
        self._next = 1

    def __repr__(self) -> str:  # never the secrets themselves
        return f"<Redaction of {len(self.by_secret)} secrets: {', '.join(self.kinds)}>"

    def __len__(self) -> int:
        return len(self.by_secret)

    def _placeholder(self, secret: str) -> str:
        found = self.by_secret.get(secret)
        if found is None:
            while self._next in self._taken:
                self._next += 1
            found = placeholder(self._next)
            self._next += 1
            self.by_secret[secret] = found
            self.by_placeholder[found] = secret
        return found

    # ------------------------------------------------------------------ the request

    def redact_text(self, text: str) -> str:
        findings = list(find_secrets(text)) if text else []
        if not findings:
            return text
        for kind in dict.fromkeys(f.kind for f in findings):
            if kind not in self.kinds:
                self.kinds.append(kind)
        out: list[str] = []
        last = 0
        for start, end in _spans(text, findings):
            out.append(text[last:start])
            out.append(self._placeholder(text[start:end]))
            last = end
        out.append(text[last:])
        return "".join(out)

    def redact_value(self, value: Any) -> Any:
        """Tool-call input: every string value redacted, keys and structure kept."""
        if isinstance(value, str):
            return self.redact_text(value)
        if isinstance(value, Mapping):
            return {k: self.redact_value(v) for k, v in value.items()}
        if isinstance(value, (list, tuple)):
            return [self.redact_value(v) for v in value]
        return value

    # ------------------------------------------------------------------ the answer

    def restore_text(self, text: str) -> str:
        if "{{" not in text:
            return text
        by_placeholder = self.by_placeholder
        return PATTERN.sub(lambda m: by_placeholder.get(m.group(0), m.group(0)), text)

    def restore_json(self, text: str) -> str:
        """Placeholders inside JSON text (a tool call's arguments) back to the JSON-escaped secret."""
        if "{{" not in text:
            return text
        by_placeholder = self.by_placeholder

        def secret(match: re.Match[str]) -> str:
            found = by_placeholder.get(match.group(0))
            return match.group(0) if found is None else orjson.dumps(found).decode()[1:-1]

        return PATTERN.sub(secret, text)

    async def restore(self, events: AsyncIterator[Any]) -> AsyncGenerator[Any, None]:
        """``events`` with the placeholders in text and tool calls turned back into the secrets.
        Anything else (start, reasoning, stop, notices) passes through unchanged."""
        index, held = -1, ""
        try:
            try:
                async for event in events:
                    cls = event.__class__
                    if cls is TextDelta:
                        if held and event.index != index:
                            yield TextDelta(index, held)
                            held = ""
                        text = held + event.text
                        cut = pending_from(text)
                        index, held = event.index, text[cut:]
                        if cut:
                            yield TextDelta(index, self.restore_text(text[:cut]))
                        continue
                    if held and cls is not TextDelta and not _is_notice(event):
                        yield TextDelta(index, held)  # it never became a placeholder: the text as it was
                        held = ""
                    if cls is ToolCall:
                        event = replace(event, arguments=self.restore_json(event.arguments))
                    yield event
            except Exception:
                if held:  # the answer broke off: what the caller would have had without redaction
                    yield TextDelta(index, held)
                raise
            if held:
                yield TextDelta(index, held)
        finally:
            close = getattr(events, "aclose", None)
            if close is not None:
                await close()

    # ------------------------------------------------------------------ what is stored

    def hide_text(self, text: str) -> str:
        """Every secret of this exchange in ``text`` back to its placeholder, longest first."""
        for secret in sorted(self.by_secret, key=len, reverse=True):
            if secret in text:
                text = text.replace(secret, self.by_secret[secret])
        return text

    def _hide_value(self, value: Any) -> Any:
        if isinstance(value, str):
            return self.hide_text(value)
        if isinstance(value, Mapping):
            return {k: self._hide_value(v) for k, v in value.items()}
        if isinstance(value, (list, tuple)):
            return [self._hide_value(v) for v in value]
        return value

    def hide_response(self, response: Response) -> Response:
        """The answer as the provider gave it (placeholders, not secrets), for the store."""
        content: list[Part] = []
        for part in response.content:
            if isinstance(part, Text):
                part = replace(part, text=self.hide_text(part.text))
            elif isinstance(part, ToolUse):
                part = replace(part, input=self._hide_value(part.input))
            content.append(part)
        return replace(response, content=tuple(content))


def _is_notice(event: Any) -> bool:
    # routing.exchange.Notice: a comment line between the parts of a continued answer; held text
    # may still complete on the other side of it.
    return event.__class__.__name__ == "Notice"


def _taken(request: Request) -> set[int]:
    from outlast.policy.classify import request_texts

    taken: set[int] = set()
    for text in request_texts(request):
        if "{{OUTLAST_SECRET_" in text:
            taken.update(int(m.group(1)) for m in PATTERN.finditer(text))
    return taken


def _text(redaction: Redaction, part: Text) -> Text:
    new = redaction.redact_text(part.text)
    return part if new == part.text else replace(part, text=new)


def _part(redaction: Redaction, part: Part) -> Part:
    if isinstance(part, Text):
        return _text(redaction, part)
    if isinstance(part, ToolResult):
        inner = tuple(_text(redaction, c) if isinstance(c, Text) else c for c in part.content)
        return part if inner == part.content else replace(part, content=inner)
    if isinstance(part, ToolUse):
        value = redaction.redact_value(part.input)
        return part if value == part.input else replace(part, input=value)
    return part  # images, and reasoning (signed by its vendor)


def redact(request: Request) -> tuple[Request, Redaction] | None:
    """``request`` with its secrets replaced by placeholders, and the redaction that restores them;
    ``None`` when it holds no secret. Parts without a secret are the same objects as before."""
    redaction = Redaction(_taken(request))
    system = tuple(_text(redaction, t) for t in request.system)
    messages = []
    for message in request.messages:
        content = tuple(_part(redaction, p) for p in message.content)
        messages.append(message if content == message.content else replace(message, content=content))
    if not redaction:
        return None
    return replace(request, system=system, messages=tuple(messages)), redaction
