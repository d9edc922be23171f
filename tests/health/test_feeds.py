"""Vendor status feeds: the real documents in shared/fixtures/status/, the simulator's pages, and
feeds that are down or malformed (a signal, never a crash)."""

from __future__ import annotations

import socket
from pathlib import Path
from typing import Any

import orjson
import pytest

from outlast.health.feeds import FeedError, FeedPoller, parse_atom, parse_feed, parse_statuspage, parse_time


def load(fixtures_dir: Path, name: str) -> Any:
    return orjson.loads((fixtures_dir / "status" / name).read_bytes())


def test_claude_summary_has_six_components_and_no_open_incident(fixtures_dir: Path) -> None:
    status = parse_statuspage(load(fixtures_dir, "claude-summary-2026-09-04.json"))
    assert status.page == "Claude"
    assert len(status.components) == 6
    assert "Claude API (api.anthropic.com)" in status.components
    assert status.indicator in ("none", "minor", "major", "critical", "maintenance")


def test_incidentio_summary_without_incidents_or_groups_is_read(fixtures_dir: Path) -> None:
    status = parse_statuspage(load(fixtures_dir, "openai-summary-incidentio-2026-07-09.json"))
    assert status.page == "OpenAI" and status.indicator == "none"
    assert status.incidents == () and status.components["Codex API"] == "operational"


def test_open_incident_acknowledged_at_its_first_update(fixtures_dir: Path) -> None:
    document = load(fixtures_dir, "summary-with-incident-example.json")
    status = parse_statuspage(document)
    (incident,) = status.incidents
    assert incident.status == "monitoring" and not incident.resolved
    assert len(incident.updates) == 3
    first = min(parse_time(u["created_at"]) or 0 for u in document["incidents"][0]["incident_updates"])
    assert incident.acknowledged_at == first
    assert incident.components == ("Claude API (api.anthropic.com)",)


def test_webhook_payload_is_read_as_an_incident(fixtures_dir: Path) -> None:
    status = parse_statuspage(load(fixtures_dir, "statuspage-webhook-incident-created.json"))
    (incident,) = status.incidents
    assert incident.name == "Database query delays" and incident.status == "identified"
    assert status.indicator == "none"


def test_atom_history_gives_the_incident_its_updates_and_ack_time(fixtures_dir: Path) -> None:
    status = parse_atom((fixtures_dir / "status" / "history-atom-example.xml").read_bytes())
    (incident,) = status.incidents
    assert incident.name == "Elevated errors on Claude Opus 4.6"
    assert [u.status for u in incident.updates] == ["monitoring", "identified", "investigating"]
    assert incident.status == "monitoring"
    assert incident.acknowledged_at == parse_time("2026-06-02T06:39:00Z")
    assert incident.updated_at == parse_time("2026-06-02T11:49:00Z")


@pytest.mark.parametrize("body", [b"", b"not json", b"[1, 2]", b'{"hello": "world"}', b"<html><body>oops"])
def test_malformed_documents_raise_feed_error(body: bytes) -> None:
    with pytest.raises(FeedError):
        parse_feed(body, "application/json" if not body.startswith(b"<") else "text/html")


def _dead_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


async def test_poller_reads_the_simulators_pages_and_records_dead_and_malformed_feeds(scenario_sim: Any) -> None:
    sim = scenario_sim("june-2-2026")
    sim.set_clock(50 * 60)  # 06:40: the vendor posted "investigating" at 06:39
    poller = FeedPoller({
        "anthropic": f"{sim.url}/anthropic/status/api/v2/summary.json",
        "anthropic-atom": f"{sim.url}/anthropic/status/history.atom",
        "openai": f"{sim.url}/openai/status/api/v2/summary.json",
        "dead": f"http://127.0.0.1:{_dead_port()}/api/v2/summary.json",
        "wrong": f"{sim.url}/_sim/state",
    }, timeout=2)
    try:
        states = {s.provider: s for s in await poller.poll()}
    finally:
        await poller.aclose()
    assert states["anthropic"].state == "ok"
    (incident,) = states["anthropic"].open_incidents()
    assert incident.name == "Elevated errors on Claude Opus 4.6"
    assert incident.acknowledged_at == parse_time("2026-06-02T06:39:00Z")
    assert states["anthropic-atom"].state == "ok"
    assert states["anthropic-atom"].open_incidents()[0].acknowledged_at == incident.acknowledged_at
    assert states["openai"].state == "ok" and states["openai"].open_incidents() == []
    assert states["dead"].state == "down" and states["dead"].error
    assert states["wrong"].state == "malformed" and "Statuspage" in (states["wrong"].error or "")
