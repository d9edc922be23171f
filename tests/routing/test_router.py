"""The router's walk on a controllable clock, in front of scripted providers: the route's total
deadline, the skipped candidates it reports, and the allowed-target predicate a request brings."""

from __future__ import annotations

from collections.abc import AsyncGenerator
from dataclasses import dataclass, field
from typing import Any

import pytest

from outlast.dialects.canonical import Event, Message, Request, Start, Stop, StopReason, Text, TextDelta
from outlast.providers.errors import FailureKind, TimeoutPhase, UpstreamError
from outlast.routing.breaker import BreakerPolicy
from outlast.routing.plan import DEFAULT_OPTIONS, RouteOptions, RouteSpec, RouteTable, Target
from outlast.routing.router import AllAttemptsFailed, Exchange, Router
from outlast.routing.state import MemoryHealth


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now

    async def sleep(self, seconds: float) -> None:
        self.now += seconds


@dataclass
class Step:
    """One scripted answer: ``spend`` seconds pass on the clock, then ``error`` is raised or the
    answer ``text`` is streamed."""

    spend: float = 0.0
    error: UpstreamError | None = None
    text: str = "fine"


def fails(kind: FailureKind, spend: float = 0.0, retry_after: float | None = None) -> Step:
    return Step(spend, UpstreamError(kind, f"scripted {kind.value}", retry_after=retry_after))


@dataclass
class Scripted:
    """A provider whose models answer from scripts, one step per request (the last one repeats)."""

    clock: Clock
    scripts: dict[str, list[Step]]
    name: str = "p"
    kind: str = "openai"
    calls: list[tuple[str, float]] = field(default_factory=list)

    async def stream(self, request: Request, model: str) -> AsyncGenerator[Event, None]:
        self.calls.append((model, self.clock.now))
        script = self.scripts[model]
        step = script.pop(0) if len(script) > 1 else script[0]
        self.clock.now += step.spend
        if step.error is not None:
            raise step.error
        yield Start("m1", model)
        yield TextDelta(0, step.text)
        yield Stop(StopReason.END_TURN)

    async def aclose(self) -> None:
        pass


def router(clock: Clock, scripts: dict[str, list[Step]], options: RouteOptions = DEFAULT_OPTIONS,
           **kwargs: Any) -> tuple[Router, Scripted]:
    provider = Scripted(clock, scripts)
    table = RouteTable([("r", RouteSpec(tuple(f"p/{m}" for m in scripts), options=options))], ["p"])
    health = MemoryHealth(BreakerPolicy(), clock=clock)
    return Router({"p": provider}, table, clock=clock, health=health, sleep=clock.sleep, rand=lambda: 0.0,
                  first_token_ceilings={"p": 8.0}, **kwargs), provider


async def serve(router: Router, clock: Clock, **kwargs: Any) -> Exchange:
    request = Request("r", (Message("user", (Text("hello"),)),), max_tokens=16)
    exchange = Exchange("x", "openai", "r", clock())
    async for _ in router.stream(request, exchange, **kwargs):
        pass
    return exchange


async def failure(router: Router, clock: Clock, **kwargs: Any) -> tuple[AllAttemptsFailed, Exchange]:
    request = Request("r", (Message("user", (Text("hello"),)),), max_tokens=16)
    exchange = Exchange("x", "openai", "r", clock())
    with pytest.raises(AllAttemptsFailed) as caught:
        async for _ in router.stream(request, exchange, **kwargs):
            pass
    return caught.value, exchange


# --------------------------------------------------------------------------- the total deadline


async def test_total_deadline_caps_each_attempt_and_stops_the_walk_with_a_total_timeout() -> None:
    clock = Clock()
    slow_failure = fails(FailureKind.SERVER_ERROR, spend=4.0)  # too slow to be worth a retry
    r, provider = router(clock, {"a": [slow_failure], "b": [slow_failure], "c": [slow_failure], "d": [Step()]},
                         RouteOptions(deadline=10.0))
    failed, exchange = await failure(r, clock)
    # a had its own deadline (the 8 s ceiling); b and c what was left of the 10 s; d none at all.
    assert [m for m, _ in provider.calls] == ["a", "b", "c"]
    assert [(a.deadline, a.total_bound) for a in exchange.attempts] == [(8.0, False), (6.0, True), (2.0, True)]
    assert failed.kind is FailureKind.TIMEOUT
    assert failed.stopped is not None and failed.stopped.phase is TimeoutPhase.TOTAL
    assert str(failed).startswith("no answer within the route's total deadline of 10 s for 'r': 1. ")
    assert "3. upstream: server_error" in str(failed)


