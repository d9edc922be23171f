"""Breakers, backoff, the retry budget and adaptive deadlines on a controllable clock: exact and fast."""

from __future__ import annotations

from outlast.providers.errors import FailureKind, TimeoutPhase
from outlast.routing.breaker import Breaker, BreakerPolicy, BreakerState
from outlast.routing.deadlines import LatencyEstimate, RetryBudget, full_jitter
from outlast.routing.plan import Target
from outlast.routing.state import MemoryHealth

T = Target("anthropic", "claude-opus-4-6")
OTHER = Target("anthropic", "claude-haiku-4-5-20251001")


def test_breaker_opens_after_consecutive_failures_and_half_opens_after_cool_down() -> None:
    breaker = Breaker(BreakerPolicy(consecutive=3, cooldown=5.0, max_cooldown=20.0))
    assert not breaker.failure(0.0) and not breaker.failure(0.1)
    assert breaker.failure(0.2) and breaker.state is BreakerState.OPEN
    assert not breaker.allow(5.1)  # 0.2 + 5 = 5.2
    assert breaker.allow(5.2) and breaker.state is BreakerState.HALF_OPEN
    assert not breaker.allow(5.3)  # one trial at a time
    assert breaker.failure(5.4)  # the trial failed: open again, twice as long
    assert breaker.remaining(5.4) == 10.0
    assert breaker.allow(15.4)
    assert breaker.success(15.5) and breaker.state is BreakerState.CLOSED
    assert breaker.cooldown == 5.0


def test_cool_down_doubles_up_to_its_cap() -> None:
    breaker = Breaker(BreakerPolicy(consecutive=1, cooldown=5.0, max_cooldown=12.0))
    breaker.failure(0.0)
    now = 0.0
    cooldowns = []
    for _ in range(4):
        now += breaker.remaining(now)
        assert breaker.allow(now)
        breaker.failure(now)
        cooldowns.append(breaker.remaining(now))
    assert cooldowns == [10.0, 12.0, 12.0, 12.0]


def test_breaker_opens_on_failure_rate_over_the_window() -> None:
    breaker = Breaker(BreakerPolicy(consecutive=100, failure_rate=0.5, min_requests=10, window=10))
    now = 0.0
    for i in range(9):  # alternate: never two failures in a row
        now = i * 0.5
        if i % 2:
            assert not breaker.failure(now)
        else:
            breaker.success(now)
    assert breaker.state is BreakerState.CLOSED
    assert breaker.failure(5.0)  # 10 outcomes, 5 failures: 50 %
    # Outcomes older than the window do not count.
    old = Breaker(BreakerPolicy(consecutive=100, min_requests=4, window=10))
    for i in range(3):
        old.failure(float(i))
    old.success(50.0)
    assert not old.failure(51.0)


def test_a_trial_that_never_reports_frees_its_slot_after_one_cool_down() -> None:
    breaker = Breaker(BreakerPolicy(consecutive=1, cooldown=5.0))
    breaker.failure(0.0)
    assert breaker.allow(5.0)
    assert not breaker.allow(9.9)
    assert breaker.allow(10.0)


def test_health_skips_open_targets_and_rate_limit_waits() -> None:
    health = MemoryHealth(BreakerPolicy(consecutive=2, cooldown=5.0))
    health.failed(T, FailureKind.RATE_LIMITED, 0.0, retry_after=3.0)
    assert not health.ready(T, 2.9) and health.ready(T, 3.0)
    health.failed(T, FailureKind.OVERLOADED, 3.0)
    assert not health.ready(T, 3.1) and health.wait(T, 3.1) == 4.9
    assert health.ready(OTHER, 3.1)
    # Failures a caller must fix say nothing about the target.
    health.failed(OTHER, FailureKind.BAD_REQUEST, 0.0)
    health.failed(OTHER, FailureKind.CONTEXT_TOO_LONG, 0.0)
    assert health.consecutive_failures(OTHER) == 0


def test_a_silent_target_opens_at_once() -> None:
    health = MemoryHealth(BreakerPolicy(consecutive=5))
    health.failed(T, FailureKind.TIMEOUT, 0.0, phase=TimeoutPhase.FIRST_TOKEN)
    assert not health.ready(T, 0.1)


def test_auth_failure_opens_the_whole_provider() -> None:
    health = MemoryHealth(BreakerPolicy(), auth_cooldown=60.0)
    health.failed(T, FailureKind.AUTH_FAILED, 0.0)
    assert not health.ready(OTHER, 59.0)
    assert health.ready(Target("openai", "gpt-5.1"), 1.0)
    assert health.ready(OTHER, 60.0)  # a trial after the cool-down


def test_adaptive_first_token_deadline_follows_p99_within_floor_and_ceiling() -> None:
    health = MemoryHealth()
    assert health.first_token_deadline(T, 0.5, 30.0, 3.0) == 30.0  # nothing known: the ceiling
    for i in range(64):
        health.succeeded(T, float(i), 0.2 + (0.1 if i == 63 else 0.0))
    assert abs(health.first_token_deadline(T, 0.5, 30.0, 3.0) - 0.9) < 1e-9  # 3 x p99 (0.3)
    fast = LatencyEstimate()
    for _ in range(16):
        fast.add(0.01)
    assert fast.deadline(0.5, 30.0, 3.0) == 0.5  # the floor
    slow = LatencyEstimate()
    for _ in range(16):
        slow.add(20.0)
    assert slow.deadline(0.5, 30.0, 3.0) == 30.0  # the ceiling


def test_full_jitter_is_uniform_below_the_capped_exponential() -> None:
    assert full_jitter(0, base=0.1, cap=1.0, rand=lambda: 0.999) < 0.1
    assert full_jitter(3, base=0.1, cap=1.0, rand=lambda: 0.5) == 0.4
    assert full_jitter(10, base=0.1, cap=1.0, rand=lambda: 0.5) == 0.5
    assert full_jitter(2, rand=lambda: 0.0) == 0.0


def test_retry_budget_bounds_retries_to_a_share_of_traffic() -> None:
    budget = RetryBudget(ratio=0.25, min_per_second=0.0, capacity=2.0)
    assert budget.withdraw(0.0) and budget.withdraw(0.0)
    assert not budget.withdraw(0.0)  # dry: fail over instead of retrying
    for _ in range(4):  # four requests earn one retry
        budget.deposit()
    assert budget.withdraw(0.0) and not budget.withdraw(0.0)
    refilled = RetryBudget(ratio=0.0, min_per_second=2.0, capacity=5.0)
    while refilled.withdraw(0.0):
        pass
    assert refilled.withdraw(0.5) and not refilled.withdraw(0.5)  # 2 per second
