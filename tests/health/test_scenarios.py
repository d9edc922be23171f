"""Detection replayed against the simulator's scenarios on a controllable clock: the June 2026
outage is found within 30 simulated seconds and goes through its lifecycle; flapping and rate
limiting do not open spurious incidents."""

from __future__ import annotations

from datetime import date
from typing import Any

from tests.health.conftest import Replay, epoch

JUNE = epoch("2026-06-02T05:50:00Z").timestamp()
ONSET = epoch("2026-06-02T06:04:00Z").timestamp()
VENDOR_ACK = epoch("2026-06-02T06:39:00Z").timestamp()
ERRORS_STOP = epoch("2026-06-02T12:15:00Z").timestamp()
MITIGATING = epoch("2026-06-02T11:20:00Z").timestamp()
ROUTES = ("claude-opus-4-6", "to-anthropic")


def statuses(incident: Any) -> list[str]:
    out: list[str] = []
    for update in incident.updates:
        if not out or out[-1] != update.status:
            out.append(update.status)
    return out


async def replay_june(sim: Any) -> Replay:
    replay = Replay(sim, epoch("2026-06-02T05:50:00Z"))
    # Dense traffic around the onset, a burst every ten minutes through the long middle, dense
    # again from before the mitigation until after the quiet period.
    await replay.run(600, 1200, 2, ROUTES)
    for burst in range(1200, 19500, 600):
        replay.tick(burst)
        await replay.feeds.poll()
        await replay.run(burst, burst + 30, 2, ROUTES)
    await replay.run(19500, 24900, 4, ROUTES)
    return replay


async def test_june_2_2026_opens_within_30s_as_overload_and_resolves_in_order(scenario_sim: Any) -> None:
    replay = await replay_june(scenario_sim("june-2-2026"))
    try:
        detector = replay.detector
        assert len(detector.incidents) == 1, [i.title for i in detector.incidents]
        incident = detector.incidents[0]
        assert incident.provider == "anthropic"
        assert abs(incident.started_at - ONSET) <= 5  # onset estimated to the bucket
        assert incident.opened_at - ONSET <= 30  # within 30 simulated seconds
        assert incident.cause == "overload"
        assert "anthropic/claude-opus-4-6" in incident.components
        assert statuses(incident) == ["investigating", "identified", "monitoring", "resolved"]
        assert incident.identified_at is not None and incident.identified_at - incident.opened_at <= 120
        assert incident.monitoring_at is not None and ERRORS_STOP <= incident.monitoring_at <= ERRORS_STOP + 600
        assert incident.resolved_at is not None
        assert incident.resolved_at - incident.monitoring_at >= detector.policy.quiet_period
        # Every update says what the evidence is.
        assert all("%" in u.body or "status page" in u.body or "Errors stopped" in u.body or "Resolved" in u.body
                   for u in incident.updates)
        # The vendor acknowledged at 06:39: 35 minutes after onset.
        assert incident.vendor_ack_at == VENDOR_ACK
        assert incident.ack_lag is not None and abs(incident.ack_lag - 35 * 60) <= 5
        assert incident.vendor_incident is not None and incident.vendor_incident["name"] == \
            "Elevated errors on Claude Opus 4.6"
        # Matched by the component it names (the API), said once in the timeline, kept as evidence.
        (post,) = incident.evidence["vendor_posts"].values()
        assert post["acknowledgement"] is True and post["name"] == "Elevated errors on Claude Opus 4.6"
        assert sum("status page acknowledged it" in u.body for u in incident.updates) == 1
        assert incident.failed_over > 100 and incident.requests_affected > 100
        # Uptime: opus was in outage from 06:04 until the mitigation at 11:20 (316 min), and not
        # operational at most until the errors stopped at 12:15 (371 min).
        day = detector.uptime.day("anthropic/claude-opus-4-6", date(2026, 6, 2))
        outage = day.get("partial_outage", 0) + day.get("major_outage", 0)
        assert (MITIGATING - ONSET) / 60 - 5 <= outage <= (MITIGATING - ONSET) / 60 + 30
        assert outage + day.get("degraded_performance", 0) <= (ERRORS_STOP - ONSET) / 60 + 2
        assert 70 < detector.uptime.percent("anthropic/claude-opus-4-6", date(2026, 6, 2)) < 95
        assert detector.uptime.percent("anthropic/claude-opus-4-6", date(2026, 6, 1)) == 100.0
        gpt = detector.uptime.day("openai/gpt-5.1", date(2026, 6, 2))
        assert set(gpt) == {"operational"} and gpt["operational"] > 60  # watched all along, never down
        # The days before the replay began were not watched: no data, and not counted as up.
        history = detector.uptime.history("anthropic/claude-opus-4-6", date(2026, 6, 2), days=3)
        assert [d["worst"] for d in history] == ["no_data", "no_data", "partial_outage"] or \
            [d["worst"] for d in history] == ["no_data", "no_data", "major_outage"]
        assert history[0]["uptime"] is None
        percent = detector.uptime.percent_over("anthropic/claude-opus-4-6", date(2026, 6, 2), days=90)
        assert percent == detector.uptime.percent("anthropic/claude-opus-4-6", date(2026, 6, 2))
    finally:
        await replay.aclose()


