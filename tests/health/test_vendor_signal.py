"""Vendors' status feeds in detection, with the real documents in shared/fixtures/status/ on a
controllable clock: which vendor incident is about a provider (its components), which one is the
acknowledgement of outlast's incident (and its lag, negative when the vendor was first), and an open
vendor incident as a signal that own traffic can only make worse."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import orjson
import pytest

from outlast.health.detector import VENDOR_FRESH, VENDOR_LEAD, Detector
from outlast.health.feeds import FeedState, parse_atom, parse_statuspage, parse_time
from outlast.health.incidents import Incident, relative_text
from outlast.health.reports import Reports
from outlast.health.scorecard import incident_report
from outlast.health.signals import SignalListener
from outlast.providers.errors import FailureKind, UpstreamError
from outlast.routing.exchange import Attempt, Exchange
from outlast.routing.plan import Target

OPUS = Target("anthropic", "claude-opus-4-6")
POSTED = parse_time("2026-03-04T10:00:00Z") or 0.0  # the vendor's first post in summary-with-incident-example.json
VENDOR_NAME = "Elevated errors on Claude API"
API_ID = "k8w3r06qmzrp"  # "Claude API (api.anthropic.com)" on Claude's page


def load(fixtures_dir: Path, name: str) -> dict[str, Any]:
    document: dict[str, Any] = orjson.loads((fixtures_dir / "status" / name).read_bytes())
    return document


@pytest.fixture
def example(fixtures_dir: Path) -> dict[str, Any]:
    """Claude's page with an open (monitoring) incident on its API, posted at 10:00."""
    return load(fixtures_dir, "summary-with-incident-example.json")


class World:
    """One provider's traffic (one request a second on opus), its feed and the detector, on one clock."""

    def __init__(self, now: float, components: tuple[str, ...] = ()) -> None:
        self.now = now
        self.signals = SignalListener(self.clock, bucket=5.0, keep=600.0)
        self.feed = FeedState("anthropic", "https://status.claude.com/api/v2/summary.json", components=components)
        self.detector = Detector(self.signals, Reports(self.clock), clock=self.clock, feeds={"anthropic": self.feed})

    def clock(self) -> float:
        return self.now

    def read(self, document: dict[str, Any]) -> None:
        self.feed.record(self.now, "ok", status=parse_statuspage(document))

    def run(self, until: float, failing: float) -> None:
        """Requests every second until ``until``, ``failing`` of them overloaded; a tick every 5 s."""
        i = 0
        while self.now < until:
            self.now += 1.0
            failed = i % 10 < round(failing * 10)
            error = UpstreamError(FailureKind.OVERLOADED, "overloaded") if failed else None
            attempt = Attempt(OPUS, 0.0, first_event=None if failed else 0.25, ended=0.3, error=error)
            self.signals.attempt_finished(Exchange("x", "anthropic", "r", 0.0, plan=(OPUS,)), attempt)
            if int(self.now) % 5 == 0:
                self.detector.evaluate(self.now)
            i += 1

    def status(self, component: str = "anthropic") -> str:
        return self.detector.components[component].status

    def incident(self) -> Incident:
        (incident,) = self.detector.incidents
        return incident


def test_the_pages_api_components_stand_for_the_provider_unless_configured(fixtures_dir: Path,
                                                                           example: dict[str, Any]) -> None:
    claude = FeedState("anthropic", "u")
    claude.record(0, "ok", status=parse_statuspage(load(fixtures_dir, "claude-summary-2026-09-04.json")))
    assert claude.watched() == [(API_ID, "Claude API (api.anthropic.com)")]  # not claude.ai, Claude Code, ...
    openai_page = parse_statuspage(load(fixtures_dir, "openai-summary-incidentio-2026-07-09.json"))
    openai = FeedState("openai", "u")
    openai.record(0, "ok", status=openai_page)
    assert openai.watched() == [("01KMP3KP5MGE23B80K1EK4S8PV", "Codex API")]
    by_id = FeedState("openai", "u", components=("01JVCV8YSWZFRSM1G5CVP253SK", "Chat Completions"))
    by_id.record(0, "ok", status=openai_page)
    # A configured id is found on the page; a name the page does not list is kept as configured.
    assert by_id.watched() == [("01JVCV8YSWZFRSM1G5CVP253SK", "Codex Web"), ("Chat Completions", "Chat Completions")]
    # The incident names its component in its list and, by a shorter name, in its updates.
    (incident,) = parse_statuspage(example).incidents
    assert incident.affected == ((API_ID, "Claude API (api.anthropic.com)"), (API_ID, "Claude API"))


