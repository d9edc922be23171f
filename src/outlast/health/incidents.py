"""Incidents as outlast keeps them: the lifecycle, the cause classes, the timestamped updates.

Lifecycle: ``investigating`` (something departed from its baseline) → ``identified`` (the cause
class has stayed the same for a while) → ``monitoring`` (errors stopped) → ``resolved`` (a quiet
period passed without them). Every transition is an :class:`Update` saying what the evidence is.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from typing import Any

from outlast.health.signals import CUT, KIND_INDEX
from outlast.providers.errors import FailureKind

STATUSES = ("investigating", "identified", "monitoring", "resolved")
IMPACTS = ("none", "minor", "major", "critical")

# Cause classes: the failure taxonomy, grouped the way people talk about outages.
CAUSES: dict[str, str] = {
    "overload": "overloaded (529/503)",
    "server_error": "server errors (5xx, unreadable answers)",
    "rate_limiting": "rate limiting (429)",
    "authentication": "authentication failures (401/403)",
    "timeout": "timeouts and latency degradation",
    "network": "network failures (connections refused or reset)",
    "model_degradation": "model degradation (blank or cut-off answers)",
    "data_access": "data access (not found)",
    "unknown": "not known yet (reported by people)",
}
CAUSE_OF_INDEX: dict[int, str] = {
    KIND_INDEX[FailureKind.OVERLOADED]: "overload",
    KIND_INDEX[FailureKind.SERVER_ERROR]: "server_error",
    KIND_INDEX[FailureKind.MALFORMED]: "server_error",
    KIND_INDEX[FailureKind.RATE_LIMITED]: "rate_limiting",
    KIND_INDEX[FailureKind.AUTH_FAILED]: "authentication",
    KIND_INDEX[FailureKind.TIMEOUT]: "timeout",
    KIND_INDEX[FailureKind.CONNECTION_LOST]: "network",
    KIND_INDEX[FailureKind.EMPTY_RESPONSE]: "model_degradation",
    CUT: "model_degradation",
    KIND_INDEX[FailureKind.NOT_FOUND]: "data_access",
}


def stamp(at: float | None) -> str | None:
    """Statuspage's time format: ISO 8601 with milliseconds and ``Z``."""
    if at is None:
        return None
    return datetime.fromtimestamp(at, UTC).strftime("%Y-%m-%dT%H:%M:%S.") + f"{int(at * 1000) % 1000:03d}Z"


def clock_text(at: float | None) -> str:
    return "-" if at is None else datetime.fromtimestamp(at, UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


def duration_text(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    whole = round(seconds)
    hours, rest = divmod(abs(whole), 3600)
    minutes, secs = divmod(rest, 60)
    sign = "-" if whole < 0 else ""
    if hours:
        return f"{sign}{hours}h {minutes:02d}m"
    if minutes:
        return f"{sign}{minutes}m {secs:02d}s"
    return f"{sign}{secs}s"


def relative_text(seconds: float, what: str) -> str:
    """``35m 00s after onset``; a negative span reads ``2m 00s before onset``."""
    if seconds < 0:
        return f"{duration_text(-seconds)} before {what}"
    return f"{duration_text(seconds)} after {what}"


@dataclass(slots=True)
class Update:
    at: float
    status: str
    body: str  # what the evidence is, for a person


@dataclass(slots=True)
class Incident:
    id: str
    provider: str
    title: str
    status: str
    cause: str
    impact: str
    started_at: float  # when the departure from baseline began (outlast's estimate of onset)
    opened_at: float
    components: list[str] = field(default_factory=list)
    updates: list[Update] = field(default_factory=list)
    identified_at: float | None = None
    monitoring_at: float | None = None
    resolved_at: float | None = None
    vendor_ack_at: float | None = None
    vendor_incident: dict[str, Any] | None = None  # id, name, url, status as the vendor's feed said
    evidence: dict[str, Any] = field(default_factory=dict)  # peak error rate, failure mix, reports
    requests_affected: int = 0  # failed attempts on the affected components
    failed_over: int = 0  # requests that wanted this provider first and were served by another
    failed: int = 0  # requests that wanted it first and got an error

    @property
    def resolved(self) -> bool:
        return self.status == "resolved"

    @property
    def detection_lag(self) -> float:
        return self.opened_at - self.started_at

    @property
    def ack_lag(self) -> float | None:
        return None if self.vendor_ack_at is None else self.vendor_ack_at - self.started_at

    @property
    def duration(self) -> float | None:
        return None if self.resolved_at is None else self.resolved_at - self.started_at

    def update(self, at: float, status: str, body: str) -> Update:
        """A timeline entry. The status times mark transitions: a note added while monitoring (a
        vendor's post, say) does not restart the quiet period."""
        entering = status != self.status
        self.status = status
        if status == "identified" and self.identified_at is None:
            self.identified_at = at
        elif status == "monitoring" and (entering or self.monitoring_at is None):
            self.monitoring_at = at
        elif status == "resolved":
            self.resolved_at = at
        entry = Update(at, status, body)
        self.updates.append(entry)
        return entry

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["cause_text"] = CAUSES.get(self.cause, self.cause)
        data["detection_lag"] = self.detection_lag
        data["ack_lag"] = self.ack_lag
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Incident:
        fields = {k: v for k, v in data.items() if k in cls.__dataclass_fields__}
        fields["updates"] = [Update(**u) if isinstance(u, dict) else u for u in data.get("updates", [])]
        fields["components"] = list(data.get("components", []))
        return cls(**fields)