async def test_flapping_opens_no_incident_while_breakers_absorb_the_bursts(scenario_sim: Any) -> None:
    sim = scenario_sim("flapping")
    replay = Replay(sim, epoch("2026-06-02T08:00:00Z"))
    try:
        await replay.run(0, 12 * 60, 2, ROUTES, poll=60)  # the vendor's page read, as the service does
        assert replay.feeds.states["anthropic"].state == "ok"
        failed = [r for r in sim.requests("anthropic") if r["status"] in (500, 529)]
        assert len(failed) >= 6 * 3  # the scenario really failed, in each of its six bursts
        # Six 10-second bursts: shorter than the minimum sustained duration, so no incident...
        incidents = replay.detector.incidents
        assert incidents == [], [(i.title, i.updates[0].body) for i in incidents]
        assert all(c.reading.departure is None for c in replay.detector.components.values())
        # ...while the breakers absorbed them: opus's callers were served by the fallback meanwhile.
        assert "openai/gpt-5.1" in replay.served
        assert replay.served[-2:] == ["anthropic/claude-opus-4-6", "anthropic/claude-sonnet-4-6"]
    finally:
        await replay.aclose()


async def test_errors_sustained_past_the_minimum_duration_do_open_an_incident(scenario_sim: Any) -> None:
    """The other side of the flapping rule: the same failures for 40 s instead of 10 do open one."""
    sim = scenario_sim("flapping")
    replay = Replay(sim, epoch("2026-06-02T08:00:00Z"))
    try:
        await replay.run(0, 60, 2, ROUTES)
        sim.add_fault(vendor="anthropic", model="*", mode="status", status=529)
        await replay.run(60, 100, 2, ROUTES)
        sim.clear_faults()
        await replay.run(100, 120, 2, ROUTES)
        incidents = replay.detector.incidents
        assert len(incidents) == 1 and incidents[0].cause == "overload", [i.title for i in incidents]
        assert 60 + replay.detector.policy.sustain <= incidents[0].opened_at - replay.start <= 100
    finally:
        await replay.aclose()


async def test_rate_limiting_for_five_minutes_opens_no_incident(scenario_sim: Any) -> None:
    sim = scenario_sim("rate-limited")
    replay = Replay(sim, epoch("2026-06-02T08:00:00Z"))
    try:
        await replay.run(0, 10 * 60, 2, ("gpt-5.1", "to-anthropic", "to-gemini"), poll=60)
        assert replay.feeds.states["anthropic"].state == "ok" and replay.detector.vendor_open == {}
        assert any(r["status"] == 429 for r in sim.requests())  # the scenario really throttled
        limited = [c for c in replay.detector.components.values() if c.limited_since is not None or
                   c.last_departure is not None]
        assert replay.detector.incidents == [], [(i.title, i.updates[0].body) for i in replay.detector.incidents]
        assert all(c.status == "operational" for c in replay.detector.components.values()), limited
    finally:
        await replay.aclose()
