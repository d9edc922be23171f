"""What a provider adapter is: one small protocol, plus optional abilities checked by type."""

from __future__ import annotations

from collections.abc import AsyncGenerator
from dataclasses import dataclass
from typing import Protocol, runtime_checkable

from outlast.dialects.canonical import Event, Request


@dataclass(frozen=True, slots=True)
class Timeouts:
    """Deadlines for one upstream attempt, in seconds.

    - ``connect``: TCP (and TLS) connection established.
    - ``first_token``: from sending the request to the first stream event.
    - ``idle``: longest silence between two stream chunks once it has begun.
    - ``total``: the whole attempt, start to last byte.

    ``Timeouts()`` is the default; ``Timeouts(first_token=5)`` fails over a silent
    provider after five seconds; ``Timeouts(total=None)`` lets long answers run.
    """

    connect: float = 10.0
    first_token: float = 60.0
    idle: float = 60.0
    total: float | None = 600.0


class Provider(Protocol):
    """An upstream that answers canonical requests with canonical events.

    ``stream`` raises :class:`outlast.providers.errors.UpstreamError` for every failure,
    before or during the stream. ``model`` is the provider's own model name, which
    may differ from ``request.model`` (the name the caller used).
    """

    name: str
    kind: str  # wire family: "openai", "anthropic", "gemini"

    def stream(self, request: Request, model: str) -> AsyncGenerator[Event, None]: ...

    async def aclose(self) -> None: ...


@runtime_checkable
class TokenCounter(Protocol):
    """A provider that can count input tokens exactly (Anthropic's count_tokens)."""

    async def count_tokens(self, request: Request, model: str) -> int: ...
