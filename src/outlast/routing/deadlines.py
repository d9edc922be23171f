"""Adaptive first-token deadlines, backoff with full jitter, and the global retry budget.

A target's first-token deadline follows its recent latency: ``multiplier`` times the
p99 of its last :data:`SAMPLES` first-token latencies, kept within a floor and a
ceiling. Until it has :data:`MIN_SAMPLES` samples the ceiling applies. Recording a
sample is O(1); the p99 is recomputed every :data:`RECOMPUTE_EVERY` samples over a
fixed-size ring.
"""

from __future__ import annotations

import random
from collections.abc import Callable

SAMPLES = 64
MIN_SAMPLES = 8
RECOMPUTE_EVERY = 8


class LatencyEstimate:
    __slots__ = ("_count", "_i", "_ring", "p99")

    def __init__(self) -> None:
        self._ring: list[float] = []
        self._i = 0
        self._count = 0
        self.p99: float | None = None

    def add(self, seconds: float) -> None:
        ring = self._ring
        if len(ring) < SAMPLES:
            ring.append(seconds)
        else:
            ring[self._i] = seconds
            self._i = (self._i + 1) % SAMPLES
        self._count += 1
        if self._count >= MIN_SAMPLES and (self._count % RECOMPUTE_EVERY == 0 or self.p99 is None):
            ordered = sorted(ring)
            self.p99 = ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))]

    def merge(self, p99: float) -> None:
        """Take another replica's estimate when this one has none yet."""
        if self.p99 is None:
            self.p99 = p99

    def deadline(self, floor: float, ceiling: float, multiplier: float) -> float:
        p99 = self.p99
        if p99 is None:
            return ceiling
        return min(ceiling, max(floor, p99 * multiplier))


def full_jitter(attempt: int, base: float = 0.025, cap: float = 0.25,
                rand: Callable[[], float] = random.random) -> float:
    """AWS's "full jitter": a uniform delay in [0, min(cap, base * 2**attempt))."""
    return rand() * min(cap, base * (2 ** attempt))


class RetryBudget:
    """A token bucket shared by every request of this gateway, so that retries stay a bounded
    share of traffic: each request deposits ``ratio`` tokens, each retry withdraws one, and
    ``min_per_second`` retries are always allowed. During an outage the bucket runs dry and
    requests fail over instead of hammering the failing provider again."""

    __slots__ = ("_clock", "_last", "_tokens", "capacity", "min_per_second", "ratio")

    def __init__(self, ratio: float = 0.2, min_per_second: float = 5.0, capacity: float = 50.0,
                 clock: Callable[[], float] | None = None) -> None:
        self.ratio = ratio
        self.min_per_second = min_per_second
        self.capacity = capacity
        self._tokens = capacity
        self._clock = clock
        self._last: float | None = None

    def deposit(self) -> None:
        tokens = self._tokens + self.ratio
        self._tokens = tokens if tokens < self.capacity else self.capacity

    def withdraw(self, now: float) -> bool:
        last = self._last
        if last is not None:
            self._tokens = min(self.capacity, self._tokens + (now - last) * self.min_per_second)
        self._last = now
        if self._tokens >= 1.0:
            self._tokens -= 1.0
            return True
        return False

    @property
    def tokens(self) -> float:
        return self._tokens
