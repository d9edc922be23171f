"""Vendor status pages: Statuspage v2 documents shaped like the real ones in shared/fixtures/status."""

from __future__ import annotations

import json
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any

import httpx
import pytest

from outlast.sim.testing import running_sim

COMPONENT_STATUSES = {"operational", "degraded_performance", "partial_outage", "major_outage", "under_maintenance"}
INCIDENT_STATUSES = {"investigating", "identified", "monitoring", "resolved", "postmortem"}
INDICATORS = {"none", "minor", "major", "critical", "maintenance"}
ATOM = "{http://www.w3.org/2005/Atom}"
HOUR = 3600


def keys_and_types(value: Any) -> Any:
    """The structure of a JSON document: the same key sets and value types, recursively (lists by first item)."""
    if isinstance(value, dict):
        return {k: keys_and_types(v) for k, v in value.items()}
    if isinstance(value, list):
        return [keys_and_types(value[0])] if value else []
    return "null" if value is None else type(value).__name__


def assert_shaped_like(actual: Any, expected: Any, where: str = "$") -> None:
    """Every field of the fixture is present in ``actual`` with the same type (null may stand for a value)."""
    if isinstance(expected, dict):
        assert isinstance(actual, dict), where
        for key, value in expected.items():
            assert key in actual, f"{where}.{key} missing"
            assert_shaped_like(actual[key], value, f"{where}.{key}")
    elif isinstance(expected, list):
        assert isinstance(actual, list), where
        if expected and actual:
            assert_shaped_like(actual[0], expected[0], f"{where}[0]")
    elif expected != "null" and actual != "null":
        assert actual == expected, f"{where}: {actual} is not {expected}"


@pytest.fixture(scope="module")
def june() -> Any:
    with running_sim("june-2-2026") as sim:
        yield sim


def page(sim: Any, vendor: str, document: str) -> Any:
    response = httpx.get(f"{sim.url}/{vendor}/status/{document}")
    assert response.status_code == 200, response.text
    return response.json() if document.endswith(".json") else response.text


def test_quiet_page_matches_the_claude_fixture(sim: Any, fixtures_dir: Path) -> None:
    real = json.loads((fixtures_dir / "status" / "claude-summary-2026-09-04.json").read_text())
    summary = page(sim, "anthropic", "api/v2/summary.json")
    assert_shaped_like(keys_and_types(summary), keys_and_types(real))
    assert summary["status"] == real["status"]
    assert [(c["id"], c["name"], c["status"]) for c in summary["components"]] == \
        [(c["id"], c["name"], c["status"]) for c in real["components"]]
    assert summary["incidents"] == [] and summary["scheduled_maintenances"] == []


def test_openai_page_is_incidentio_shaped(sim: Any, fixtures_dir: Path) -> None:
    real = json.loads((fixtures_dir / "status" / "openai-summary-incidentio-2026-07-09.json").read_text())
    summary = page(sim, "openai", "api/v2/summary.json")
    assert set(summary) == set(real) == {"page", "status", "components"}
    assert set(summary["components"][0]) == set(real["components"][0])
    assert set(summary["page"]) == set(real["page"])


def test_every_vendor_serves_every_document(sim: Any) -> None:
    for vendor in ("anthropic", "openai", "gemini", "local"):
        status = page(sim, vendor, "api/v2/status.json")
        assert status["status"]["indicator"] in INDICATORS
        assert all(c["status"] in COMPONENT_STATUSES for c in page(sim, vendor, "api/v2/components.json")["components"])
        assert page(sim, vendor, "api/v2/incidents.json")["incidents"] == []
        assert page(sim, vendor, "api/v2/incidents/unresolved.json")["incidents"] == []
        feed = ET.fromstring(page(sim, vendor, "history.atom"))
        assert feed.tag == f"{ATOM}feed" and feed.find(f"{ATOM}entry") is None
    assert httpx.get(f"{sim.url}/anthropic/status/api/v2/nope.json").status_code == 404
    assert sim.requests() == []  # status pages are not API traffic


