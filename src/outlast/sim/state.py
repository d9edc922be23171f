"""The simulator's whole state: vendors, faults, scenario, clock, request log and status posts.

One instance per app; everything runs on one event loop, so no locks are needed.
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from outlast.sim.catalog import Vendor, default_vendors
from outlast.sim.clock import ScenarioClock
from outlast.sim.faults import Fault, FaultBook
from outlast.sim.scenario import Scenario, StatusPost, load_scenario, parse_post
from outlast.sim.status import StatusPage

LOG_SIZE = 10_000


class SimState:
    def __init__(self, scenario: str | Scenario | None = None, *, seed: int = 0, time_scale: float | None = None,
                 clock: Callable[[], float] | None = None) -> None:
        self.seed = seed
        self.scenario = load_scenario(scenario) if isinstance(scenario, str) else scenario
        self.vendors: dict[str, Vendor] = default_vendors()
        scale = time_scale
        if self.scenario is not None:
            self.vendors.update(self.scenario.vendors)
            scale = scale if scale is not None else self.scenario.time_scale
        self.clock = ScenarioClock(scale if scale is not None else 1.0, clock,
                                   self.scenario.start if self.scenario else None)
        self.faults = FaultBook(seed)
        self.log: deque[dict[str, Any]] = deque(maxlen=LOG_SIZE)
        self.manual_posts: list[StatusPost] = []
        self.pace: dict[str, float] = dict(self.scenario.pace) if self.scenario else {}
        self.counter = 0

    # ---------------------------------------------------------------- faults

    def scenario_faults(self) -> list[Fault]:
        if self.scenario is None or not self.scenario.phases:
            return []
        phase = self.scenario.phase_at(self.clock.now())
        return phase.faults if phase is not None else []

    def pick_fault(self, vendor: str, model: str, key: str | None) -> Fault | None:
        extra = self.scenario_faults()
        if not self.faults and not extra:
            return None
        return self.faults.pick(vendor, model, key, extra)

    def reset(self) -> None:
        self.faults.reset()
        self.log.clear()
        self.manual_posts.clear()
        self.clock.reset()
        if self.scenario is not None:
            for phase in self.scenario.phases:
                for fault in phase.faults:
                    fault.hits = fault.seen = 0
        self.pace = dict(self.scenario.pace) if self.scenario else {}

    # ---------------------------------------------------------------- log

    def record(self, entry: dict[str, Any]) -> dict[str, Any]:
        self.counter += 1
        entry["seq"] = self.counter
        entry["time"] = time.time()
        entry["clock"] = self.clock.now()
        self.log.append(entry)
        return entry

    def requests(self, vendor: str | None = None) -> list[dict[str, Any]]:
        return [e for e in self.log if vendor is None or e["vendor"] == vendor]

    # ---------------------------------------------------------------- status pages

    def posts(self) -> list[StatusPost]:
        now = self.clock.now()
        scripted = [p for p in self.scenario.posts if p.at <= now] if self.scenario else []
        return sorted([*scripted, *(p for p in self.manual_posts if p.at <= now)], key=lambda p: p.at)

    def post_status(self, document: Any) -> StatusPost:
        post = parse_post(document, self.clock.start, "status post", at=self.clock.now())
        if post.vendor not in self.vendors:
            raise ValueError(f"no vendor {post.vendor!r}")
        self.manual_posts.append(post)
        return post

    def status_page(self, vendor: str) -> StatusPage:
        return StatusPage(self.vendors[vendor], self.posts(), self.clock.wall, self.clock.start)

    def describe(self) -> dict[str, Any]:
        now = self.clock.now()
        phase = self.scenario.phase_at(now) if self.scenario else None
        return {
            "vendors": {name: {"format": v.format, "models": list(v.models), "requires_key": v.requires_key,
                               "prefix": f"/{name}"} for name, v in self.vendors.items()},
            "faults": [f.to_dict() for f in self.faults.active()],
            "scenario_faults": [f.to_dict() for f in self.scenario_faults()],
            "scenario": None if self.scenario is None else {
                "name": self.scenario.name, "description": self.scenario.description,
                "phase": phase.name if phase else None,
                "phases": [{"name": p.name, "at": p.at} for p in self.scenario.phases],
                "duration": self.scenario.duration},
            "clock": {"seconds": now, "time_scale": self.clock.time_scale,
                      "wall": self.clock.wall().astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
                      "start": self.clock.start.strftime("%Y-%m-%dT%H:%M:%SZ")},
            "pace": self.pace, "seed": self.seed, "requests": len(self.log),
            "now": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        }
