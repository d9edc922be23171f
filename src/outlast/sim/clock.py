"""The scenario clock: simulated seconds since the scenario's start, running ``time_scale`` times real time,
and movable by tests (``advance``/``set``) so detection can be tested without waiting."""

from __future__ import annotations

import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta


class ScenarioClock:
    def __init__(self, time_scale: float = 1.0, source: Callable[[], float] | None = None,
                 start: datetime | None = None) -> None:
        self.time_scale = time_scale
        self._source = source or time.monotonic
        self._fixed_start = start
        self.reset()

    def reset(self) -> None:
        self._t0 = self._source()
        self._offset = 0.0
        self.start = self._fixed_start or datetime.now(UTC).replace(microsecond=0)

    def now(self) -> float:
        """Simulated seconds since the start."""
        return self._offset + (self._source() - self._t0) * self.time_scale

    def advance(self, seconds: float) -> float:
        self._offset += seconds
        return self.now()

    def set(self, seconds: float) -> float:
        self._offset += seconds - self.now()
        return self.now()

    def wall(self, at: float | None = None) -> datetime:
        """The simulated wall time at ``at`` seconds (default: now)."""
        return self.start + timedelta(seconds=self.now() if at is None else at)
