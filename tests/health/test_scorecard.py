"""The vendor scorecard's latency: each answer's own time to first token, not the exchange's. A real
router fails over from a hanging primary to a fast fallback (real adapters, real HTTP to ``outlast
sim``); the test's clock says how long each upstream took, so no number depends on the machine."""

from __future__ import annotations

from collections.abc import AsyncGenerator
from pathlib import Path
from typing import Any

from outlast.config import validate
from outlast.dialects.canonical import Event, Message, Request, Text
from outlast.health.scorecard import render_markdown, scorecard
from outlast.providers.base import Provider
from outlast.providers.registry import build_provider
from outlast.routing.assemble import route_table
from outlast.routing.breaker import BreakerPolicy
from outlast.routing.router import Exchange, Router
from outlast.routing.state import MemoryHealth
from outlast.store.records import exchange_record
from outlast.store.sql import SqlStore
from tests.conftest import gateway_document

DEADLINE = 0.3  # the primary's first-token deadline (real seconds: the router's timer runs on the loop)


class Clock:
    now = 100.0

    def __call__(self) -> float:
        return self.now


class Timed:
    """A real adapter, with the test's clock moved as the upstream would take time: ``sent`` when the
    request goes out (a hang until the deadline), ``first`` before its first event (its own latency)."""

    def __init__(self, inner: Provider, clock: Clock, *, sent: float = 0.0, first: list[float] | None = None) -> None:
        self.inner = inner
        self.name = inner.name
        self.clock = clock
        self.sent = sent
        self.first = list(first or [])

    def stream(self, request: Request, model: str) -> AsyncGenerator[Event, None]:
        return self._stream(request, model)

    async def _stream(self, request: Request, model: str) -> AsyncGenerator[Event, None]:
        self.clock.now += self.sent
        events = self.inner.stream(request, model)
        try:
            started = False
            async for event in events:
                if not started and self.first:
                    self.clock.now += self.first.pop(0)
                started = True
                yield event
        finally:
            await events.aclose()

    async def aclose(self) -> None:
        await self.inner.aclose()


async def test_a_fallback_is_charged_only_its_own_time_to_first_token(sim: Any, tmp_path: Path) -> None:
    sim.add_fault(vendor="anthropic", model="claude-opus-4-6", mode="hang")
    config = validate(gateway_document(sim.url))
    clock = Clock()
    real = {name: build_provider(name, pc) for name, pc in config.providers.items()}
    fallback_ttft = [0.04, 0.06, 0.08]  # what openai took, each time, by the test's clock
    providers: dict[str, Any] = dict(real)
    providers["anthropic"] = Timed(real["anthropic"], clock, sent=DEADLINE)
    providers["openai"] = Timed(real["openai"], clock, first=list(fallback_ttft))
    health = MemoryHealth(BreakerPolicy(), clock=clock)
    router = Router(providers, route_table(config, providers), clock=clock, health=health,
                    first_token_ceilings={"anthropic": DEADLINE, "openai": 30.0})
    exchanges = []
    try:
        for i in range(3):
            health.reset()  # the primary is tried (and hangs) every time, not skipped by its breaker
            request = Request("claude-opus-4-6", (Message("user", (Text("[[reply:fine]]"),)),), max_tokens=16)
            exchange = Exchange(f"x{i}", "anthropic", "claude-opus-4-6", clock())
            async for _ in router.stream(request, exchange):
                pass
            assert str(exchange.served_by) == "openai/gpt-5.1" and exchange.fallback
            exchanges.append(exchange)
    finally:
        for provider in real.values():
            await provider.aclose()
    vendors = [r["vendor"] for r in sim.requests()]
    assert vendors.count("anthropic") == 3 and vendors.count("openai") == 3  # each primary really was asked

    store = SqlStore(f"sqlite:///{tmp_path / 'outlast.db'}")
    store.migrate()
    try:
        records = [exchange_record(e) for e in exchanges]
        store.write_exchanges(records)
        # What the store holds: the primary waited out its deadline, so the exchange's first token
        # came DEADLINE after its start; the fallback's own attempt took only its own time.
        for record, own in zip(records, fallback_ttft, strict=True):
            primary, served = record["attempts"]
            assert (primary["provider"], primary["outcome"]) == ("anthropic", "timeout")
            assert primary["deadline_ms"] == primary["ended_ms"] - primary["started_ms"] == DEADLINE * 1000
            assert (served["provider"], served["outcome"]) == ("openai", "ok")
            assert served["first_event_ms"] - served["started_ms"] == round(own * 1000, 3)
            assert record["first_token_ms"] == round((DEADLINE + own) * 1000, 3)
        rows = {r["provider"]: r for r in scorecard(store.engine)}
    finally:
        store.close()
    openai, anthropic = rows["openai"], rows["anthropic"]
    assert round(openai["p50"], 3) == 60.0 and round(openai["p95"], 3) == 80.0  # not 360 and 380
    assert openai["requests"] == 3
    assert [(m["model"], m["answers"], round(m["p50"], 3)) for m in openai["models"]] == [("openai/gpt-5.1", 3, 60.0)]
    # The primary answered nothing: no latency to its name, its timeouts in the error mix.
    assert anthropic["p50"] is None and anthropic["models"] == []
    assert anthropic["error_mix"] == {"timeout": 3} and anthropic["saved"] == 3
    markdown = render_markdown(list(rows.values()), 30)
    assert "| openai/gpt-5.1 | 3 | 60 ms | 80 ms |" in markdown
