"""Uptime counts from the first day a component was watched: the days before are "no data", not 100 %,
in memory, on the status page's bars and in the vendor scorecard, and after a restart from the store."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from pathlib import Path

from outlast.health.persist import HealthStore
from outlast.health.scorecard import cells, scorecard
from outlast.health.uptime import Uptime
from outlast.store.sql import SqlStore

TODAY = date(2026, 6, 10)


def at(day: date, hour: float) -> float:
    return datetime(day.year, day.month, day.day, tzinfo=UTC).timestamp() + hour * 3600


def test_days_before_the_first_watched_day_are_no_data_and_not_counted() -> None:
    uptime = Uptime(days=30)
    first = TODAY - timedelta(days=2)
    uptime.add("anthropic", "operational", at(first, 12), at(first, 24))  # started at noon
    uptime.add("anthropic", "operational", at(first, 24), at(TODAY, 0))
    uptime.add("anthropic", "major_outage", at(TODAY, 0), at(TODAY, 2.4))  # 144 minutes: 90 % of a day
    uptime.add("anthropic", "operational", at(TODAY, 2.4), at(TODAY, 9))
    history = uptime.history("anthropic", TODAY)
    assert len(history) == 30
    assert [d["worst"] for d in history[:27]] == ["no_data"] * 27
    assert all(d["uptime"] is None for d in history[:27])
    assert [d["worst"] for d in history[27:]] == ["operational", "operational", "major_outage"]
    assert [d["uptime"] for d in history[27:]] == [100.0, 100.0, 90.0]
    assert uptime.first_day("anthropic") == first
    # Three watched days, not thirty: (100 + 100 + 90) / 3, where counting the unwatched ones as up
    # would have said 99.67 %.
    assert uptime.percent_over("anthropic", TODAY) == (100 + 100 + 90) / 3
    assert uptime.percent_over("openai", TODAY) is None  # never watched
    assert uptime.history("openai", TODAY, days=3)[0] == {"date": "2026-06-08", "uptime": None, "minutes": {},
                                                          "worst": "no_data"}


def test_a_day_the_gateway_was_stopped_within_the_watched_span_counts_as_up() -> None:
    uptime = Uptime(days=10)
    uptime.add("anthropic", "partial_outage", at(TODAY - timedelta(days=4), 0), at(TODAY - timedelta(days=4), 10))
    uptime.add("anthropic", "operational", at(TODAY, 0), at(TODAY, 1))
    days = uptime.history("anthropic", TODAY)
    assert [d["worst"] for d in days] == ["no_data"] * 5 + ["partial_outage", "operational", "operational",
                                                              "operational", "operational"]
    assert uptime.percent_over("anthropic", TODAY) == (100 - 30 * 600 / 1440 + 400) / 5


def test_the_first_watched_day_follows_loads_and_pruning() -> None:
    uptime = Uptime(days=10)
    uptime.add("anthropic", "operational", at(TODAY - timedelta(days=3), 0), at(TODAY - timedelta(days=3), 1))
    uptime.load("anthropic", TODAY - timedelta(days=20), "operational", 1440.0)  # an older day, from the store
    uptime.load("openai", TODAY - timedelta(days=15), "major_outage", 5.0)
    assert uptime.first_day("anthropic") == TODAY - timedelta(days=20)
    assert uptime.prune(TODAY) == 2  # both days older than ten
    assert uptime.first_day("anthropic") == TODAY - timedelta(days=3)  # the earliest day left
    assert uptime.first_day("openai") is None  # nothing left of it
    assert uptime.percent_over("openai", TODAY) is None


def test_watched_days_survive_a_restart_through_the_store_and_the_scorecard_counts_from_them(tmp_path: Path) -> None:
    store = SqlStore(f"sqlite:///{tmp_path / 'o.db'}")
    store.migrate()
    try:
        health = HealthStore(store.engine)
        uptime = Uptime(days=90)
        first = TODAY - timedelta(days=1)
        uptime.add("anthropic", "operational", at(first, 6), at(TODAY, 0))
        uptime.add("anthropic", "major_outage", at(TODAY, 0), at(TODAY, 1.2))  # 72 minutes: 95 %
        health.save_uptime(uptime.take_dirty())
        restarted = Uptime(days=90)
        for component, day, minutes in health.load_uptime(TODAY - timedelta(days=90)):
            for status, value in minutes.items():
                restarted.load(component, day, status, value)
        assert restarted.first_day("anthropic") == first  # a fully operational day still has its row
        assert restarted.percent_over("anthropic", TODAY) == (100 + 95) / 2
        (row,) = scorecard(store.engine, days=30, now=at(TODAY, 12))
        assert row["provider"] == "anthropic" and row["watched_days"] == 2 and row["window_days"] == 31
        assert row["uptime"] == 100 * (1 - 72 / (1440 * 2))
        assert cells(row)[1] == f"{row['uptime']:.3f}% (2 days)"
    finally:
        store.close()