async def test_total_deadline_counts_retries_from_the_requests_start() -> None:
    """A 429 whose wait fits its own attempt but not what is left of the request's deadline is
    not waited out: the next candidate answers in time instead."""
    clock = Clock()
    scripts = {"a": [fails(FailureKind.SERVER_ERROR, spend=0.1),  # cheap: retried at once
                     fails(FailureKind.RATE_LIMITED, spend=3.0, retry_after=1.9)],  # 3.1 + 1.9 + 0.05 > 5
               "b": [Step(text="from b")]}
    r, provider = router(clock, scripts, RouteOptions(deadline=5.0, retry_budget=2, max_retry_after=2.0))
    exchange = await serve(r, clock)
    assert exchange.served_by == Target("p", "b")
    assert provider.calls == [("a", 0.0), ("a", 0.1), ("b", 3.1)]
    assert [a.purpose for a in exchange.attempts] == ["first", "retry", "failover"]
    assert exchange.attempts[-1].deadline == pytest.approx(1.9)


async def test_a_short_retry_after_within_the_total_deadline_is_still_waited_out() -> None:
    clock = Clock()
    scripts = {"a": [fails(FailureKind.RATE_LIMITED, spend=1.0, retry_after=1.5), Step(text="from a")],
               "b": [Step(text="from b")]}
    r, provider = router(clock, scripts, RouteOptions(deadline=5.0, max_retry_after=2.0))
    exchange = await serve(r, clock)
    assert exchange.served_by == Target("p", "a")
    assert provider.calls == [("a", 0.0), ("a", 2.5)]


async def test_without_a_total_deadline_attempts_keep_their_own() -> None:
    clock = Clock()
    slow_failure = fails(FailureKind.SERVER_ERROR, spend=40.0)
    r, provider = router(clock, {"a": [slow_failure], "b": [slow_failure], "c": [Step()]})
    exchange = await serve(r, clock)
    assert exchange.served_by == Target("p", "c")
    assert [m for m, _ in provider.calls] == ["a", "b", "c"]
    assert [(a.deadline, a.total_bound) for a in exchange.attempts] == [(8.0, False)] * 3


# --------------------------------------------------------------------------- skipped candidates


async def test_candidates_skipped_while_unhealthy_are_recorded_and_named_in_the_error() -> None:
    clock = Clock()
    overloaded = fails(FailureKind.OVERLOADED)
    r, provider = router(clock, {"a": [overloaded], "b": [Step()], "c": [overloaded]})
    r.health.failed(Target("p", "b"), FailureKind.TIMEOUT, 0.0, phase=TimeoutPhase.FIRST_TOKEN)  # open at once
    clock.now = 1.0
    failed, exchange = await failure(r, clock)
    assert [m for m, _ in provider.calls] == ["a", "c"]
    assert exchange.skipped == [Target("p", "b")]
    assert failed.skipped == [Target("p", "b")]
    assert str(failed).endswith("(skipped while unhealthy: p/b)")


async def test_a_last_resort_target_is_an_attempt_not_a_skip() -> None:
    clock = Clock()
    overloaded = fails(FailureKind.OVERLOADED)
    r, provider = router(clock, {"a": [overloaded], "b": [overloaded]})
    r.health.failed(Target("p", "a"), FailureKind.TIMEOUT, 0.0, phase=TimeoutPhase.FIRST_TOKEN)
    r.health.failed(Target("p", "b"), FailureKind.TIMEOUT, 1.0, phase=TimeoutPhase.FIRST_TOKEN)
    clock.now = 2.0  # both open: the least recently failed (a) is tried anyway
    failed, exchange = await failure(r, clock)
    assert [m for m, _ in provider.calls] == ["a"]
    assert exchange.skipped == [Target("p", "b")]
    assert "skipped while unhealthy: p/b)" in str(failed)


# --------------------------------------------------------------------------- the request's predicate


class NoB:
    """A policy predicate, as governance passes it: no ``b`` for this request, and why."""

    def __call__(self, request: Request, target: Target) -> bool:
        return target.model != "b"

    def explain(self, request: Request, targets: Any) -> str:
        return "not approved for this data class: " + ", ".join(str(t) for t in targets)


async def test_giving_up_explains_the_predicate_passed_to_stream_not_the_routers() -> None:
    clock = Clock()
    overloaded = fails(FailureKind.OVERLOADED)
    r, provider = router(clock, {"a": [overloaded], "b": [Step()], "c": [overloaded]})
    assert r.allowed is None
    failed, _ = await failure(r, clock, allowed=NoB())
    assert [m for m, _ in provider.calls] == ["a", "c"]
    assert failed.policy == "not approved for this data class: p/b"
    assert str(failed).endswith("; not approved for this data class: p/b")


async def test_the_routers_own_predicate_applies_when_the_request_brings_none() -> None:
    clock = Clock()
    overloaded = fails(FailureKind.OVERLOADED)
    r, provider = router(clock, {"a": [overloaded], "b": [Step()]}, allowed=NoB())
    failed, _ = await failure(r, clock)
    assert [m for m, _ in provider.calls] == ["a"]
    assert failed.policy == "not approved for this data class: p/b"


async def test_the_exchange_names_the_route_key_that_matched() -> None:
    clock = Clock()
    r, _ = router(clock, {"a": [Step()]})
    exchange = await serve(r, clock)
    assert exchange.route == "r"
