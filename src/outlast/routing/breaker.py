"""Circuit breakers: closed -> open -> half-open -> closed, on a clock that is passed in.

One :class:`Breaker` per (provider, model) and one per provider. A breaker opens on
``consecutive`` failures in a row, or when at least ``min_requests`` outcomes in the
last ``window`` seconds include a share ``failure_rate`` of failures. After
``cooldown`` seconds it lets ``half_open_trials`` requests through; a success closes
it, a failure opens it again for twice as long (up to ``max_cooldown``). Every update
is O(1): the window is a ring of per-second buckets.

A ``reserved`` breaker leaves its half-open trials to active probes (:mod:`outlast.health.probes`):
while it is not closed, :meth:`Breaker.allow` turns every caller's request away, and the prober
takes the trial with :meth:`Breaker.begin_probe` once the cool-down has passed. No caller's
request is then spent finding out whether a failing target is back.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum


class BreakerState(StrEnum):
    CLOSED = "closed"
    OPEN = "open"
    HALF_OPEN = "half_open"


@dataclass(frozen=True, slots=True)
class BreakerPolicy:
    consecutive: int = 5
    failure_rate: float = 0.5
    min_requests: int = 10
    window: int = 10  # seconds, in one-second buckets
    cooldown: float = 5.0
    max_cooldown: float = 20.0  # keeps "back on the primary within 30 s of recovery"
    half_open_trials: int = 1


class Breaker:
    __slots__ = ("_bucket_at", "_fails", "_oks", "_trial_started", "_trials", "consecutive", "cooldown",
                 "last_failure", "open_until", "opened", "policy", "reserved", "state")

    def __init__(self, policy: BreakerPolicy) -> None:
        self.policy = policy
        self.state = BreakerState.CLOSED
        self.consecutive = 0
        self.cooldown = policy.cooldown
        self.open_until = 0.0
        self.opened = 0.0
        self.last_failure = float("-inf")
        self._trials = 0
        self._trial_started = float("-inf")
        n = max(1, policy.window)
        self._oks = [0] * n
        self._fails = [0] * n
        self._bucket_at = [-1] * n  # which second each bucket currently counts
        self.reserved = False  # half-open trials are left to active probes

    # ------------------------------------------------------------------ questions

    def allow(self, now: float) -> bool:
        """May a request go to this target now? Half-open admits a few trials; a trial that
        never reports back frees its slot after one cool-down."""
        if self.state is BreakerState.CLOSED:
            return True
        if self.reserved:  # a probe, not a caller's request, finds out whether it is back
            return False
        return self._trial(now)

    def probe_due(self, now: float) -> bool:
        """Is this breaker open (or half-open) with its cool-down passed and a trial slot free?"""
        state = self.state
        if state is BreakerState.CLOSED:
            return False
        if state is BreakerState.OPEN:
            return now >= self.open_until
        return self._trials < self.policy.half_open_trials or now - self._trial_started >= self.cooldown

    def begin_probe(self, now: float) -> bool:
        """Take a half-open trial for an active probe (True when one was due). The probe's
        outcome then closes the breaker (:meth:`success`) or opens it again (:meth:`failure`)."""
        return self.state is not BreakerState.CLOSED and self._trial(now)

    def _trial(self, now: float) -> bool:
        state = self.state
        if state is BreakerState.OPEN:
            if now < self.open_until:
                return False
            self.state = BreakerState.HALF_OPEN
            self._trials = 0
        if self._trials >= self.policy.half_open_trials and now - self._trial_started < self.cooldown:
            return False
        if now - self._trial_started >= self.cooldown:
            self._trials = 0
        self._trials += 1
        self._trial_started = now
        return True

    def remaining(self, now: float) -> float:
        """Seconds until an open breaker half-opens (0 when it is not open)."""
        return max(0.0, self.open_until - now) if self.state is BreakerState.OPEN else 0.0

    # ------------------------------------------------------------------ outcomes

    def success(self, now: float) -> bool:
        """Record a success; True when it closed the breaker."""
        self.consecutive = 0
        self._count(now, ok=True)
        if self.state is not BreakerState.CLOSED:
            self.state = BreakerState.CLOSED
            self.cooldown = self.policy.cooldown
            self._trials = 0
            return True
        return False

    def failure(self, now: float, *, force: float | None = None) -> bool:
        """Record a failure; True when it opened the breaker. ``force`` opens it at once for
        that many seconds (a failed login, a silent provider)."""
        self.consecutive += 1
        self.last_failure = now
        self._count(now, ok=False)
        if self.state is BreakerState.HALF_OPEN:
            self._open(now, min(self.cooldown * 2, self.policy.max_cooldown))
            return True
        if self.state is BreakerState.OPEN:
            if force is not None:
                self.open_until = max(self.open_until, now + force)
            return False
        if force is not None:
            self._open(now, force)
            return True
        policy = self.policy
        if self.consecutive >= policy.consecutive or self._rate_exceeded(now):
            self._open(now, self.cooldown)
            return True
        return False

    def open_for(self, now: float, seconds: float) -> None:
        """Open (or keep open) until ``now + seconds``: what another replica learned."""
        until = now + seconds
        if self.state is BreakerState.OPEN:
            self.open_until = max(self.open_until, until)
        else:
            self._open(now, seconds)
        self.last_failure = max(self.last_failure, now)

    def close(self) -> None:
        self.state = BreakerState.CLOSED
        self.consecutive = 0
        self.cooldown = self.policy.cooldown
        self._trials = 0

    def _open(self, now: float, cooldown: float) -> None:
        self.state = BreakerState.OPEN
        self.cooldown = cooldown
        self.opened = now
        self.open_until = now + cooldown
        self._trials = 0
        self._trial_started = float("-inf")

    def _count(self, now: float, *, ok: bool) -> None:
        second = int(now)
        i = second % len(self._oks)
        if self._bucket_at[i] != second:
            self._bucket_at[i] = second
            self._oks[i] = self._fails[i] = 0
        if ok:
            self._oks[i] += 1
        else:
            self._fails[i] += 1

    def _rate_exceeded(self, now: float) -> bool:
        oldest = int(now) - len(self._oks) + 1
        oks = fails = 0
        for i, at in enumerate(self._bucket_at):
            if at >= oldest:
                oks += self._oks[i]
                fails += self._fails[i]
        total = oks + fails
        return total >= self.policy.min_requests and fails >= self.policy.failure_rate * total
