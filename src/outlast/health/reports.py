"""People's problem reports ("something's wrong with X"), counted against their own baseline the
way Downdetector counts them: a handful of reports means little for a component that gets a
handful every hour, and a lot for one that never gets any."""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Report:
    at: float
    component: str
    note: str = ""
    reporter: str | None = None


class Reports:
    """Reports in memory for ``history`` seconds (the baseline's span); the store keeps them all."""

    def __init__(self, clock: Callable[[], float] = time.time, *, window: float = 900.0,
                 history: float = 7 * 86400.0, maximum: int = 100_000) -> None:
        self.clock = clock
        self.window = window
        self.history = history
        self._reports: deque[Report] = deque(maxlen=maximum)
        self.first: float | None = None

    def add(self, component: str, note: str = "", reporter: str | None = None, at: float | None = None) -> Report:
        report = Report(self.clock() if at is None else at, component, note[:2000], reporter)
        self._reports.append(report)
        if self.first is None:
            self.first = report.at
        return report

    def _trim(self, now: float) -> None:
        while self._reports and self._reports[0].at < now - self.history:
            self._reports.popleft()

    def recent(self, component: str, now: float) -> list[Report]:
        return [r for r in self._reports if r.component == component and r.at > now - self.window]

    def count(self, component: str, now: float) -> int:
        return sum(1 for r in self._reports if r.component == component and r.at > now - self.window)

    def baseline(self, component: str, now: float) -> float:
        """Reports per window usually: the count over the history before the current window,
        divided by how many windows that history spans (at least one)."""
        self._trim(now)
        start = now - self.window
        older = sum(1 for r in self._reports if r.component == component and r.at <= start)
        span = max(self.window, start - max(self.first or start, now - self.history))
        return older / (span / self.window)

    def components(self) -> set[str]:
        return {r.component for r in self._reports}

    def latest(self, limit: int = 50) -> list[Report]:
        return list(self._reports)[-limit:][::-1]
