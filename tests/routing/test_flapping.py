"""A flapping primary on a controllable clock: the router in front of real adapters and ``outlast sim``.

Flapping means short bursts of failures (the ``flapping`` scenario: 10 seconds at a time) that the
breakers absorb: callers are served by the fallback during a burst and by the primary again soon
after it. Outage detection does not turn them into incidents (tests/health/test_scenarios.py)."""

from __future__ import annotations

from typing import Any

import pytest

from outlast.config import validate
from outlast.dialects.canonical import Message, Request, Text
from outlast.providers.registry import build_provider
from outlast.routing.assemble import route_table
from outlast.routing.breaker import BreakerPolicy
from outlast.routing.router import AllAttemptsFailed, Exchange, Router
from outlast.routing.state import MemoryHealth
from outlast.sim.testing import running_sim
from tests.failover.conftest import failover_document


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def router_for(sim: Any, clock: Clock) -> Router:
    config = validate(failover_document(sim.url))
    providers = {name: build_provider(name, pc) for name, pc in config.providers.items()}
    health = MemoryHealth(BreakerPolicy(), clock=clock)
    return Router(providers, route_table(config, providers), clock=clock, health=health)


async def serve(router: Router, clock: Clock, route: str) -> Exchange:
    request = Request(route, (Message("user", (Text("[[reply:ok]]"),)),), max_tokens=16)
    exchange = Exchange("x", "anthropic", route, clock())
    async for _ in router.stream(request, exchange):
        pass
    return exchange


async def test_flapping_primary_is_served_from_fallback_and_back_within_30s_of_recovery(sim: Any) -> None:
    clock = Clock()
    router = router_for(sim, clock)
    try:
        sim.add_fault(vendor="anthropic", model="claude-opus-4-6", mode="status", status=529)
        served_while_down = []
        for second in range(60):  # down for a minute, one request a second
            clock.now = float(second)
            exchange = await serve(router, clock, "mx-anthropic-cross")
            served_while_down.append(str(exchange.served_by))
        assert set(served_while_down) == {"openai/gpt-5.1"}  # not one request failed
        probes = [r for r in sim.requests() if r["vendor"] == "anthropic"]
        # Five failures open the breaker; after that only a probe per cool-down (5, 10, 20, 20 s).
        assert 5 < len(probes) <= 10
        sim.clear_faults()  # recovery at t = 60
        back = None
        for second in range(60, 120):
            clock.now = float(second)
            exchange = await serve(router, clock, "mx-anthropic-cross")
            if str(exchange.served_by) == "anthropic/claude-opus-4-6":
                back = second
                break
        assert back is not None and back - 60 <= 30
        # Closed again: the next request goes straight to the primary.
        clock.now += 0.5
        assert str((await serve(router, clock, "mx-anthropic-cross")).served_by) == "anthropic/claude-opus-4-6"
    finally:
        for provider in router.providers.values():
            await provider.aclose()


async def test_every_candidate_open_tries_the_least_recently_failed(sim: Any) -> None:
    clock = Clock()
    router = router_for(sim, clock)
    try:
        sim.add_fault(vendor="anthropic", model="claude-opus-4-6", mode="status", status=529)
        sim.add_fault(vendor="openai", model="gpt-5.1", mode="status", status=503)
        for second in range(5):
            clock.now = float(second)
            with pytest.raises(AllAttemptsFailed):
                await serve(router, clock, "mx-anthropic-cross")
        clock.now = 5.5  # both open; opus failed first at each step, gpt-5.1 last
        before = len(sim.requests())
        with pytest.raises(AllAttemptsFailed) as caught:
            await serve(router, clock, "mx-anthropic-cross")
        assert "every candidate" in str(caught.value) and caught.value.retry_after is not None
        tried = sim.requests()[before:]
        assert [r["vendor"] for r in tried] == ["anthropic"]
    finally:
        for provider in router.providers.values():
            await provider.aclose()


def test_the_flapping_scenario_is_absorbed_by_the_breakers() -> None:
    """Every caller is answered through six bursts, by the fallback during each and by the
    primary again within 30 s of its end."""
    import asyncio

    with running_sim("flapping", time_scale=1e-9) as sim:
        clock = Clock()
        router = router_for(sim, clock)

        async def run() -> list[tuple[int, str]]:
            served = []
            try:
                for second in range(120, 600):
                    clock.now = float(second)
                    sim.set_clock(second)
                    exchange = await serve(router, clock, "mx-anthropic-cross")  # raises if a caller failed
                    served.append((second, str(exchange.served_by)))
            finally:
                for provider in router.providers.values():
                    await provider.aclose()
            return served

        served = asyncio.run(run())
    bursts = [145, 205, 325, 385, 505, 565]  # 2:25, 3:25, 5:25, 6:25, 8:25, 9:25; 10 s each
    for start in bursts:
        during = {by for second, by in served if start + 3 <= second < start + 10}
        if start < 500:  # 529s: the breaker opens, the fallback serves everyone
            assert during == {"openai/gpt-5.1"}, (start, during)
        else:  # 500s at 80%: a retry on the primary sometimes succeeds, the fallback serves the rest
            assert "openai/gpt-5.1" in during, (start, during)
        back = [second for second, by in served if second >= start + 10 and by == "anthropic/claude-opus-4-6"]
        assert back and back[0] - (start + 10) <= 30, (start, back[:1])
    assert sum(by == "anthropic/claude-opus-4-6" for _, by in served) > len(served) // 2