def test_the_page_lags_the_fault(june: Any) -> None:
    june.reset()
    june.set_clock(20 * 60)  # 06:10: the errors began at 06:04, the page says nothing yet
    assert june.state()["scenario"]["phase"] == "onset"
    summary = page(june, "anthropic", "api/v2/summary.json")
    assert summary["status"] == {"indicator": "none", "description": "All Systems Operational"}
    assert summary["incidents"] == []
    june.set_clock(50 * 60)  # 06:40
    summary = page(june, "anthropic", "api/v2/summary.json")
    assert summary["status"]["indicator"] == "major"
    (incident,) = summary["incidents"]
    assert incident["name"] == "Elevated errors on Claude Opus 4.6"
    assert (incident["status"], incident["created_at"]) == ("investigating", "2026-06-02T06:39:00.000Z")
    api = next(c for c in summary["components"] if c["name"] == "Claude API (api.anthropic.com)")
    assert api["status"] == "partial_outage"


def test_incident_shape_and_updates_newest_first(june: Any, fixtures_dir: Path) -> None:
    real = json.loads((fixtures_dir / "status" / "summary-with-incident-example.json").read_text())
    june.reset()
    june.set_clock(6 * HOUR)  # 11:50
    summary = page(june, "anthropic", "api/v2/summary.json")
    assert_shaped_like(keys_and_types(summary), keys_and_types(real))
    incident = summary["incidents"][0]
    assert [u["status"] for u in incident["incident_updates"]] == ["monitoring", "identified", "investigating"]
    assert [u["created_at"][11:16] for u in incident["incident_updates"]] == ["11:49", "09:33", "06:39"]
    assert incident["monitoring_at"] == "2026-06-02T11:49:00.000Z" and incident["resolved_at"] is None
    assert incident["incident_updates"][-1]["affected_components"][0]["new_status"] in COMPONENT_STATUSES
    assert all(u["status"] in INCIDENT_STATUSES for u in incident["incident_updates"])
    unresolved = page(june, "anthropic", "api/v2/incidents/unresolved.json")
    assert [i["id"] for i in unresolved["incidents"]] == [incident["id"]]


def test_resolution_clears_the_page_and_keeps_history(june: Any) -> None:
    june.reset()
    june.set_clock(7 * HOUR)  # 12:50
    summary = page(june, "anthropic", "api/v2/summary.json")
    assert summary["status"]["indicator"] == "none" and summary["incidents"] == []
    assert {c["status"] for c in summary["components"]} == {"operational"}
    history = page(june, "anthropic", "api/v2/incidents.json")["incidents"]
    assert history[0]["status"] == "resolved" and history[0]["resolved_at"] == "2026-06-02T12:30:00.000Z"
    assert page(june, "anthropic", "api/v2/incidents/unresolved.json")["incidents"] == []


def test_atom_feed_matches_the_fixture_layout(june: Any, fixtures_dir: Path) -> None:
    real = ET.parse(fixtures_dir / "status" / "history-atom-example.xml").getroot()
    june.reset()
    june.set_clock(6 * HOUR)
    feed = ET.fromstring(page(june, "anthropic", "history.atom"))
    assert [child.tag for child in feed if child.tag != f"{ATOM}entry"] == \
        [child.tag for child in real if child.tag != f"{ATOM}entry"]
    entry, real_entry = feed.find(f"{ATOM}entry"), real.find(f"{ATOM}entry")
    assert entry is not None and real_entry is not None
    assert [c.tag for c in entry] == [c.tag for c in real_entry]
    for tag in ("title", "published", "updated"):
        assert entry.findtext(f"{ATOM}{tag}") == real_entry.findtext(f"{ATOM}{tag}")
    assert entry.findtext(f"{ATOM}content") == real_entry.findtext(f"{ATOM}content")


def test_manual_status_posts(sim: Any) -> None:
    sim.post_status(vendor="gemini", incident="g1", name="Increased latency", status="investigating",
                    impact="minor", components={"Gemini API": "degraded_performance"})
    summary = page(sim, "gemini", "api/v2/summary.json")
    assert summary["status"] == {"indicator": "minor", "description": "Minor Service Outage"}
    assert summary["incidents"][0]["name"] == "Increased latency"
    assert summary["incidents"][0]["incident_updates"][0]["body"] == "We are currently investigating this issue."
    bad = httpx.post(f"{sim.url}/_sim/status", json={"vendor": "gemini", "status": "panicking"})
    assert bad.status_code == 400 and "status must be one of" in bad.json()["error"]
    sim.reset()
    assert page(sim, "gemini", "api/v2/summary.json")["incidents"] == []
