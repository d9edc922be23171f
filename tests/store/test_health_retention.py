"""The health history (uptime, incidents, reports) stays bounded: pruned by the store's retention
and at each day's rollover, on SQLite and PostgreSQL."""

from __future__ import annotations

from datetime import date, timedelta

import sqlalchemy as sa

from outlast.config import HealthConfig
from outlast.health.incidents import Incident
from outlast.health.persist import HealthStore, incidents, reports, updates, uptime
from outlast.health.reports import Report
from outlast.health.service import HealthService
from outlast.health.uptime import day_of
from outlast.store.recorder import apply_retention
from outlast.store.sql import SqlStore

DAY = 86400.0
NOW = 1_790_000_000.0  # a fixed clock: 2026-09-21


def _incident(ident: str, opened: float, resolved: float | None) -> Incident:
    incident = Incident(ident, "anthropic", f"errors at {ident}", "investigating", "overloaded", "major",
                        opened - 60, opened, components=["anthropic"])
    incident.update(opened, "investigating", "looking")
    if resolved is not None:
        incident.update(resolved, "resolved", "over")
        incident.resolved_at = resolved
    return incident


def _seed(health: HealthStore, now: float) -> None:
    today = day_of(now)
    health.save_uptime([("anthropic", today - timedelta(days=back), {"major_outage": 5.0})
                        for back in (0, 30, 90, 91, 400)])
    for ident, opened, resolved in (("new", now - 3 * DAY, now - 2 * DAY), ("old", now - 200 * DAY, now - 199 * DAY),
                                    ("still-open", now - 150 * DAY, None)):
        health.save_incident(_incident(ident, opened, resolved))
    for at in (now - DAY, now - 100 * DAY):
        health.add_report(Report(at, "anthropic", "down for me"))


def _contents(store: SqlStore) -> tuple[list[str], list[str], list[float], int]:
    with store.engine.connect() as conn:
        days = sorted(r.day for r in conn.execute(sa.select(uptime.c.day)))
        kept = sorted(r.id for r in conn.execute(sa.select(incidents.c.id)))
        seen = sorted(r.at for r in conn.execute(sa.select(reports.c.at)))
        orphans = conn.execute(sa.select(sa.func.count()).select_from(updates)
                               .where(updates.c.incident_id.not_in(sa.select(incidents.c.id)))).scalar_one()
    return days, kept, seen, orphans


def test_pruning_keeps_the_last_90_days_and_every_open_incident(store: SqlStore) -> None:
    health = HealthStore(store.engine)
    _seed(health, NOW)
    pruned = health.prune(NOW, 90)
    assert (pruned.uptime_days, pruned.incidents, pruned.reports) == (2, 1, 1)
    days, kept, seen, orphans = _contents(store)
    today = day_of(NOW)
    assert days == sorted((today - timedelta(days=back)).isoformat() for back in (0, 30, 90))
    assert kept == ["new", "still-open"]
    assert seen == [NOW - DAY] and orphans == 0
    assert [i.id for i in health.load_incidents()] == ["still-open", "new"]


def test_the_store_retention_prunes_the_health_history_too(store: SqlStore) -> None:
    health = HealthStore(store.engine)
    _seed(health, NOW)
    assert apply_retention(store, None, None, health_days=90, now=NOW) is None  # no limits on exchanges
    days, kept, seen, _ = _contents(store)
    assert len(days) == 3 and kept == ["new", "still-open"] and len(seen) == 1


async def test_the_daily_rollover_prunes_memory_and_store(store: SqlStore) -> None:
    clock = [NOW]
    health = HealthStore(store.engine)
    _seed(health, NOW)
    service = HealthService(HealthConfig(), ["anthropic"], {}, clock=lambda: clock[0], store=health)
    today = day_of(NOW)
    for back in (0, 90, 91):
        service.uptime.load("anthropic", today - timedelta(days=back), "major_outage", 5.0)
    await service.tick()
    assert sorted(d for _, d in service.uptime.minutes) == [today - timedelta(days=90), today]
    assert len(_contents(store)[0]) == 3
    # The same day again prunes nothing more; the next day, day 90 falls out of the window.
    await service.tick()
    assert len(service.uptime.minutes) == 2
    clock[0] = NOW + DAY
    await service.tick()
    assert [d for _, d in service.uptime.minutes] == [today]
    assert _contents(store)[0] == sorted((today - timedelta(days=back)).isoformat() for back in (0, 30))
    assert date.fromisoformat(_contents(store)[0][0]) >= day_of(clock[0]) - timedelta(days=90)