def test_a_vendor_post_after_the_onset_is_the_acknowledgement(example: dict[str, Any]) -> None:
    world = World(POSTED - 600)
    world.run(POSTED - 120, failing=0.0)
    world.run(POSTED + 120, failing=1.0)  # outlast sees errors from 09:58; the feed is read at 10:02
    incident = world.incident()
    assert incident.vendor_ack_at is None
    world.read(example)
    world.run(POSTED + 130, failing=1.0)
    assert incident.vendor_ack_at == POSTED
    assert incident.ack_lag is not None and abs(incident.ack_lag - 120) <= 5
    assert incident.vendor_incident is not None and incident.vendor_incident["name"] == VENDOR_NAME
    note = next(u.body for u in incident.updates if VENDOR_NAME in u.body)
    assert f"acknowledged it at 2026-03-04 10:00:00 UTC ({relative_text(incident.ack_lag, 'onset')}, " in note
    assert relative_text(incident.ack_lag, "onset").endswith("after onset")
    assert incident.evidence["vendor_posts"]["ch27pb90bn85"]["acknowledgement"] is True
    assert sum(VENDOR_NAME in u.body for u in incident.updates) == 1  # said once, not on every tick


def test_a_vendor_post_shortly_before_the_onset_is_a_negative_lag(example: dict[str, Any]) -> None:
    world = World(POSTED - 600)
    world.run(POSTED + 60, failing=0.0)
    world.read(example)  # 10:01: the vendor has said so; outlast's traffic is still fine
    world.run(POSTED + 180, failing=0.0)
    assert world.detector.incidents == []  # a vendor post alone opens nothing...
    assert world.status() == "degraded_performance"  # ...but the provider is not shown as operational
    assert world.status("anthropic/claude-opus-4-6") == "operational"
    world.run(POSTED + 300, failing=1.0)  # errors from 10:03
    incident = world.incident()
    assert world.status() == "major_outage"  # own traffic decides how bad
    assert incident.vendor_ack_at == POSTED
    assert incident.ack_lag is not None and abs(incident.ack_lag + 180) <= 5  # the vendor was first
    assert f"({relative_text(incident.ack_lag, 'onset')}): {VENDOR_NAME}" in incident_report(incident)
    assert relative_text(incident.ack_lag, "onset").endswith("before onset")


def test_an_older_open_vendor_incident_is_evidence_but_not_the_acknowledgement(example: dict[str, Any]) -> None:
    world = World(POSTED + 1200)
    world.read(example)  # its incident, posted at 10:00, still open (monitoring)
    world.run(POSTED + 1800, failing=0.0)
    world.run(POSTED + 1800 + 120, failing=1.0)  # outlast's own outage from 10:30
    incident = world.incident()
    assert incident.started_at - POSTED > VENDOR_LEAD
    assert incident.vendor_ack_at is None and incident.ack_lag is None
    post = incident.evidence["vendor_posts"]["ch27pb90bn85"]
    assert post["name"] == VENDOR_NAME and post["acknowledgement"] is False
    note = next(u.body for u in incident.updates if VENDOR_NAME in u.body)
    assert "open incident since 2026-03-04 10:00:00 UTC" in note and "not counted as the acknowledgement" in note
    report = incident_report(incident)
    assert "not seen in its feed" in report and f"Other vendor posts**: {VENDOR_NAME} (monitoring" in report


def claude_ai_incident(fixtures_dir: Path, example: dict[str, Any]) -> dict[str, Any]:
    """Claude's real page (six components) with the example's incident moved to claude.ai."""
    page = load(fixtures_dir, "claude-summary-2026-09-04.json")
    app = next(c for c in page["components"] if c["name"] == "claude.ai")
    incident = copy.deepcopy(example["incidents"][0])
    incident["components"] = [{"id": app["id"], "name": app["name"], "status": "partial_outage"}]
    for update in incident["incident_updates"]:
        for affected in update.get("affected_components") or []:
            affected.update(code=app["id"], name=app["name"])
    page["incidents"] = [incident]
    return page


