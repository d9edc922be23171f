"""Active probes against ``outlast sim`` over loopback: what they send, what they feed, how they
test half-open breakers, and that nothing is sent when they are off."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import httpx
import sqlalchemy as sa
from click.testing import CliRunner

from outlast.app import build_gateway
from outlast.cli import main
from outlast.config import validate
from outlast.dialects.canonical import Message, Request, Text
from outlast.health.probes import Prober, ProbeTarget, probe_targets
from outlast.routing.plan import Target
from outlast.routing.router import Exchange
from outlast.serving import BackgroundServer
from outlast.store.sql import SqlStore
from tests.conftest import MASTER_KEY, gateway_document
from tests.health.conftest import Replay, epoch

OPUS = Target("anthropic", "claude-opus-4-6")


def max_tokens(entry: dict[str, Any]) -> Any:
    body = entry.get("body") or {}
    return body.get("max_tokens", body.get("max_completion_tokens",
                                           (body.get("generationConfig") or {}).get("maxOutputTokens")))


def wait_for(condition: Any, what: str, seconds: float = 60.0) -> None:
    """Poll until ``condition()`` holds; a generous deadline only so a broken build fails, not hangs."""
    deadline = time.monotonic() + seconds
    while not condition():
        assert time.monotonic() < deadline, f"gave up waiting for {what}"
        time.sleep(0.05)


def prober_for(replay: Replay, *targets: Target, interval: float = 2.0) -> Prober:
    return Prober(replay.providers, [ProbeTarget(t, interval, 5.0) for t in targets], health=replay.router.health,
                  signals=replay.signals, clock=replay.router_clock, wall=replay.wall, rand=lambda: 0.5)


async def step(replay: Replay, prober: Prober, seconds: float) -> list[Target]:
    replay.at(seconds)
    started = prober.step()
    await prober.settle()
    return started


# --------------------------------------------------------------------------- configuration


def test_probes_are_off_unless_a_provider_or_model_turns_them_on(sim: Any) -> None:
    document = gateway_document(sim.url)
    assert probe_targets(validate(document)) == []  # nothing by default, local included
    document["providers"]["anthropic"]["probe"] = True
    document["providers"]["anthropic"]["probe_interval"] = 300
    document["providers"]["anthropic"]["models"] = {"claude-opus-4-6": {"probe": False},
                                                    "claude-haiku-4-5-20251001": {"probe_interval": 900}}
    document["providers"]["local"]["models"] = {"qwen3:8b": {"probe": True}}
    document["health"] = {"probes": {"interval": 120, "timeout": 10}}
    specs = {str(p.target): (p.interval, p.timeout) for p in probe_targets(validate(document))}
    # Route candidates and listed models; patterns such as anthropic/{model} are not probed.
    assert specs == {"anthropic/claude-sonnet-4-6": (300, 10), "anthropic/claude-haiku-4-5-20251001": (900, 10),
                     "local/qwen3:8b": (120, 10)}


# --------------------------------------------------------------------------- the gateway's lifespan


def test_gateway_probes_in_the_background_with_one_token_and_records_nothing(sim: Any, tmp_path: Path) -> None:
    document = gateway_document(sim.url)
    document["providers"]["local"]["probe"] = True
    document["providers"]["local"]["probe_interval"] = 0.2
    # Probes on, but governance keeps even a probe (class public) away from this provider.
    document["providers"]["gemini"].update(probe=True, probe_interval=0.2, approved_for=["confidential"])
    config = validate(document)
    gateway = build_gateway(config, data_directory=tmp_path)
    assert gateway.health_service is not None and gateway.health_service.probes is not None
    with BackgroundServer(gateway) as server:
        wait_for(lambda: len(sim.requests("local")) >= 5, "five probes of local/qwen3:8b")
        answer = httpx.post(f"{server.url}/v1/chat/completions", headers={"authorization": f"Bearer {MASTER_KEY}"},
                            json={"model": "to-openai", "max_tokens": 8,
                                  "messages": [{"role": "user", "content": "[[reply:ok]]"}]}, timeout=30)
        assert answer.status_code == 200
        status = CliRunner(env={"COLUMNS": "200"}).invoke(main, ["status", "--url", server.url, "--key", MASTER_KEY])
        live = httpx.get(f"{server.url}/outlast/v1/health", headers={"authorization": f"Bearer {MASTER_KEY}"},
                         timeout=30).json()
    probes = sim.requests("local")
    assert all(max_tokens(p) == 1 and p["model"] == "qwen3:8b" and p["status"] == 200 for p in probes)
    assert all(p["body"]["messages"] == [{"role": "user", "content": "Hi"}] for p in probes)
    assert sim.requests("anthropic") == [] and sim.requests("gemini") == []  # off; not approved
    assert [max_tokens(r) for r in sim.requests("openai")] == [8]  # the one real request
    # Marked as probes in the signals; never requests, failovers or requests saved.
    assert live["live"]["requests_total"] == 1 and live["live"]["failovers"] == 0
    health = gateway.health_service
    health.detector.evaluate()  # one tick, now that the gateway has stopped
    local = {c["component"]: c for c in health.detector.snapshot(health.clock())}["local/qwen3:8b"]
    assert local["probes"] >= 1 and local["probe_fails"] == 0 and local["samples"] >= local["probes"]
    series = health.signals.series["local/qwen3:8b"]
    assert series.total_probes == len(probes) and series.total_saved == series.total_failed == 0
    assert status.exit_code == 0 and "probe local/qwen3:8b: " in status.output, status.output
    assert "probe gemini/gemini-2.5-flash: not probed" in status.output
    assert {p["target"] for p in live["probes"]} == {"local/qwen3:8b", "gemini/gemini-2.5-flash"}
    snapshot = {s["target"]: s for s in gateway.health_service.probes.snapshot()}
    assert snapshot["local/qwen3:8b"]["sent"] >= 5 and snapshot["local/qwen3:8b"]["output_tokens"] >= 1
    assert snapshot["gemini/gemini-2.5-flash"]["excluded"] and snapshot["gemini/gemini-2.5-flash"]["sent"] == 0
    assert not any(s["in_flight"] for s in snapshot.values())  # stopped cleanly with the gateway
    # Not a conversation, not anybody's request: only the real request is stored and audited.
    store = SqlStore(f"sqlite:///{tmp_path / 'outlast.db'}")
    try:
        assert len(store.list_conversations()) == 1
        with store.engine.connect() as conn:
            assert conn.execute(sa.text("SELECT COUNT(*) FROM gov_audit")).scalar() == 1
    finally:
        store.close()


def test_with_probes_off_nothing_is_sent(sim: Any, tmp_path: Path) -> None:
    document = gateway_document(sim.url)
    # Only the local model is probed; everything else keeps the default (off).
    document["providers"]["local"]["models"] = {"qwen3:8b": {"probe": True, "probe_interval": 0.2}}
    gateway = build_gateway(validate(document), data_directory=tmp_path)
    with BackgroundServer(gateway):
        wait_for(lambda: len(sim.requests("local")) >= 10, "ten probes of local/qwen3:8b")
    assert {r["vendor"] for r in sim.requests()} == {"local"}
    default = build_gateway(validate(gateway_document(sim.url)), data_directory=tmp_path / "default")
    assert default.health_service is not None and default.health_service.probes is None


# --------------------------------------------------------------------------- signals and incidents


async def test_a_sustained_fault_seen_only_by_probes_shows_as_signals_and_opens_an_incident(
        scenario_sim: Any) -> None:
    sim = scenario_sim("flapping")  # before its first burst; the fault below is the test's own
    replay = Replay(sim, epoch("2026-06-02T01:00:00Z"))
    prober = prober_for(replay, OPUS)
    try:
        for second in range(0, 181):
            if second == 30:
                sim.add_fault(vendor="anthropic", model="claude-opus-4-6", mode="status", status=529)
            await step(replay, prober, second)
            if second % 5 == 0:
                replay.detector.evaluate()
        sent = sim.requests("anthropic")
        assert sent and all(max_tokens(r) == 1 for r in sent)
        assert {r["status"] for r in sent if r["clock"] >= 30} == {529}
        series = replay.signals.series["anthropic/claude-opus-4-6"]
        assert series.total_probes == len(sent) and series.total_probe_fails >= 5
        assert replay.signals.requests == 0 and series.total_saved == 0  # no request, none saved
        incidents = replay.detector.incidents
        assert len(incidents) == 1 and incidents[0].cause == "overload", [i.title for i in incidents]
        assert "anthropic/claude-opus-4-6" in incidents[0].components
        assert incidents[0].opened_at - replay.start >= 30 + replay.detector.policy.sustain
        assert incidents[0].failed_over == 0  # probes never count as requests saved by failover
    finally:
        await prober.aclose()
        await replay.aclose()


# --------------------------------------------------------------------------- half-open breakers


async def test_a_probe_not_a_caller_closes_the_half_open_breaker(scenario_sim: Any) -> None:
    sim = scenario_sim("flapping")
    replay = Replay(sim, epoch("2026-06-02T01:00:00Z"))
    prober = prober_for(replay, OPUS, interval=10_000)  # only the half-open trials, in this test
    health = replay.router.health
    request = Request("claude-opus-4-6", (Message("user", (Text("[[reply:fine]]"),)),), max_tokens=16)

    async def ask(second: float) -> str:
        replay.at(second)
        exchange = Exchange("x", "openai", "claude-opus-4-6", replay.router_clock())
        async for _ in replay.router.stream(request, exchange):
            pass
        return str(exchange.served_by)

    try:
        sim.add_fault(vendor="anthropic", model="claude-opus-4-6", mode="status", status=529)
        served = [await ask(s) for s in range(5)]  # five failures in a row open the breaker
        assert served == ["openai/gpt-5.1"] * 5
        assert health.snapshot(5.0)["targets"]["anthropic/claude-opus-4-6"]["state"] == "open"
        callers_before = len(sim.requests("anthropic"))
        closed_at = None
        for second in range(5, 60):
            if second == 12:
                sim.clear_faults()  # the target recovers while its breaker is open
            await step(replay, prober, second)
            state = health.snapshot(float(second))["targets"]["anthropic/claude-opus-4-6"]["state"]
            if state == "closed":
                closed_at = second
                break
            assert await ask(second) == "openai/gpt-5.1"  # callers go to the fallback meanwhile
        assert closed_at is not None
        after_open = sim.requests("anthropic")[callers_before:]
        # Everything the failing target saw after its breaker opened was a probe (max_tokens 1):
        # one that failed (kept it open, for longer) and then one that succeeded and closed it.
        assert [max_tokens(r) for r in after_open] == [1] * len(after_open)
        assert [r["status"] for r in after_open] == [529] * (len(after_open) - 1) + [200]
        slot = prober.slots[OPUS]
        assert slot.trials == len(after_open) >= 2 and slot.sent == slot.trials
        # Closed by the probe: the next caller goes straight to the primary.
        assert await ask(closed_at + 0.5) == "anthropic/claude-opus-4-6"
    finally:
        await prober.aclose()
        await replay.aclose()


async def test_a_probe_the_provider_refuses_stops_and_leaves_the_trials_to_callers(scenario_sim: Any) -> None:
    sim = scenario_sim("flapping")
    replay = Replay(sim, epoch("2026-06-02T01:00:00Z"))
    prober = prober_for(replay, OPUS, interval=2.0)
    request = Request("claude-opus-4-6", (Message("user", (Text("[[reply:fine]]"),)),), max_tokens=16)

    async def ask(second: float) -> str:
        replay.at(second)
        exchange = Exchange("x", "openai", "claude-opus-4-6", replay.router_clock())
        async for _ in replay.router.stream(request, exchange):
            pass
        return str(exchange.served_by)

    try:
        # A model that refuses the probe's parameters: 400, a request the caller must fix.
        sim.add_fault(vendor="anthropic", model="claude-opus-4-6", mode="status", status=400, count=1)
        assert await step(replay, prober, 1) == [OPUS]
        assert prober.slots[OPUS].excluded and "refused" in prober.slots[OPUS].excluded
        assert [await step(replay, prober, s) for s in range(2, 10)] == [[]] * 8  # no more probes
        # Its breaker's half-open trial is a caller's request again, as without probes.
        sim.add_fault(vendor="anthropic", model="claude-opus-4-6", mode="status", status=529, count=5)
        assert [await ask(s) for s in range(10, 15)] == ["openai/gpt-5.1"] * 5  # opened
        assert await ask(15) == "openai/gpt-5.1"  # cooling down: skipped
        assert await ask(20) == "anthropic/claude-opus-4-6"  # the caller's trial closes it
        assert all(max_tokens(r) == 16 for r in sim.requests("anthropic")[1:])
    finally:
        await prober.aclose()
        await replay.aclose()
