"""Fault injection: what can go wrong, for which vendor, model and key, how often, and how many times.

A fault matches a request by vendor (or ``*``), model (a glob, ``*`` for all) and optionally the API key the
request presented.  ``rate`` is the share of matching requests it hits, decided by hashing the seed, the fault
and a running count, so a run is repeatable.  ``count`` limits it to the next N hits, so a fault can be
transient.  Faults added through the control API come first; a scenario's faults for the current phase follow.

A ``slow`` fault's ``ttft_ms`` and ``gap_ms`` are either constants or a :class:`Latency` distribution
(``{"p50": 200, "p99": 2000}``), a lognormal drawn from a generator seeded by the seed, the fault and its hit
count, so a rerun with the same seed waits exactly as long.
"""

from __future__ import annotations

import hashlib
import math
import random
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from fnmatch import fnmatchcase
from typing import Any

MODES = ("status", "hang", "reset", "cut", "stall", "no_terminator", "bad_event", "malformed", "blank", "slow",
         "auth", "filtered")
# Modes that shape a successful answer rather than replace it.
DELIVERY_MODES = ("cut", "stall", "no_terminator", "bad_event", "blank", "slow", "filtered")
# ``code`` values that make a status fault the vendor's own refusal, a 400 unless a status is given.
REFUSAL_CODES = ("content_policy", "context_length_exceeded")
_Z99 = 2.3263478740408408  # the standard normal's 99th percentile


@dataclass(frozen=True)
class Latency:
    """A lognormal delay in milliseconds, fitted to its median and 99th percentile."""

    p50: float
    p99: float

    @property
    def sigma(self) -> float:
        return math.log(self.p99 / self.p50) / _Z99

    def draw(self, rng: random.Random) -> float:
        return rng.lognormvariate(math.log(self.p50), self.sigma)


def parse_latency(name: str, value: Any) -> float | Latency:
    """A constant (milliseconds, at least 0) or ``{"p50": ..., "p99": ...}`` with 0 < p50 <= p99."""
    if isinstance(value, dict):
        if set(value) != {"p50", "p99"}:
            raise ValueError(f"fault field {name!r} is a number or {{\"p50\": ms, \"p99\": ms}}")
        p50, p99 = value["p50"], value["p99"]
        for number in (p50, p99):
            if isinstance(number, bool) or not isinstance(number, int | float):
                raise ValueError(f"fault field {name!r}: p50 and p99 must be numbers")
        if not 0 < p50 <= p99:
            raise ValueError(f"fault field {name!r}: p50 must be above 0 and at most p99")
        return Latency(float(p50), float(p99))
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ValueError(f"fault field {name!r} must be a number or {{\"p50\": ms, \"p99\": ms}}")
    if value < 0:
        raise ValueError(f"fault field {name!r} must not be negative")
    return float(value)


@dataclass
class Fault:
    id: str
    vendor: str = "*"
    model: str = "*"
    mode: str = "status"
    rate: float = 1.0
    count: int | None = None
    key: str | None = None
    status: int = 500
    retry_after: float | None = None
    code: str | None = None
    message: str | None = None
    after_events: int = 3
    at_event: int = 2
    seconds: float = 30.0
    ttft_ms: float | Latency = 0.0
    gap_ms: float | Latency = 0.0
    source: str = "api"
    hits: int = 0
    seen: int = 0

    def to_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out["remaining"] = None if self.count is None else max(0, self.count - self.hits)
        return out

    def matches(self, vendor: str, model: str, key: str | None) -> bool:
        if self.vendor not in ("*", vendor):
            return False
        if self.model != "*" and self.model != model and not fnmatchcase(model, self.model):
            return False
        return self.key is None or self.key == key

    @property
    def exhausted(self) -> bool:
        return self.count is not None and self.hits >= self.count


