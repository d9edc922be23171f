"""What happened to one request, as the router records it: the exchange, each attempt,
each splice, and the error raised when no candidate could serve.

These are the values listeners (metrics) and sinks (the recorder) receive; the router
fills them in as it goes and never stores them itself.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Protocol

from outlast.dialects.canonical import Request, Response, StopReason, Usage
from outlast.providers.errors import FailureKind, TimeoutPhase, UpstreamError
from outlast.routing.plan import Target


@dataclass(slots=True)
class Attempt:
    """One request sent to one target. ``purpose``: ``first``, ``retry`` (the same target
    again), ``failover``, ``hedge`` or ``continuation`` (``mode`` says how: ``prefill`` or
    ``instruction``). Times are the router's clock (monotonic seconds)."""

    target: Target
    started: float
    first_event: float | None = None  # the first answer piece arrived
    ended: float | None = None
    error: UpstreamError | None = None
    purpose: str = "first"
    mode: str | None = None
    deadline: float | None = None  # the first-token deadline it was given (seconds)
    total_bound: bool = False  # that deadline was what was left of the route's total deadline
    cancelled: bool = False  # a hedge that lost the race, or the client went away

    @property
    def outcome(self) -> str:
        if self.error is not None:
            return self.error.kind.value
        return "cancelled" if self.cancelled else "ok"


@dataclass(slots=True)
class Splice:
    """An answer that broke after the caller had part of it, continued on another target."""

    at: float  # router clock
    after_chars: int  # characters of answer the caller had received
    broken: Target
    failure: FailureKind
    continued: Target | None = None  # None: nothing could complete it
    mode: str | None = None


@dataclass(slots=True)
class Exchange:
    """What happened to one request: filled in by the router as it goes."""

    id: str
    dialect: str
    requested_model: str
    started: float
    route: str | None = None  # the route key that matched: the name, its pattern, or provider/*
    created: float = field(default_factory=time.time)  # wall clock, for people
    plan: tuple[Target, ...] = ()
    attempts: list[Attempt] = field(default_factory=list)
    skipped: list[Target] = field(default_factory=list)  # candidates passed over: breaker open, waiting
    splices: list[Splice] = field(default_factory=list)
    served_by: Target | None = None  # the target that answered (for a spliced answer, the last one)
    served_model: str | None = None  # the model name the upstream reported
    downgraded: bool = False  # served by a lower tier than the route's first
    usage: Usage | None = None
    stop_reason: StopReason | None = None
    ended: float | None = None
    error: BaseException | None = None
    client_disconnected: bool = False
    conversation_id: str | None = None  # x-outlast-conversation-id, or set by the recorder
    # Governance (outlast.governance): the virtual key, its team, the request's data class.
    key_id: str | None = None
    team: str | None = None
    data_class: str | None = None
    # Filled in by the endpoint for sinks (the recorder): what was asked and what was answered.
    request: Request | None = None
    response: Response | None = None

    @property
    def fallback(self) -> bool:
        return self.served_by is not None and bool(self.plan) and self.served_by != self.plan[0]

    @property
    def first_token_latency(self) -> float | None:
        for attempt in self.attempts:
            if attempt.first_event is not None:
                return attempt.first_event - self.started
        return None


class AllAttemptsFailed(Exception):
    """No candidate could serve (or, with ``committed``, finish) the answer. ``errors`` holds
    each attempt's failure, in order; ``stopped`` what ended the search early: a failure another
    candidate would not help with (a request the caller must fix, a content filter the route
    returns), or the route's total deadline passing (a ``timeout`` in phase ``total``)."""

    def __init__(self, model: str, errors: Sequence[UpstreamError], *, stopped: UpstreamError | None = None,
                 cooldown: float | None = None, committed: bool = False, skipped: Sequence[Target] = (),
                 policy: str | None = None) -> None:
        self.model = model
        self.policy = policy  # why the other candidates were not allowed (data class), if any were not
        self.errors = list(errors)
        self.stopped = stopped
        self.cooldown = cooldown
        self.committed = committed
        self.skipped = list(skipped)
        super().__init__(self.describe())

    @property
    def caller_fault(self) -> bool:
        return self.stopped is not None and self.stopped.kind.caller_fault

    @property
    def kind(self) -> FailureKind:
        """The class that best describes the outcome, for a caller-facing status."""
        if self.stopped is not None:
            return self.stopped.kind
        kinds = {e.kind for e in self.errors}
        return kinds.pop() if len(kinds) == 1 else FailureKind.OVERLOADED

    def describe(self) -> str:
        tried = "; ".join(f"{i}. {e.describe()}" for i, e in enumerate(self.errors, 1)) or "nothing was tried"
        skipped = ""
        if self.skipped:
            skipped = " (skipped while unhealthy: " + ", ".join(str(t) for t in self.skipped) + ")"
        stopped = self.stopped
        policy = f"; {self.policy}" if self.policy else ""
        if stopped is not None and stopped.kind is FailureKind.TIMEOUT and stopped.phase is TimeoutPhase.TOTAL:
            return f"{stopped.message} for {self.model!r}: {tried}{skipped}{policy}"
        if not self.errors:
            return f"no provider could serve {self.model!r}{skipped}"
        if self.caller_fault and stopped is not None:
            return f"the provider rejected the request: {stopped.message} (tried {tried})"
        if self.committed:
            return f"the answer broke off and no candidate could finish it: {tried}{skipped}{policy}"
        if stopped is not None and stopped.kind is FailureKind.CONTENT_FILTERED:
            return (f"the answer was withheld by a content filter and no other candidate was asked: "
                    f"{tried}{skipped}{policy}")
        return f"every candidate for {self.model!r} failed: {tried}{skipped}{policy}"

    @property
    def retry_after(self) -> float | None:
        hints = [e.retry_after for e in self.errors if e.retry_after is not None]
        if self.cooldown:
            hints.append(self.cooldown)
        return min(hints) if hints else None


class Notice:
    """Not an answer event: a line for the caller's stream (an SSE comment clients ignore)
    saying that the answer continued on another target."""

    __slots__ = ("text",)

    def __init__(self, text: str) -> None:
        self.text = text


class ExchangeSink(Protocol):
    """Told about every finished exchange *before* the client gets its last byte, and awaited:
    the recorder commits the exchange here, so an answer a client has in full is stored."""

    async def commit(self, exchange: Exchange) -> None: ...


class RouterListener(Protocol):
    def attempt_finished(self, exchange: Exchange, attempt: Attempt) -> None: ...

    def exchange_finished(self, exchange: Exchange) -> None: ...