def test_a_vendor_incident_on_another_component_is_not_about_the_provider(fixtures_dir: Path,
                                                                         example: dict[str, Any]) -> None:
    document = claude_ai_incident(fixtures_dir, example)
    world = World(POSTED - 600)
    world.run(POSTED + 60, failing=0.0)
    world.read(document)
    world.run(POSTED + 90, failing=0.0)
    assert "anthropic" in world.detector.components and world.status() == "operational"
    world.run(POSTED + 300, failing=1.0)  # an API outage of outlast's own, while claude.ai has one
    incident = world.incident()
    assert incident.vendor_ack_at is None and incident.evidence["vendor_posts"] == {}
    assert not any(VENDOR_NAME in u.body for u in incident.updates)
    # Told that claude.ai stands for this provider, the same page is about it.
    mapped = World(POSTED - 600, components=("claude.ai",))
    mapped.run(POSTED + 60, failing=0.0)
    mapped.read(document)
    mapped.run(POSTED + 90, failing=0.0)
    assert mapped.status() == "degraded_performance"
    mapped.run(POSTED + 300, failing=1.0)
    assert mapped.incident().vendor_ack_at == POSTED


def test_a_feed_that_names_no_components_matches_any_incident_of_the_vendor(fixtures_dir: Path) -> None:
    # The Atom history of 2 June 2026: "investigating" at 06:39, no components.
    world = World((parse_time("2026-06-02T05:50:00Z") or 0.0), components=("Claude API",))
    world.run(parse_time("2026-06-02T06:04:00Z") or 0.0, failing=0.0)
    world.run(parse_time("2026-06-02T06:40:00Z") or 0.0, failing=1.0)
    world.feed.record(world.now, "ok", status=parse_atom((fixtures_dir / "status" / "history-atom-example.xml")
                                                          .read_bytes()))
    world.run(world.now + 10, failing=1.0)
    incident = world.incident()
    assert incident.vendor_ack_at == parse_time("2026-06-02T06:39:00Z")
    assert incident.ack_lag is not None and abs(incident.ack_lag - 35 * 60) <= 5


def test_the_vendor_signal_ends_when_the_vendor_resolves_or_its_feed_goes_stale(example: dict[str, Any]) -> None:
    world = World(POSTED)
    world.read(example)
    world.run(POSTED + 60, failing=0.0)
    assert world.status() == "degraded_performance"
    assert world.detector.snapshot()[0]["vendor"] == [VENDOR_NAME]
    resolved = copy.deepcopy(example)
    resolved["incidents"][0].update(status="resolved", resolved_at="2026-03-04T11:00:00.000Z")
    world.read(resolved)
    world.run(POSTED + 120, failing=0.0)
    assert world.status() == "operational" and world.detector.snapshot()[0]["vendor"] == []
    # Still open on the page, but the page has not been read for longer than VENDOR_FRESH.
    stale = World(POSTED)
    stale.read(example)
    stale.run(POSTED + 60, failing=0.0)
    stale.feed.record(stale.now, "down", "HTTP 503")  # the page went down with the API
    stale.run(POSTED + 120, failing=0.0)
    assert stale.status() == "degraded_performance"  # its last word still counts...
    stale.now += VENDOR_FRESH
    stale.run(stale.now + 60, failing=0.0)
    assert stale.status() == "operational"  # ...for an hour
    # A page with no incident at all signals nothing.
    quiet = World(POSTED)
    quiet.read({**example, "incidents": []})
    quiet.run(POSTED + 60, failing=0.0)
    assert quiet.status() == "operational"


def test_a_note_while_monitoring_does_not_restart_the_quiet_period() -> None:
    incident = Incident("i", "anthropic", "t", "investigating", "overload", "major", 0.0, 0.0)
    incident.update(100.0, "monitoring", "errors stopped")
    incident.update(200.0, "monitoring", "the vendor's status page acknowledged it")
    assert incident.monitoring_at == 100.0
    incident.update(300.0, "identified", "errors returned")
    incident.update(400.0, "monitoring", "errors stopped again")
    assert incident.monitoring_at == 400.0


def test_status_components_from_the_configuration_reach_the_feed(tmp_path: Path) -> None:
    from outlast.config import validate
    from outlast.health.service import HealthService

    config = validate({"store": f"sqlite:///{tmp_path / 'outlast.db'}", "providers": {
        "anthropic": {"kind": "anthropic", "status_feed": "https://status.claude.com/api/v2/summary.json",
                      "status_components": ["claude.ai", API_ID]},
        "openai": {"kind": "openai", "status_feed": "https://status.openai.com/api/v2/summary.json"}}})
    service = HealthService.from_config(config)
    try:
        assert service.feeds.states["anthropic"].components == ("claude.ai", API_ID)
        assert service.feeds.states["openai"].components == ()
        assert service.detector.feeds is service.feeds.states
    finally:
        sql = getattr(service.store, "sql", None)
        if sql is not None:
            sql.close()
