"""Passive signals: what every attempt did, by component, in sliding windows of time buckets.

A *component* is a provider (``anthropic``) or one of its models (``anthropic/claude-opus-4-6``).
:class:`SignalListener` is a router listener: each finished attempt is a few integer increments in
a ring of buckets, found by dividing the clock by the bucket size. Nothing on the hot path
allocates per request beyond what the router already made, takes a lock or does I/O; the
detector reads and sums the buckets on its own tick.

Active probes (:mod:`outlast.health.probes`) land in the same buckets through
:meth:`SignalListener.probe_finished`: their outcomes count like any attempt's, and they are also
counted apart (``probes``, ``probe_fails``), so a page can tell them from callers' requests. They
never count as requests, failovers or requests saved, and their time to first token is kept apart
(``probe_latency``): a one-token answer to a one-word prompt is quicker than real work, and would
pull the latency baseline down.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass

from outlast.providers.errors import FailureKind, UpstreamError
from outlast.routing.exchange import AllAttemptsFailed, Attempt, Exchange
from outlast.routing.plan import Target

KINDS: tuple[FailureKind, ...] = tuple(FailureKind)
KIND_INDEX = {kind: i for i, kind in enumerate(KINDS)}
# Failures that say nothing about the provider's health: the request itself was wrong.
IGNORED = frozenset({FailureKind.BAD_REQUEST, FailureKind.CONTEXT_TOO_LONG, FailureKind.CONTENT_FILTERED})
RATE_LIMITED = KIND_INDEX[FailureKind.RATE_LIMITED]
_IGNORED_INDEXES = frozenset(KIND_INDEX[k] for k in IGNORED)
# A cut-off answer (the stream broke after it began) is counted apart from a connection lost before
# anything came: the first is the model degrading, the second the network.
CUT = len(KINDS)


class Series:
    """One component's ring of ``slots`` buckets of ``size`` seconds, plus running totals."""

    __slots__ = ("attempts", "fails", "ids", "last_kind", "lat_n", "lat_sum", "probe_fails", "probe_lat_n",
                 "probe_lat_sum", "probes", "size", "skips", "slots", "total_attempts", "total_failed", "total_fails",
                 "total_probe_fails", "total_probes", "total_saved")

    def __init__(self, size: float, slots: int) -> None:
        self.size = size
        self.slots = slots
        self.ids = [-1] * slots  # which bucket (clock // size) each slot holds
        self.attempts = [0] * slots
        self.fails = [[0] * (len(KINDS) + 1) for _ in range(slots)]
        self.skips = [0] * slots  # passed over by the router while its breaker was open or it was waiting
        self.lat_sum = [0.0] * slots  # first-token latency of answers that began
        self.lat_n = [0] * slots
        self.probes = [0] * slots  # of the attempts, how many were active probes
        self.probe_fails = [0] * slots
        self.probe_lat_sum = [0.0] * slots
        self.probe_lat_n = [0] * slots
        self.last_kind = -1  # the last failure's class: what a skip is attributed to
        self.total_attempts = 0
        self.total_fails = 0
        self.total_saved = 0  # requests that wanted this component first and were served by another
        self.total_failed = 0  # requests that wanted this component first and failed
        self.total_probes = 0
        self.total_probe_fails = 0

    def _slot(self, now: float) -> int:
        bucket = int(now // self.size)
        slot = bucket % self.slots
        if self.ids[slot] != bucket:
            self.ids[slot] = bucket
            self.attempts[slot] = 0
            fails = self.fails[slot]
            for i in range(len(fails)):
                fails[i] = 0
            self.skips[slot] = 0
            self.lat_sum[slot] = 0.0
            self.lat_n[slot] = 0
            self.probes[slot] = self.probe_fails[slot] = self.probe_lat_n[slot] = 0
            self.probe_lat_sum[slot] = 0.0
        return slot

    def attempt(self, now: float, kind: int, latency: float | None) -> None:
        """``kind``: -1 for a success, else the failure's index (or :data:`CUT`)."""
        slot = self._slot(now)
        self.attempts[slot] += 1
        self.total_attempts += 1
        if kind >= 0:
            self.fails[slot][kind] += 1
            self.total_fails += 1
            self.last_kind = kind
        elif latency is not None:
            self.lat_sum[slot] += latency
            self.lat_n[slot] += 1

    def probe(self, now: float, kind: int, latency: float | None) -> None:
        """An active probe: counted as an attempt, and as a probe."""
        slot = self._slot(now)
        self.attempts[slot] += 1
        self.probes[slot] += 1
        self.total_attempts += 1
        self.total_probes += 1
        if kind >= 0:
            self.fails[slot][kind] += 1
            self.probe_fails[slot] += 1
            self.total_fails += 1
            self.total_probe_fails += 1
            self.last_kind = kind
        elif latency is not None:
            self.probe_lat_sum[slot] += latency
            self.probe_lat_n[slot] += 1

    def error_span(self, now: float, seconds: float) -> float:
        """How long the errors of the last ``seconds`` have been going on: the seconds from the
        first to the last bucket in which an attempt failed in a way that counts against health
        (not a rate limit, not the caller's fault). A skip does not count: it is what the breaker
        remembers, not a failure seen now. A burst of errors spans no more than its own length."""
        newest = int(now // self.size)
        oldest = newest - min(self.slots, max(1, round(seconds / self.size))) + 1
        first = last = None
        for slot in range(self.slots):
            bucket = self.ids[slot]
            if oldest <= bucket <= newest and any(
                    n for i, n in enumerate(self.fails[slot]) if i != RATE_LIMITED and i not in _IGNORED_INDEXES):
                first = bucket if first is None or bucket < first else first
                last = bucket if last is None or bucket > last else last
        return 0.0 if first is None or last is None else (last - first) * self.size

    def skip(self, now: float) -> None:
        self.skips[self._slot(now)] += 1

    def first_failure(self, now: float, seconds: float) -> float | None:
        """When the oldest bucket of the last ``seconds`` that saw a failure began."""
        newest = int(now // self.size)
        oldest = newest - min(self.slots, max(1, round(seconds / self.size))) + 1
        found = [self.ids[s] for s in range(self.slots)
                 if oldest <= self.ids[s] <= newest and (any(self.fails[s]) or self.skips[s])]
        return min(found) * self.size if found else None

    def window(self, now: float, seconds: float) -> Window:
        """The sums of the buckets that began within the last ``seconds`` (at most the ring)."""
        newest = int(now // self.size)
        oldest = newest - min(self.slots, max(1, round(seconds / self.size))) + 1
        attempts = skips = lat_n = probes = probe_fails = probe_lat_n = 0
        lat_sum = probe_lat_sum = 0.0
        fails = [0] * (len(KINDS) + 1)
        for slot in range(self.slots):
            if oldest <= self.ids[slot] <= newest:
                attempts += self.attempts[slot]
                skips += self.skips[slot]
                lat_sum += self.lat_sum[slot]
                lat_n += self.lat_n[slot]
                probes += self.probes[slot]
                probe_fails += self.probe_fails[slot]
                probe_lat_sum += self.probe_lat_sum[slot]
                probe_lat_n += self.probe_lat_n[slot]
                for i, n in enumerate(self.fails[slot]):
                    fails[i] += n
        return Window(attempts, tuple(fails), skips, lat_sum / lat_n if lat_n else None, lat_n, self.last_kind,
                      probes, probe_fails, probe_lat_sum / probe_lat_n if probe_lat_n else None)


@dataclass(frozen=True, slots=True)
class Window:
    attempts: int
    fails: tuple[int, ...]  # by KINDS index, then CUT
    skips: int
    latency: float | None  # mean first-token latency of answers that began
    latency_n: int
    last_kind: int
    probes: int = 0  # of the attempts, active probes
    probe_fails: int = 0
    probe_latency: float | None = None  # mean first-token latency of probes that succeeded

    @property
    def rate_limited(self) -> int:
        return self.fails[RATE_LIMITED] + (self.skips if self.last_kind == RATE_LIMITED else 0)

    @property
    def errors(self) -> int:
        """Failures that count against health: not the caller's fault, not rate limiting. A skip
        (breaker open) counts as one unless the last failure was a rate limit."""
        counted = sum(n for i, n in enumerate(self.fails) if i != RATE_LIMITED and i not in _IGNORED_INDEXES)
        return counted + (self.skips if self.last_kind != RATE_LIMITED else 0)

    @property
    def samples(self) -> int:
        ignored = sum(self.fails[i] for i in _IGNORED_INDEXES)
        return self.attempts - ignored + self.skips

    @property
    def error_rate(self) -> float:
        return self.errors / self.samples if self.samples else 0.0

    @property
    def rate_limited_rate(self) -> float:
        return self.rate_limited / self.samples if self.samples else 0.0

    def mix(self) -> dict[str, int]:
        """Failures by class name (``cut`` for answers broken off mid-stream)."""
        out = {KINDS[i].value: n for i, n in enumerate(self.fails[:-1]) if n}
        if self.fails[CUT]:
            out["cut"] = self.fails[CUT]
        return out


class Totals:
    """Gateway-wide request counts in the same kind of ring: the dashboard's live numbers."""

    __slots__ = ("errors", "failovers", "ids", "requests", "size", "slots")

    def __init__(self, size: float, slots: int) -> None:
        self.size, self.slots = size, slots
        self.ids = [-1] * slots
        self.requests = [0] * slots
        self.errors = [0] * slots
        self.failovers = [0] * slots

    def add(self, now: float, error: bool, failover: bool) -> None:
        bucket = int(now // self.size)
        slot = bucket % self.slots
        if self.ids[slot] != bucket:
            self.ids[slot] = bucket
            self.requests[slot] = self.errors[slot] = self.failovers[slot] = 0
        self.requests[slot] += 1
        if error:
            self.errors[slot] += 1
        if failover:
            self.failovers[slot] += 1

    def window(self, now: float, seconds: float) -> tuple[int, int, int]:
        newest = int(now // self.size)
        oldest = newest - min(self.slots, max(1, round(seconds / self.size))) + 1
        r = e = f = 0
        for slot in range(self.slots):
            if oldest <= self.ids[slot] <= newest:
                r += self.requests[slot]
                e += self.errors[slot]
                f += self.failovers[slot]
        return r, e, f


class SignalListener:
    """The router listener. ``clock`` is wall-clock epoch seconds (tests pass a controllable one)."""

    def __init__(self, clock: Callable[[], float] = time.time, *, bucket: float = 5.0, keep: float = 600.0) -> None:
        self.clock = clock
        self.bucket = bucket
        self.slots = max(2, int(keep // bucket) + 1)
        self.series: dict[str, Series] = {}
        self._by_target: dict[Target, tuple[Series, Series]] = {}
        self.totals = Totals(bucket, self.slots)
        self.requests = self.failovers = self.failed = 0

    def _pair(self, target: Target) -> tuple[Series, Series]:
        pair = self._by_target.get(target)
        if pair is None:
            provider = self.component(target.provider)
            pair = self._by_target[target] = (provider, self.component(str(target)))
        return pair

    def component(self, name: str) -> Series:
        series = self.series.get(name)
        if series is None:
            series = self.series[name] = Series(self.bucket, self.slots)
        return series

    def components(self) -> Iterator[tuple[str, Series]]:
        return iter(list(self.series.items()))

    # ------------------------------------------------------------------ active probes

    def probe_finished(self, target: Target, error: UpstreamError | None, latency: float | None) -> None:
        """An active probe's outcome: the same buckets as an attempt's, marked as a probe. Not a
        request: the live totals, failovers and requests saved do not move."""
        if error is None:
            kind = -1
        else:
            kind = KIND_INDEX[error.kind]
            if error.kind is FailureKind.CONNECTION_LOST and error.during_stream:
                kind = CUT
            latency = None
        now = self.clock()
        provider, model = self._pair(target)
        provider.probe(now, kind, latency)
        model.probe(now, kind, latency)

    # ------------------------------------------------------------------ RouterListener

    def attempt_finished(self, exchange: Exchange, attempt: Attempt) -> None:
        error = attempt.error
        if error is None:
            if attempt.cancelled:
                return
            kind = -1
            latency = None if attempt.first_event is None else attempt.first_event - attempt.started
        else:
            kind = KIND_INDEX[error.kind]
            if error.kind is FailureKind.CONNECTION_LOST and error.during_stream:
                kind = CUT
            latency = None
        now = self.clock()
        provider, model = self._pair(attempt.target)
        provider.attempt(now, kind, latency)
        model.attempt(now, kind, latency)

    def exchange_finished(self, exchange: Exchange) -> None:
        now = self.clock()
        # A request outlast itself refused (unknown model, bad body) is not a provider failure.
        error = exchange.error
        failed = isinstance(error, AllAttemptsFailed) and not error.caller_fault and not exchange.client_disconnected
        fallback = exchange.served_by is not None and bool(exchange.plan) and exchange.served_by != exchange.plan[0]
        self.requests += 1
        self.totals.add(now, failed, fallback)
        if exchange.skipped:
            for target in exchange.skipped:
                provider, model = self._pair(target)
                provider.skip(now)
                model.skip(now)
        if exchange.plan and (fallback or failed):
            provider, model = self._pair(exchange.plan[0])
            if fallback:
                self.failovers += 1
                provider.total_saved += 1
                model.total_saved += 1
            else:
                self.failed += 1
                provider.total_failed += 1
                model.total_failed += 1
