"""Replaying simulator scenarios on a controllable clock: the router (real adapters, real HTTP to
``outlast sim``), the signal listener and the detector all read one clock the test moves."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import pytest

from outlast.config import validate
from outlast.dialects.canonical import Message, Request, Text
from outlast.health.detector import Detector, Policy
from outlast.health.feeds import FeedPoller
from outlast.health.reports import Reports
from outlast.health.signals import SignalListener
from outlast.providers.registry import build_provider
from outlast.routing.assemble import route_table
from outlast.routing.breaker import BreakerPolicy
from outlast.routing.router import AllAttemptsFailed, Exchange, Router
from outlast.routing.state import MemoryHealth
from tests.conftest import gateway_document

FAST = {"connect": 2.0, "first_token": 3.0, "idle": 1.5, "total": 30.0}


class Replay:
    """One scenario's world: ``at(seconds)`` moves every clock (the simulator's too)."""

    def __init__(self, sim: Any, start: datetime, policy: Policy | None = None) -> None:
        self.sim = sim
        self.start = start.timestamp()
        self.seconds = 0.0
        document = gateway_document(sim.url)
        for provider in document["providers"].values():
            provider["timeouts"] = dict(FAST)
        document["providers"]["anthropic"]["status_feed"] = f"{sim.url}/anthropic/status/api/v2/summary.json"
        config = validate(document)
        self.providers = {name: build_provider(name, pc) for name, pc in config.providers.items()}
        self.signals = SignalListener(self.wall, bucket=5.0, keep=600.0)
        self.reports = Reports(self.wall)
        self.feeds = FeedPoller({"anthropic": f"{sim.url}/anthropic/status/api/v2/summary.json"}, clock=self.wall)
        self.detector = Detector(self.signals, self.reports, policy=policy, clock=self.wall, feeds=self.feeds.states)
        health = MemoryHealth(BreakerPolicy(), clock=self.router_clock)
        self.router = Router(self.providers, route_table(config, self.providers), clock=self.router_clock,
                             health=health, listeners=[self.signals])
        self.served: list[str] = []
        self.failed = 0

    def router_clock(self) -> float:
        return self.seconds

    def wall(self) -> float:
        return self.start + self.seconds

    def at(self, seconds: float) -> None:
        self.seconds = seconds
        self.sim.set_clock(seconds)

    async def send(self, route: str) -> Exchange:
        request = Request(route, (Message("user", (Text("[[reply:fine]]"),)),), max_tokens=16)
        exchange = Exchange("x", "anthropic", route, self.router_clock())
        try:
            async for _ in self.router.stream(request, exchange):
                pass
        except AllAttemptsFailed:
            self.failed += 1
        if exchange.served_by is not None:
            self.served.append(str(exchange.served_by))
        return exchange

    async def run(self, start: float, stop: float, every: float, routes: tuple[str, ...],
                  tick: float = 5.0, poll: float | None = None) -> None:
        """Requests on ``routes`` every ``every`` seconds from ``start`` to ``stop``, the detector
        ticking every ``tick`` seconds in between (and the vendor's status page read every ``poll``)."""
        t = start
        next_tick = next_poll = start
        while t < stop:
            self.at(t)
            if poll is not None and next_poll <= t:
                await self.feeds.poll()
                next_poll += poll
            for route in routes:
                await self.send(route)
            while next_tick <= t:
                self.detector.evaluate()
                next_tick += tick
            t += every

    def tick(self, seconds: float) -> None:
        self.at(seconds)
        self.detector.evaluate()

    async def aclose(self) -> None:
        await self.feeds.aclose()
        for provider in self.providers.values():
            await provider.aclose()


@pytest.fixture
def scenario_sim() -> Iterator[Any]:
    """A simulator whose scenario is set per test, with its clock stopped (time_scale ~0)."""
    from outlast.sim.testing import running_sim

    sims: list[Any] = []

    def start(name: str) -> Any:
        context = running_sim(scenario=name, time_scale=1e-9)
        sim = context.__enter__()
        sims.append(context)
        return sim

    yield start
    for context in sims:
        context.__exit__(None, None, None)


def epoch(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00")).astimezone(UTC)
