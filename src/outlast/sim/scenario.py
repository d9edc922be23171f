"""Scenarios: YAML timelines of phases (which faults are on) and status-page posts, on the scenario clock.

The format is documented in ``docs/sim.md``.  Evaluation is a pure function of the clock: the current phase is
the last one whose ``at`` has passed, and the status pages show every post whose ``at`` has passed.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import UTC, datetime, time, timedelta
from importlib import resources
from pathlib import Path
from typing import Any

import yaml

from outlast.sim.catalog import Vendor, vendor_from_document
from outlast.sim.faults import Fault, parse_fault

COMPONENT_STATUSES = ("operational", "degraded_performance", "partial_outage", "major_outage", "under_maintenance")
INCIDENT_STATUSES = ("investigating", "identified", "monitoring", "resolved", "postmortem")
IMPACTS = ("none", "minor", "major", "critical")
DURATION = re.compile(r"^\+?(?:(\d+(?:\.\d+)?)h)?(?:(\d+(?:\.\d+)?)m)?(?:(\d+(?:\.\d+)?)s)?$")


@dataclass
class Phase:
    name: str
    at: float
    faults: list[Fault] = field(default_factory=list)


@dataclass
class StatusPost:
    at: float
    vendor: str
    incident: str
    name: str
    status: str
    body: str
    impact: str | None = None
    components: dict[str, str] = field(default_factory=dict)


@dataclass
class Scenario:
    name: str
    description: str = ""
    start: datetime | None = None
    time_scale: float = 1.0
    duration: float | None = None
    phases: list[Phase] = field(default_factory=list)
    posts: list[StatusPost] = field(default_factory=list)
    vendors: dict[str, Vendor] = field(default_factory=dict)
    pace: dict[str, float] = field(default_factory=dict)

    def phase_at(self, now: float) -> Phase | None:
        current = None
        for phase in self.phases:
            if phase.at <= now:
                current = phase
        return current


def parse_time(value: Any, start: datetime | None, what: str) -> float:
    """Seconds from the start: a number, a duration (``90s``, ``1h30m``, ``+35m``), ``HH:MM[:SS]`` on the start's
    date, or an ISO timestamp."""
    if isinstance(value, bool):
        raise ValueError(f"{what}: a time, not a boolean")
    if isinstance(value, int | float):
        return float(value)
    if isinstance(value, datetime):
        if start is None:
            raise ValueError(f"{what}: a wall time needs the scenario's start")
        return (value.replace(tzinfo=value.tzinfo or UTC) - start).total_seconds()
    text = str(value).strip()
    match = DURATION.match(text)
    if match and any(match.groups()):
        hours, minutes, seconds = (float(g or 0) for g in match.groups())
        return hours * 3600 + minutes * 60 + seconds
    if re.match(r"^\d{1,2}:\d{2}(:\d{2})?$", text):
        if start is None:
            raise ValueError(f"{what}: {text!r} is a time of day, which needs the scenario's start")
        clock = time.fromisoformat(text if text.count(":") == 2 else text + ":00")
        moment = datetime.combine(start.date(), clock, tzinfo=UTC)
        return (moment - start).total_seconds()
    try:
        moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise ValueError(f"{what}: cannot read {text!r} as a time (seconds, 35m, 06:39 or an ISO time)") from None
    if start is None:
        raise ValueError(f"{what}: a wall time needs the scenario's start")
    return (moment.replace(tzinfo=moment.tzinfo or UTC) - start).total_seconds()


def _start(value: Any) -> datetime | None:
    if value is None:
        return None
    if isinstance(value, datetime):
        return value.replace(tzinfo=value.tzinfo or UTC)
    return datetime.fromisoformat(str(value).replace("Z", "+00:00")).astimezone(UTC)


def parse_scenario(document: Any, default_name: str = "scenario") -> Scenario:
    if not isinstance(document, dict):
        raise ValueError("a scenario is a YAML mapping")
    known = {"name", "description", "start", "time_scale", "duration", "phases", "status", "vendors", "pace"}
    unknown = set(document) - known
    if unknown:
        raise ValueError(f"unknown scenario keys: {', '.join(sorted(unknown))}")
    start = _start(document.get("start"))
    scenario = Scenario(name=str(document.get("name", default_name)), description=str(document.get("description", "")),
                        start=start, time_scale=float(document.get("time_scale", 1.0)))
    if scenario.time_scale <= 0:
        raise ValueError("time_scale must be positive")
    if document.get("duration") is not None:
        scenario.duration = parse_time(document["duration"], None, "duration")
    for name, vendor in (document.get("vendors") or {}).items():
        scenario.vendors[str(name)] = vendor_from_document(str(name), vendor or {})
    pace = document.get("pace") or {}
    scenario.pace = {k: float(v) for k, v in pace.items() if k in ("ttft_ms", "tokens_per_s")}
    for i, entry in enumerate(document.get("phases") or []):
        if not isinstance(entry, dict):
            raise ValueError(f"phases[{i}] must be a mapping")
        name = str(entry.get("name", f"phase-{i}"))
        faults = [parse_fault(f, f"scenario:{name}:{j}", source="scenario")
                  for j, f in enumerate(entry.get("faults") or [])]
        for j, fault in enumerate(faults):
            fault.id = f"scenario:{name}:{j}"
        scenario.phases.append(Phase(name, parse_time(entry.get("at", 0), start, f"phases[{i}].at"), faults))
    scenario.phases.sort(key=lambda p: p.at)
    for i, entry in enumerate(document.get("status") or []):
        scenario.posts.append(parse_post(entry, start, f"status[{i}]"))
    scenario.posts.sort(key=lambda p: p.at)
    return scenario


def parse_post(entry: Any, start: datetime | None, what: str, at: float | None = None) -> StatusPost:
    if not isinstance(entry, dict):
        raise ValueError(f"{what} must be a mapping")
    status = str(entry.get("status", "investigating"))
    if status not in INCIDENT_STATUSES:
        raise ValueError(f"{what}.status must be one of {', '.join(INCIDENT_STATUSES)}")
    impact = entry.get("impact")
    if impact is not None and impact not in IMPACTS:
        raise ValueError(f"{what}.impact must be one of {', '.join(IMPACTS)}")
    components = {str(k): str(v) for k, v in (entry.get("components") or {}).items()}
    for value in components.values():
        if value not in COMPONENT_STATUSES:
            raise ValueError(f"{what}.components: {value!r} is not one of {', '.join(COMPONENT_STATUSES)}")
    if "vendor" not in entry:
        raise ValueError(f"{what} needs a vendor")
    when = at if at is not None else parse_time(entry.get("at", 0), start, f"{what}.at")
    return StatusPost(at=when, vendor=str(entry["vendor"]), incident=str(entry.get("incident", "incident")),
                      name=str(entry.get("name", "Elevated errors")), status=status,
                      body=str(entry.get("body", "")), impact=impact, components=components)


def builtin_names() -> list[str]:
    folder = resources.files("outlast.sim") / "scenarios"
    return sorted(p.name[:-5] for p in folder.iterdir() if p.name.endswith(".yaml"))


def load_scenario(name_or_path: str) -> Scenario:
    """A shipped scenario by name (``june-2-2026``) or a YAML file by path."""
    path = Path(name_or_path)
    if path.suffix in (".yaml", ".yml") and path.exists():
        text = path.read_text(encoding="utf-8")
        default = path.stem
    else:
        resource = resources.files("outlast.sim") / "scenarios" / f"{name_or_path}.yaml"
        if not resource.is_file():
            raise ValueError(f"no scenario {name_or_path!r}: not a file, and not one of {', '.join(builtin_names())}")
        text = resource.read_text(encoding="utf-8")
        default = name_or_path
    return parse_scenario(yaml.safe_load(text), default)


def offset_label(scenario_start: datetime, seconds: float) -> str:
    return (scenario_start + timedelta(seconds=seconds)).strftime("%Y-%m-%dT%H:%M:%SZ")
