"""The detector: on each tick, every component's recent error rate, latency and report volume are
compared with its own baseline; departures open incidents, and incidents move through their
lifecycle as the evidence changes.

Hysteresis, so nothing flaps: an incident opens at ``open_rate`` (or ``baseline_factor`` times the
component's usual error rate, if higher), and only once the errors have been *sustained*: failures
seen over at least ``sustain`` seconds of the window (:meth:`~outlast.health.signals.Series.error_span`).
A burst shorter than that, which the breakers absorb, shows as degraded performance and opens
nothing. (Slowness and rate limiting, which have no such span, must be seen on two ticks
``open_after`` apart.) An incident counts as
recovered only when the error rate over the longer ``recovery_window`` has been below
``close_rate``; it resolves only after ``quiet_period`` more without a relapse, and a relapse
before then continues the same incident. Rate limiting opens an incident only when it lasts
longer than ``rate_limit_grace``: a quota running out for a few minutes is not an outage.

With fewer than ``min_samples`` attempts in ``window`` (an idle gateway, where only active probes
run), a component is judged on the last ``sparse_window`` seconds instead.

Vendors' status feeds are a signal too, but a weak one: an open vendor incident about a provider
(one that names the vendor components standing for it, :meth:`~outlast.health.feeds.FeedState.concerns`)
shows the provider's component as at least degraded performance, and is written into the evidence
of outlast's incident; only outlast's own traffic makes it a partial or major outage, opens or
closes an incident. A vendor post is the acknowledgement of outlast's incident when it came no
earlier than ``VENDOR_LEAD`` before outlast's onset (the lag is then negative: the vendor was first);
an older one is an earlier incident of the vendor's, shown as evidence but not as the acknowledgement.

The clock is passed in (epoch seconds), so tests replay a day in a second.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from outlast.health.feeds import FeedState, VendorIncident
from outlast.health.incidents import CAUSE_OF_INDEX, CAUSES, Incident, Update, clock_text, duration_text, relative_text
from outlast.health.reports import Reports
from outlast.health.signals import SignalListener, Window
from outlast.health.uptime import Uptime

Change = tuple[Incident, Update]

# outlast's onset is an estimate (to the bucket with traffic, to the probe interval without): a vendor
# post this much earlier still acknowledges the same outage, with a negative lag.
VENDOR_LEAD = 300.0
# A feed's last reading stays a signal this long after it, so a status page that goes down with the
# API keeps its word for a while, and one that is gone for good stops counting.
VENDOR_FRESH = 3600.0
STATUS_ORDER = ("operational", "degraded_performance", "partial_outage", "major_outage")


@dataclass(frozen=True, slots=True)
class Policy:
    """Seconds and ratios; the defaults are the documented ones (docs/health.md)."""

    tick: float = 5.0
    window: float = 30.0
    recovery_window: float = 300.0
    min_samples: int = 5
    open_rate: float = 0.25
    close_rate: float = 0.02
    major_rate: float = 0.8
    baseline_factor: float = 3.0
    open_after: float = 5.0
    sustain: float = 15.0
    sparse_window: float = 300.0
    identify_after: float = 60.0
    quiet_period: float = 600.0
    rate_limit_grace: float = 600.0
    latency_factor: float = 3.0
    latency_floor: float = 2.0
    report_min: int = 3
    report_factor: float = 3.0
    baseline_alpha: float = 0.05


@dataclass(slots=True)
class Reading:
    samples: int = 0
    error_rate: float = 0.0
    rate_limited: float = 0.0
    latency: float | None = None
    mix: dict[str, int] = field(default_factory=dict)
    causes: dict[str, int] = field(default_factory=dict)
    reports: int = 0
    report_baseline: float = 0.0
    departure: str | None = None  # errors | latency | rate_limit | reports
    sustained: float = 0.0  # seconds over which the window's errors were seen (Series.error_span)
    probes: int = 0  # of the samples, active probes
    probe_fails: int = 0
    probe_latency: float | None = None
    vendor: list[str] = field(default_factory=list)  # open vendor incidents about it (providers only)


@dataclass(slots=True)
class ComponentState:
    name: str
    provider: str
    baseline_error: float = 0.0
    baseline_latency: float | None = None
    bad_since: float | None = None  # first tick of the current departure
    onset: float | None = None  # first tick errors rose above the close threshold
    limited_since: float | None = None
    last_departure: str | None = None  # what the latest departure was
    status: str = "operational"
    reading: Reading = field(default_factory=Reading)


def _causes(window: Window) -> dict[str, int]:
    out: dict[str, int] = {}
    for i, n in enumerate(window.fails):
        cause = CAUSE_OF_INDEX.get(i)
        if n and cause:
            out[cause] = out.get(cause, 0) + n
    if window.skips and window.last_kind >= 0:
        cause = CAUSE_OF_INDEX.get(window.last_kind)
        if cause:
            out[cause] = out.get(cause, 0) + window.skips
    return out


class Detector:
    def __init__(self, signals: SignalListener, reports: Reports, *, policy: Policy | None = None,
                 clock: Callable[[], float] = time.time, uptime: Uptime | None = None,
                 feeds: dict[str, FeedState] | None = None) -> None:
        self.signals = signals
        self.reports = reports
        self.policy = policy or Policy()
        self.clock = clock
        self.uptime = uptime if uptime is not None else Uptime()
        self.feeds = feeds or {}
        self.components: dict[str, ComponentState] = {}
        self.incidents: list[Incident] = []  # newest last; resolved ones stay for the pages
        self.listeners: list[Callable[[Incident, Update], None]] = []
        self.vendor_open: dict[str, list[VendorIncident]] = {}  # provider -> open vendor incidents about it
        self._last_tick: float | None = None
        self._count = 0

    # ------------------------------------------------------------------ readings

    def component(self, name: str) -> ComponentState:
        state = self.components.get(name)
        if state is None:
            state = self.components[name] = ComponentState(name, name.split("/", 1)[0])
        return state

    def _read(self, state: ComponentState, now: float, seconds: float) -> Reading:
        p = self.policy
        series = self.signals.series.get(state.name)
        reading = Reading()
        if series is not None:
            window = series.window(now, seconds)
            reading.samples = window.samples
            reading.error_rate = window.error_rate
            reading.rate_limited = window.rate_limited_rate
            reading.latency = window.latency if window.latency_n >= p.min_samples else None
            reading.mix = window.mix()
            reading.causes = _causes(window)
            reading.probes, reading.probe_fails, reading.probe_latency = \
                window.probes, window.probe_fails, window.probe_latency
        reading.reports = self.reports.count(state.name, now)
        reading.report_baseline = self.reports.baseline(state.name, now)
        return reading

    def _open_threshold(self, state: ComponentState) -> float:
        return max(self.policy.open_rate, self.policy.baseline_factor * state.baseline_error)

    def _sustain(self) -> float:
        """The minimum sustained duration, at most the longest span a window can show."""
        return min(self.policy.sustain, max(0.0, self.policy.window - self.policy.tick))

    def _close_threshold(self, state: ComponentState) -> float:
        return max(self.policy.close_rate, 1.5 * state.baseline_error)

    def _latency_departs(self, state: ComponentState, reading: Reading) -> bool:
        base = state.baseline_latency
        if reading.latency is None or base is None:
            return False
        return reading.latency >= max(self.policy.latency_factor * base, base + self.policy.latency_floor)

    def _reports_depart(self, reading: Reading) -> bool:
        p = self.policy
        return reading.reports >= max(p.report_min, p.report_factor * reading.report_baseline)

    def _assess(self, state: ComponentState, now: float) -> None:
        p = self.policy
        seconds = p.window
        reading = state.reading = self._read(state, now, seconds)
        if reading.samples < p.min_samples and p.sparse_window > p.window:
            seconds = p.sparse_window  # idle: judge on what probes (and the odd request) saw
            reading = state.reading = self._read(state, now, seconds)
        evidence = reading.samples >= p.min_samples
        series = self.signals.series.get(state.name)
        if evidence and series is not None:
            reading.sustained = series.error_span(now, seconds)
        if evidence:
            if reading.error_rate > self._close_threshold(state):
                if state.onset is None:
                    first = series.first_failure(now, seconds) if series is not None else None
                    state.onset = first if first is not None else now
            else:
                state.onset = None
            if reading.rate_limited >= p.open_rate:
                state.limited_since = state.limited_since if state.limited_since is not None else now
            else:
                state.limited_since = None
        departure = None
        if evidence and reading.error_rate >= self._open_threshold(state) and reading.sustained >= self._sustain():
            departure = "errors"
        elif state.limited_since is not None and now - state.limited_since >= p.rate_limit_grace:
            departure = "rate_limit"
        elif self._latency_departs(state, reading):
            departure = "latency"
        elif self._reports_depart(reading):
            departure = "reports"
        if departure is not None:
            reading.departure = departure
            state.last_departure = departure
            state.bad_since = state.bad_since if state.bad_since is not None else now
        elif evidence or reading.reports < p.report_min:
            state.bad_since = None
        # Baselines learn only from calm periods, so an outage does not become normal.
        if evidence and departure is None and state.onset is None and not self._affected(state.name):
            a = p.baseline_alpha
            state.baseline_error = (1 - a) * state.baseline_error + a * reading.error_rate
            if reading.latency is not None:
                state.baseline_latency = reading.latency if state.baseline_latency is None else \
                    (1 - a) * state.baseline_latency + a * reading.latency
        state.status = self._status(state, reading, evidence)
        posts = self.vendor_open.get(state.name) if "/" not in state.name else None
        if posts:
            reading.vendor = [i.name for i in posts]
            if STATUS_ORDER.index(state.status) < STATUS_ORDER.index("degraded_performance"):
                state.status = "degraded_performance"  # the vendor says so; its traffic says how bad

    def _vendor_signals(self, now: float) -> None:
        """Each provider's open vendor incidents about it, from a feed read within ``VENDOR_FRESH``."""
        self.vendor_open = {}
        for provider, feed in self.feeds.items():
            if feed.status is None or feed.read_at is None or now - feed.read_at > VENDOR_FRESH:
                continue
            posts = [i for i in feed.concerning() if not i.resolved]
            if posts:
                self.vendor_open[provider] = posts
                self.component(provider)

    def _status(self, state: ComponentState, reading: Reading, evidence: bool) -> str:
        if not evidence:
            if reading.departure == "reports":
                return "degraded_performance"
            return state.status if self._affected(state.name) else "operational"
        rate = reading.error_rate
        if rate >= self._open_threshold(state) and reading.sustained < self._sustain() \
                and not self._affected(state.name):
            return "degraded_performance"  # a burst the breakers absorb, not (yet) an outage
        if rate >= self.policy.major_rate:
            return "major_outage"
        if rate >= self._open_threshold(state) or reading.departure == "rate_limit":
            return "partial_outage"
        if reading.departure in ("latency", "reports"):
            return "degraded_performance"
        if rate > self._close_threshold(state) and self._affected(state.name):
            return "degraded_performance"
        return "operational"

    def _recovered(self, state: ComponentState, now: float) -> bool:
        """Errors stopped: over the recovery window, enough samples and few enough errors (and no
        rate limiting, latency or report departure now)."""
        if state.reading.departure is not None:
            return False
        reading = self._read(state, now, self.policy.recovery_window)
        if state.last_departure == "reports":  # only people saw it: over when they stop reporting
            return state.bad_since is None
        if reading.samples < self.policy.min_samples:
            return False  # no traffic to judge by: nothing says the errors stopped
        return reading.error_rate <= self._close_threshold(state) and reading.rate_limited < self.policy.open_rate

    # ------------------------------------------------------------------ incidents

    def open_incident(self, provider: str) -> Incident | None:
        for incident in reversed(self.incidents):
            if incident.provider == provider and not incident.resolved:
                return incident
        return None

    def _affected(self, name: str) -> bool:
        provider = name.split("/", 1)[0]
        incident = self.open_incident(provider)
        return incident is not None and name in incident.components

    def _emit(self, incident: Incident, update: Update, changes: list[Change]) -> None:
        changes.append((incident, update))
        for listener in self.listeners:
            listener(incident, update)

    def _tally(self, incident: Incident) -> tuple[dict[str, int], set[str]]:
        """This tick's failures by cause on the incident's components (models if any, else the
        provider, so nothing is counted twice), and the kinds of departure now."""
        totals: dict[str, int] = {}
        departures = set()
        states = [self.components[c] for c in incident.components if c in self.components]
        models = [s for s in states if "/" in s.name] or states
        for state in models:
            for cause, n in state.reading.causes.items():
                totals[cause] = totals.get(cause, 0) + n
        for state in states:
            if state.reading.departure:
                departures.add(state.reading.departure)
        if "rate_limit" not in departures:
            totals.pop("rate_limiting", None)
        return totals, departures

    def _cause(self, incident: Incident) -> tuple[str, dict[str, int]]:
        """The cause class: the one with most failures over the incident so far (so a noisy
        window does not flip it), latency when slowness is all there is, else unknown."""
        totals, departures = self._tally(incident)
        seen: dict[str, int] = incident.evidence.setdefault("causes", {})
        for cause, n in totals.items():
            seen[cause] = seen.get(cause, 0) + n
        if seen:
            return max(seen.items(), key=lambda kv: kv[1])[0], totals
        if "latency" in departures:
            return "timeout", totals
        return incident.cause or "unknown", totals

    def _evidence(self, states: list[ComponentState]) -> str:
        parts = []
        for s in states:
            r = s.reading
            if r.departure == "reports":
                parts.append(f"{s.name}: {r.reports} problem reports in {self.reports.window / 60:.0f} min "
                             f"(usually {r.report_baseline:.1f})")
                continue
            if r.departure == "latency" and r.latency is not None and s.baseline_latency is not None:
                parts.append(f"{s.name}: first token after {r.latency:.1f} s on average "
                             f"(usually {s.baseline_latency:.1f} s)")
                continue
            mix = ", ".join(f"{n} {k}" for k, n in sorted(r.mix.items(), key=lambda kv: -kv[1])[:4])
            text = f"{s.name}: {r.error_rate:.0%} of {r.samples} requests failing (usually {s.baseline_error:.0%})"
            if r.rate_limited:
                text += f", {r.rate_limited:.0%} rate limited"
            parts.append(text + (f" [{mix}]" if mix else ""))
        return "; ".join(parts)

    def _impact(self, incident: Incident) -> str:
        worst = "minor"
        for name in incident.components:
            status = self.components[name].status if name in self.components else "operational"
            if status == "major_outage":
                return "critical" if "/" not in name else "major"
            if status == "partial_outage":
                worst = "major"
        return worst

    def _open(self, provider: str, states: list[ComponentState], now: float, changes: list[Change]) -> Incident:
        self._count += 1
        onsets = [s.onset for s in states if s.onset is not None] + [s.bad_since for s in states if s.bad_since]
        started = min(onsets) if onsets else now
        names = sorted({s.name for s in states}, key=lambda n: ("/" not in n, n))
        incident = Incident(
            id=f"{provider}-{datetime.fromtimestamp(now, UTC):%Y%m%d-%H%M%S}-{self._count}", provider=provider,
            title="", status="investigating", cause="unknown", impact="minor", started_at=started, opened_at=now,
            components=names)
        cause, _ = self._cause(incident)
        incident.cause = cause
        incident.title = f"{CAUSES[cause].split(' (')[0].capitalize()} on {names[0]}"
        incident.impact = self._impact(incident)
        incident.evidence["peak_error_rate"] = max(s.reading.error_rate for s in states)
        series = self.signals.series.get(provider)
        if series is not None:
            window = series.window(now, self.policy.window)
            incident.evidence["_base"] = [series.total_fails - sum(window.fails), series.total_saved,
                                          series.total_failed]
        self.incidents.append(incident)
        update = incident.update(now, "investigating",
                                 f"Departure from baseline since {clock_text(started)}: {self._evidence(states)}. "
                                 f"Likely cause: {CAUSES[cause]}.")
        self._emit(incident, update, changes)
        return incident

    def _account(self, incident: Incident) -> None:
        series = self.signals.series.get(incident.provider)
        base = incident.evidence.get("_base")
        if series is None or base is None:
            return
        incident.requests_affected = series.total_fails - base[0]
        incident.failed_over = series.total_saved - base[1]
        incident.failed = series.total_failed - base[2]

    def _advance(self, incident: Incident, now: float, changes: list[Change]) -> None:
        p = self.policy
        states = [self.components[c] for c in incident.components if c in self.components]
        bad = [s for s in states if s.reading.departure is not None]
        cause, _ = self._cause(incident)
        if bad:
            incident.evidence["peak_error_rate"] = max(incident.evidence.get("peak_error_rate", 0.0),
                                                       *(s.reading.error_rate for s in bad))
            incident.impact = max(incident.impact, self._impact(incident), key=("none", "minor", "major",
                                                                                "critical").index)
        self._account(incident)
        if incident.status in ("investigating", "identified") and cause != incident.cause and bad:
            incident.cause = cause
            incident.evidence["cause_since"] = now
            if incident.status == "identified":
                self._emit(incident, incident.update(now, "identified",
                                                     f"The cause now looks like {CAUSES[cause]}: "
                                                     f"{self._evidence(bad)}."), changes)
        cause_since = incident.evidence.get("cause_since", incident.opened_at)
        if incident.status == "investigating" and incident.cause != "unknown" and bad \
                and now - cause_since >= p.identify_after:
            self._emit(incident, incident.update(
                now, "identified",
                f"Cause identified as {CAUSES[incident.cause]}, stable for {duration_text(now - cause_since)}: "
                f"{self._evidence(bad)}."), changes)
            return
        if incident.status in ("investigating", "identified"):
            if states and all(self._recovered(s, now) for s in states):
                self._emit(incident, incident.update(
                    now, "monitoring",
                    f"Errors stopped: no departure from baseline in the last "
                    f"{duration_text(p.recovery_window)} on {', '.join(incident.components)}. "
                    f"{incident.failed_over} requests were served by failover so far."), changes)
            return
        if incident.status == "monitoring":
            if bad:
                status = "identified" if incident.identified_at is not None else "investigating"
                self._emit(incident, incident.update(now, status, f"Errors returned: {self._evidence(bad)}."),
                           changes)
                return
            if incident.monitoring_at is not None and now - incident.monitoring_at >= p.quiet_period:
                self._emit(incident, incident.update(
                    now, "resolved",
                    f"Resolved after {duration_text(now - incident.monitoring_at)} without errors. Lasted "
                    f"{duration_text(now - incident.started_at)}; {incident.requests_affected} failed attempts, "
                    f"{incident.failed_over} requests served by failover, {incident.failed} failed."), changes)

    def _vendor(self, incident: Incident, now: float, changes: list[Change]) -> None:
        """The vendor's incidents about this provider, from its feed: the first one posted no earlier
        than ``VENDOR_LEAD`` before the onset is the acknowledgement; each one still open or posted
        since then is written into the evidence (``vendor_posts``) and the timeline, once."""
        feed = self.feeds.get(incident.provider)
        if feed is None or feed.status is None:
            return
        posts: dict[str, Any] = incident.evidence.setdefault("vendor_posts", {})
        known = incident.vendor_incident  # an acknowledgement recorded before vendor_posts was kept
        if known and known.get("id") is not None and known["id"] not in posts:
            posts[known["id"]] = {"name": known.get("name"), "status": known.get("status"),
                                  "acknowledged_at": incident.vendor_ack_at, "url": known.get("url"),
                                  "seen_at": known.get("seen_at"), "acknowledgement": True}
        started = incident.started_at
        for vendor in sorted(feed.concerning(), key=lambda i: i.acknowledged_at or now):
            if vendor.resolved and (vendor.resolved_at or now) < started:
                continue  # over before this began
            ack = vendor.acknowledged_at
            acknowledges = ack is not None and ack >= started - VENDOR_LEAD
            if not acknowledges and vendor.resolved:
                continue  # an earlier incident of the vendor's, over now: not about this one
            post = posts.get(vendor.id)
            if post is not None:
                post["status"] = vendor.status
                continue
            posts[vendor.id] = post = {"name": vendor.name, "status": vendor.status, "acknowledged_at": ack,
                                       "url": vendor.url, "seen_at": feed.first_seen.get(vendor.id, now),
                                       "acknowledgement": False}
            quoted = f"\u201c{vendor.name}\u201d ({vendor.status})"
            if acknowledges and ack is not None and incident.vendor_ack_at is None:
                post["acknowledgement"] = True
                incident.vendor_ack_at = ack
                incident.vendor_incident = {"id": vendor.id, "name": vendor.name, "status": vendor.status,
                                            "url": vendor.url, "seen_at": post["seen_at"]}
                body = (f"{incident.provider}'s status page acknowledged it at {clock_text(ack)} "
                        f"({relative_text(ack - started, 'onset')}, "
                        f"{relative_text(ack - incident.opened_at, 'outlast opened this incident')}): {quoted}.")
            elif acknowledges and ack is not None:
                body = (f"{incident.provider}'s status page posted another incident about it at {clock_text(ack)} "
                        f"({relative_text(ack - started, 'onset')}): {quoted}.")
            else:
                since = f"since {clock_text(ack)}, {duration_text(started - ack)} before this one began" \
                    if ack is not None else "with no time given"
                body = (f"{incident.provider}'s status page has had an open incident {since}: {quoted}. "
                        f"It is not counted as the acknowledgement of this one.")
            self._emit(incident, incident.update(now, incident.status, body), changes)

    # ------------------------------------------------------------------ the tick

    def evaluate(self, now: float | None = None) -> list[Change]:
        """One tick: assess every component, open, advance and resolve incidents, count uptime."""
        now = self.clock() if now is None else now
        p = self.policy
        changes: list[Change] = []
        for name in set(self.signals.series) | self.reports.components():
            self.component(name)
        self._vendor_signals(now)
        for state in self.components.values():
            self._assess(state, now)
        by_provider: dict[str, list[ComponentState]] = {}
        for state in self.components.values():
            if state.bad_since is None:
                continue
            # Sustained errors have already lasted `sustain`; other departures wait `open_after`.
            at_once = state.reading.departure in ("reports", "errors")
            if at_once or now - state.bad_since >= p.open_after:
                by_provider.setdefault(state.provider, []).append(state)
        for provider, states in by_provider.items():
            incident = self.open_incident(provider)
            if incident is None:
                self._open(provider, states, now, changes)
                continue
            new = [s for s in states if s.name not in incident.components]
            if new:
                incident.components.extend(s.name for s in new)
                self._emit(incident, incident.update(now, incident.status,
                                                     f"Now also affecting {', '.join(s.name for s in new)}: "
                                                     f"{self._evidence(new)}."), changes)
        for incident in [i for i in self.incidents if not i.resolved]:
            if incident.opened_at < now:
                self._advance(incident, now, changes)
            self._vendor(incident, now, changes)
        if self._last_tick is not None and now > self._last_tick:
            for state in self.components.values():
                self.uptime.add(state.name, state.status, self._last_tick, now)
        self._last_tick = now
        return changes

    # ------------------------------------------------------------------ views

    def snapshot(self, now: float | None = None) -> list[dict[str, Any]]:
        now = self.clock() if now is None else now
        out = []
        for name in sorted(self.components):
            s = self.components[name]
            r = s.reading
            out.append({"component": name, "provider": s.provider, "status": s.status, "samples": r.samples,
                        "error_rate": round(r.error_rate, 4), "rate_limited": round(r.rate_limited, 4),
                        "latency": r.latency, "baseline_error": round(s.baseline_error, 4),
                        "baseline_latency": s.baseline_latency, "mix": r.mix, "reports": r.reports,
                        "departure": r.departure, "sustained": r.sustained, "probes": r.probes,
                        "probe_fails": r.probe_fails, "probe_latency": r.probe_latency, "vendor": r.vendor})
        return out

    def restore(self, incidents: list[Incident]) -> None:
        """Incidents loaded from the store at start-up (open ones continue)."""
        known = {i.id for i in self.incidents}
        self.incidents[:0] = [i for i in incidents if i.id not in known]
        self._count = max(self._count, len(self.incidents))

