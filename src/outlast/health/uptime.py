"""Uptime per component per day, from the minutes it spent in each status.

The detector adds every tick's interval to the component's status at that tick; a day's uptime
is Statuspage's: a minute of major outage counts fully as downtime, a minute of partial outage
as 30% of one (degraded performance does not count). 90 days are kept.

Operational minutes are kept too (in memory; the store keeps a row for each day watched), so
that the days before a component was first watched show as "no data" rather than as 100%: the
uptime over a window counts from the first day with data.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

COUNTED = ("degraded_performance", "partial_outage", "major_outage")
WATCHED = ("operational", *COUNTED)
NO_DATA = "no_data"
PARTIAL_WEIGHT = 0.3
DAY = 86400.0


def day_of(at: float) -> date:
    return datetime.fromtimestamp(at, UTC).date()


class Uptime:
    """``minutes[(component, day)] = {status: minutes}``; ``dirty`` is what the store has not seen."""

    def __init__(self, days: int = 90) -> None:
        self.days = days
        self.minutes: dict[tuple[str, date], dict[str, float]] = {}
        self.dirty: set[tuple[str, date]] = set()
        self._first: dict[str, date] = {}  # each component's earliest day in ``minutes``

    def add(self, component: str, status: str, start: float, end: float) -> None:
        if status not in WATCHED or end <= start:
            return
        while start < end:
            day = day_of(start)
            midnight = datetime(day.year, day.month, day.day, tzinfo=UTC).timestamp() + DAY
            stop = min(end, midnight)
            key = (component, day)
            entry = self._entry(key)
            entry[status] = entry.get(status, 0.0) + (stop - start) / 60.0
            self.dirty.add(key)
            start = stop

    def load(self, component: str, day: date, status: str, minutes: float) -> None:
        self._entry((component, day))[status] = minutes

    def _entry(self, key: tuple[str, date]) -> dict[str, float]:
        entry = self.minutes.get(key)
        if entry is None:
            entry = self.minutes[key] = {}
            component, day = key
            first = self._first.get(component)
            if first is None or day < first:
                self._first[component] = day
        return entry

    def take_dirty(self) -> list[tuple[str, date, dict[str, float]]]:
        out = [(c, d, dict(self.minutes[(c, d)])) for c, d in self.dirty]
        self.dirty.clear()
        return out

    def day(self, component: str, day: date) -> dict[str, float]:
        return self.minutes.get((component, day), {})

    def percent(self, component: str, day: date) -> float:
        minutes = self.day(component, day)
        down = minutes.get("major_outage", 0.0) + PARTIAL_WEIGHT * minutes.get("partial_outage", 0.0)
        return max(0.0, 100.0 * (1 - down / 1440.0))

    def first_day(self, component: str) -> date | None:
        """The first day ``component`` was watched (of those kept), or ``None``."""
        return self._first.get(component)

    def history(self, component: str, today: date, days: int | None = None) -> list[dict[str, object]]:
        """Oldest first, one entry per day: date, uptime percent, minutes by status, worst status.
        A day before the component was first watched has ``uptime`` None and ``worst`` "no_data"."""
        days = days or self.days
        first = self.first_day(component)
        out: list[dict[str, object]] = []
        for back in range(days - 1, -1, -1):
            day = today - timedelta(days=back)
            if first is None or day < first:
                out.append({"date": day.isoformat(), "uptime": None, "minutes": {}, "worst": NO_DATA})
                continue
            minutes = self.day(component, day)
            worst = "operational"
            for status in COUNTED:
                if minutes.get(status, 0.0) >= 1.0:
                    worst = status
            out.append({"date": day.isoformat(), "uptime": round(self.percent(component, day), 3),
                        "minutes": {k: round(v, 1) for k, v in minutes.items()}, "worst": worst})
        return out

    def percent_over(self, component: str, today: date, days: int | None = None) -> float | None:
        """Uptime over the last ``days`` days, counted from the first day with data (``None``: none).
        A day within that span that has no minutes at all (the gateway was stopped) counts as up."""
        days = days or self.days
        first = self.first_day(component)
        if first is None or first > today:
            return None
        span = min(days, (today - first).days + 1)
        return sum(self.percent(component, today - timedelta(days=b)) for b in range(span)) / span

    def prune(self, today: date) -> int:
        """Forget days before the last ``days`` (the health service does at each day's rollover,
        and ``HealthStore.prune`` in the database); the number of (component, day) entries removed."""
        oldest = today - timedelta(days=self.days)
        old = [k for k in self.minutes if k[1] < oldest]
        for key in old:
            del self.minutes[key]
            self.dirty.discard(key)
        for component in {c for c, _ in old}:
            kept = [d for c, d in self.minutes if c == component]
            if kept:
                self._first[component] = min(kept)
            else:
                del self._first[component]
        return len(old)