_FIELDS = {"vendor": str, "model": str, "mode": str, "key": str, "code": str, "message": str}
_NUMBERS = {"rate": float, "retry_after": float, "seconds": float, "status": int, "count": int,
            "after_events": int, "at_event": int}
_LATENCIES = ("ttft_ms", "gap_ms")


def parse_fault(document: Any, fault_id: str, source: str = "api") -> Fault:
    """A fault from its JSON/YAML form; ValueError names the field that is wrong."""
    if not isinstance(document, dict):
        raise ValueError("a fault is a JSON object")
    values: dict[str, Any] = {}
    for name, value in document.items():
        if name in ("id", "source", "hits", "seen", "remaining"):
            continue
        if name in _FIELDS:
            if not isinstance(value, str) and value is not None:
                raise ValueError(f"fault field {name!r} must be a string")
            values[name] = value
        elif name in _LATENCIES:
            values[name] = parse_latency(name, value)
        elif name in _NUMBERS:
            if value is None and name in ("count", "retry_after"):
                values[name] = None
                continue
            if isinstance(value, bool) or not isinstance(value, int | float):
                raise ValueError(f"fault field {name!r} must be a number")
            values[name] = _NUMBERS[name](value)
        else:
            raise ValueError(f"unknown fault field {name!r}")
    mode = values.get("mode", "status")
    if mode not in MODES:
        raise ValueError(f"fault mode must be one of {', '.join(MODES)}, not {mode!r}")
    if mode == "status" and values.get("code") in REFUSAL_CODES:
        values.setdefault("status", 400)
    if not 0.0 <= values.get("rate", 1.0) <= 1.0:
        raise ValueError("fault rate must be between 0 and 1")
    if mode == "status" and not 400 <= values.get("status", 500) <= 599:
        raise ValueError("a status fault needs an HTTP error status (400-599)")
    if values.get("count") is not None and values["count"] < 1:
        raise ValueError("fault count must be at least 1")
    return Fault(id=str(document.get("id") or fault_id), source=source, **values)


class FaultBook:
    """The active faults.  Not thread-safe: the simulator runs on one event loop."""

    def __init__(self, seed: int = 0) -> None:
        self.seed = seed
        self._faults: list[Fault] = []
        self._next = 1

    def add(self, document: Any) -> Fault:
        fault = parse_fault(document, f"f{self._next}")
        self._next += 1
        self._faults = [f for f in self._faults if f.id != fault.id] + [fault]
        return fault

    def remove(self, fault_id: str) -> bool:
        before = len(self._faults)
        self._faults = [f for f in self._faults if f.id != fault_id]
        return len(self._faults) != before

    def clear(self) -> None:
        self._faults = []

    def reset(self) -> None:
        """No faults, and ids counted from the start again, so a rerun rolls the same dice."""
        self._faults = []
        self._next = 1

    def active(self) -> list[Fault]:
        return [f for f in self._faults if not f.exhausted]

    def __bool__(self) -> bool:
        return bool(self._faults)

    def pick(self, vendor: str, model: str, key: str | None, extra: Sequence[Fault] = ()) -> Fault | None:
        """The first fault that matches and whose dice say yes; it counts as a hit."""
        for fault in (*self._faults, *extra):
            if fault.exhausted or not fault.matches(vendor, model, key):
                continue
            fault.seen += 1
            if fault.rate < 1.0 and self._roll(fault) >= fault.rate:
                continue
            fault.hits += 1
            if fault.exhausted and fault.source == "api":
                self._faults = [f for f in self._faults if f is not fault]
            return fault
        return None

    def rng(self, fault: Fault) -> random.Random:
        """A generator for this hit of ``fault``: the same seed, fault and hit give the same draws."""
        return random.Random(f"{self.seed}:{fault.id}:{fault.hits}")

    def _roll(self, fault: Fault) -> float:
        digest = hashlib.blake2b(f"{self.seed}:{fault.id}:{fault.seen}".encode(), digest_size=8).digest()
        return int.from_bytes(digest, "big") / 2**64
