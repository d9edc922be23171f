"""In-process health state: one breaker and one latency estimate per target, one breaker per
provider. Everything is a dict lookup and a few attribute updates."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from outlast.providers.errors import FailureKind, TimeoutPhase
from outlast.routing.breaker import Breaker, BreakerPolicy, BreakerState
from outlast.routing.deadlines import LatencyEstimate
from outlast.routing.plan import Target

# Failures that say something about the target's health. A request the caller must fix, one
# too long for this model's window or one refused by a content policy says nothing about it.
COUNTED = frozenset({
    FailureKind.OVERLOADED, FailureKind.RATE_LIMITED, FailureKind.SERVER_ERROR, FailureKind.TIMEOUT,
    FailureKind.CONNECTION_LOST, FailureKind.EMPTY_RESPONSE, FailureKind.MALFORMED, FailureKind.NOT_FOUND,
    FailureKind.AUTH_FAILED,
})
# Silent before the first byte: one such failure opens the target at once, so a hanging
# provider costs one first-token deadline, not one per request until the count is reached.
SILENT = frozenset({TimeoutPhase.CONNECT, TimeoutPhase.FIRST_TOKEN})


class TargetHealth:
    __slots__ = ("breaker", "latency", "not_before", "prefill", "published_p99")

    def __init__(self, policy: BreakerPolicy) -> None:
        self.breaker = Breaker(policy)
        self.latency = LatencyEstimate()
        self.not_before = 0.0  # a 429's retry-after: never tried again sooner
        self.prefill: bool | None = None
        self.published_p99: float | None = None


class MemoryHealth:
    """The default :class:`~outlast.routing.state.base.HealthState`."""

    def __init__(self, policy: BreakerPolicy | None = None, *, auth_cooldown: float = 60.0,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.policy = policy or BreakerPolicy()
        # A provider breaker sees the traffic of all its models, so it needs more evidence.
        self.provider_policy = BreakerPolicy(
            consecutive=self.policy.consecutive * 2, failure_rate=self.policy.failure_rate,
            min_requests=self.policy.min_requests * 2, window=self.policy.window, cooldown=self.policy.cooldown,
            max_cooldown=self.policy.max_cooldown, half_open_trials=self.policy.half_open_trials)
        self.auth_cooldown = auth_cooldown
        self.clock = clock
        self._targets: dict[Target, TargetHealth] = {}
        self._providers: dict[str, Breaker] = {}

    # ------------------------------------------------------------------ lookups

    def _target(self, target: Target) -> TargetHealth:
        health = self._targets.get(target)
        if health is None:
            health = self._targets[target] = TargetHealth(self.policy)
        return health

    def _provider(self, provider: str) -> Breaker:
        breaker = self._providers.get(provider)
        if breaker is None:
            breaker = self._providers[provider] = Breaker(self.provider_policy)
        return breaker

    # ------------------------------------------------------------------ the router's questions

    def ready(self, target: Target, now: float) -> bool:
        provider = self._providers.get(target.provider)
        if provider is not None and provider.state is not BreakerState.CLOSED and not provider.allow(now):
            return False
        health = self._targets.get(target)
        if health is None:
            return True
        if health.not_before > now:
            return False
        breaker = health.breaker
        return breaker.state is BreakerState.CLOSED or breaker.allow(now)

    def consecutive_failures(self, target: Target) -> int:
        health = self._targets.get(target)
        return 0 if health is None else health.breaker.consecutive

    def last_failure(self, target: Target) -> float:
        health = self._targets.get(target)
        return float("-inf") if health is None else health.breaker.last_failure

    def wait(self, target: Target, now: float) -> float:
        waits = [0.0]
        provider = self._providers.get(target.provider)
        if provider is not None:
            waits.append(provider.remaining(now))
        health = self._targets.get(target)
        if health is not None:
            waits.append(health.breaker.remaining(now))
            waits.append(health.not_before - now)
        return max(waits)

    def first_token_deadline(self, target: Target, floor: float, ceiling: float, multiplier: float) -> float:
        health = self._targets.get(target)
        if health is None:
            return ceiling
        return health.latency.deadline(floor, ceiling, multiplier)

    def prefill(self, target: Target) -> bool | None:
        health = self._targets.get(target)
        return None if health is None else health.prefill

    # ------------------------------------------------------------------ outcomes

    def succeeded(self, target: Target, now: float, first_token: float | None) -> None:
        health = self._target(target)
        closed = health.breaker.success(now)
        provider = self._providers.get(target.provider)
        provider_closed = provider.success(now) if provider is not None else False
        if first_token is not None:
            latency = health.latency
            latency.add(first_token)
            p99 = latency.p99
            if p99 is not None and (health.published_p99 is None or abs(p99 - health.published_p99)
                                    > 0.2 * health.published_p99):
                health.published_p99 = p99
                self._latency_changed(target, p99)
        if closed or provider_closed:
            self._closed(target, provider_closed)

    def failed(self, target: Target, kind: FailureKind, now: float, *, retry_after: float | None = None,
               phase: TimeoutPhase | None = None) -> None:
        if kind not in COUNTED:
            return
        health = self._target(target)
        if kind is FailureKind.RATE_LIMITED and retry_after is not None:
            health.not_before = max(health.not_before, now + retry_after)
        force = health.breaker.cooldown if kind is FailureKind.TIMEOUT and phase in SILENT else None
        opened = health.breaker.failure(now, force=force)
        provider_force = self.auth_cooldown if kind is FailureKind.AUTH_FAILED else None
        provider_opened = False
        if kind is not FailureKind.NOT_FOUND:
            provider_opened = self._provider(target.provider).failure(now, force=provider_force)
        self._failure(target, kind, now, retry_after, phase, opened, provider_opened)

    def learn_prefill(self, target: Target, supported: bool) -> None:
        health = self._target(target)
        if health.prefill != supported:
            health.prefill = supported
            self._learned(target, supported)

    # ------------------------------------------------------------------ active probes (outlast.health.probes)

    def _not_closed(self, target: Target) -> list[Breaker]:
        health = self._targets.get(target)
        breakers = [self._providers.get(target.provider), health.breaker if health is not None else None]
        return [b for b in breakers if b is not None and b.state is not BreakerState.CLOSED]

    def reserve(self, target: Target, reserved: bool = True) -> None:
        """Leave the half-open trials of ``target`` and of its provider to active probes: while
        either is open, callers' requests skip the target and a probe finds out if it is back."""
        self._target(target).breaker.reserved = reserved
        self._provider(target.provider).reserved = reserved

    def probe_state(self, target: Target, now: float) -> str:
        """``closed``: a scheduled probe may go; ``cooling``: open, cool-down not over; ``due``:
        the next probe is the half-open trial (take it with :meth:`begin_probe`)."""
        breakers = self._not_closed(target)
        if not breakers:
            return "closed"
        return "due" if all(b.probe_due(now) for b in breakers) else "cooling"

    def begin_probe(self, target: Target, now: float) -> bool:
        breakers = self._not_closed(target)
        if not breakers or not all(b.probe_due(now) for b in breakers):
            return False
        for breaker in breakers:
            breaker.begin_probe(now)
        return True

    # ------------------------------------------------------------------ hooks for a shared state

    def _failure(self, target: Target, kind: FailureKind, now: float, retry_after: float | None,
                 phase: TimeoutPhase | None, opened: bool, provider_opened: bool) -> None:
        """Called after every counted failure (the Redis state publishes it)."""

    def _closed(self, target: Target, provider: bool) -> None:
        """Called when a success closed a breaker."""

    def _latency_changed(self, target: Target, p99: float) -> None:
        """Called when a target's p99 first-token latency moved by more than a fifth."""

    def _learned(self, target: Target, prefill: bool) -> None:
        """Called when a target turned out to refuse (or accept) assistant prefill."""

    # ------------------------------------------------------------------ the rest

    def snapshot(self, now: float) -> dict[str, Any]:
        targets = {}
        for target, health in self._targets.items():
            breaker = health.breaker
            targets[str(target)] = {
                "state": breaker.state.value, "consecutive_failures": breaker.consecutive,
                "retry_in": round(max(breaker.remaining(now), health.not_before - now, 0.0), 3),
                "first_token_p99": health.latency.p99, "prefill": health.prefill,
            }
        providers = {name: {"state": b.state.value, "retry_in": round(b.remaining(now), 3)}
                     for name, b in self._providers.items()}
        return {"targets": targets, "providers": providers}

    def reset(self) -> None:
        self._targets.clear()
        self._providers.clear()

    async def start(self) -> None:
        return None

    async def aclose(self) -> None:
        return None
