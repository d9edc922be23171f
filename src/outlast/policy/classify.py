"""Classifying a request: the highest data class among what it contains and what the client declares.

    classifier = Classifier(DataClasses(("public", "internal", "confidential", "secret")))
    found = classifier.classify(request, declared="internal")
    found.data_class   # "secret" when a private key is in the prompt

Only the text a model would read is scanned: system prompt, message text, tool results and
the string values of tool calls (not images, tool schemas or the model's own thinking).
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any

from outlast.dialects.canonical import Request, Text, ToolResult, ToolUse
from outlast.policy.detectors import PERSONAL, SECRET, Finding, find_personal, find_secrets

DEFAULT_CLASSES = ("public", "internal", "confidential", "secret")


class UnknownDataClass(ValueError):
    pass


@dataclass(frozen=True, slots=True)
class DataClasses:
    """Ordered data classes, lowest first."""

    names: tuple[str, ...] = DEFAULT_CLASSES

    def rank(self, name: str) -> int:
        try:
            return self.names.index(name)
        except ValueError:
            raise UnknownDataClass(f"unknown data class {name!r} (data classes: {', '.join(self.names)})") from None

    def highest(self, names: Iterable[str]) -> str:
        return max(names, key=self.rank, default=self.names[0])

    @property
    def lowest(self) -> str:
        return self.names[0]

    def default_for(self, category: str) -> str:
        """The class a finding of ``category`` raises a request to, when not configured."""
        if category == SECRET:
            return "secret" if "secret" in self.names else self.names[-1]
        return "confidential" if "confidential" in self.names else self.names[max(0, len(self.names) - 2)]


@dataclass(frozen=True, slots=True)
class Classification:
    """``data_class``: the class that governs the request. ``findings``: what was detected
    (kinds and offsets, never values). ``declared``: the client's ``x-outlast-data-class``."""

    data_class: str
    findings: tuple[Finding, ...] = ()
    declared: str | None = None

    def kinds(self) -> list[str]:
        """What was found, for people: distinct kinds, in order of first appearance."""
        return list(dict.fromkeys(f.kind for f in self.findings))

    def reason(self) -> str:
        """Why the request has its class, in words that never contain the sensitive text."""
        parts = []
        if self.findings:
            parts.append("found " + ", ".join(self.kinds()))
        if self.declared is not None:
            parts.append(f"declared {self.declared!r} by the client")
        return "; ".join(parts) or "nothing sensitive found"


def _strings(value: Any) -> Iterator[str]:
    if isinstance(value, str):
        yield value
    elif isinstance(value, Mapping):
        for item in value.values():
            yield from _strings(item)
    elif isinstance(value, (list, tuple)):
        for item in value:
            yield from _strings(item)


def request_texts(request: Request) -> list[str]:
    """Every piece of text in ``request`` a model would read, in order."""
    texts = [t.text for t in request.system]
    for message in request.messages:
        for part in message.content:
            cls = part.__class__
            if cls is Text:
                texts.append(part.text)  # type: ignore[union-attr]
            elif cls is ToolResult:
                texts.extend(c.text for c in part.content if c.__class__ is Text)  # type: ignore[union-attr]
            elif cls is ToolUse:
                texts.extend(_strings(part.input))  # type: ignore[union-attr]
    return texts


_CACHED = 1024  # texts at least this long are remembered with their findings
_CACHE_ENTRIES = 4096


class Classifier:
    """Coding agents send the whole conversation every turn, so long texts (a file read by a
    tool, the system prompt) come back again and again: their findings are kept in an LRU
    keyed by the text itself, and only what is new in a request is scanned."""

    def __init__(self, classes: DataClasses, *, secret_class: str | None = None, personal_class: str | None = None,
                 personal: bool = True) -> None:
        self._cache: OrderedDict[str, tuple[Finding, ...]] = OrderedDict()
        self.classes = classes
        self.by_category = {SECRET: secret_class or classes.default_for(SECRET),
                            PERSONAL: personal_class or classes.default_for(PERSONAL)}
        for name in self.by_category.values():
            classes.rank(name)  # raises for an unknown class
        self.personal = personal

    def scan(self, text: str) -> list[Finding]:
        """Findings in one text; offsets are into ``text``."""
        findings = list(find_secrets(text))
        if self.personal:
            findings.extend(find_personal(text))
        return findings

    def _scan_cached(self, text: str) -> tuple[Finding, ...]:
        cache = self._cache
        found = cache.get(text)
        if found is not None:
            cache.move_to_end(text)
            return found
        found = tuple(self.scan(text))
        cache[text] = found
        if len(cache) > _CACHE_ENTRIES:
            cache.popitem(last=False)
        return found

    def findings(self, texts: list[str]) -> list[Finding]:
        """Findings in every text; offsets are into each text (this is for classes, not positions)."""
        short = []
        findings: list[Finding] = []
        for text in texts:
            if len(text) >= _CACHED:
                findings.extend(self._scan_cached(text))
            else:
                short.append(text)
        if short:
            findings.extend(self.scan("\n".join(short)))
        return findings

    def classify(self, request: Request, declared: str | None = None) -> Classification:
        """Raises :class:`UnknownDataClass` for a declared class that is not configured."""
        if declared is not None:
            self.classes.rank(declared)
        findings = self.findings(request_texts(request))
        names = [self.by_category[f.category] for f in findings]
        if declared is not None:
            names.append(declared)
        return Classification(self.classes.highest(names), tuple(findings), declared)
