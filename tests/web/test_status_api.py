"""The status page, its Statuspage v2 JSON and Atom feed (checked against the structure of real
vendors' documents), outlast's own API, reports, and the dashboard's login."""

from __future__ import annotations

import re
import time
from pathlib import Path
from typing import Any

import httpx
import orjson

from outlast.health.feeds import parse_atom, parse_statuspage
from tests.conftest import MASTER_KEY
from tests.web.conftest import chat

COMPONENT_STATUSES = {"operational", "degraded_performance", "partial_outage", "major_outage", "under_maintenance"}
INCIDENT_STATUSES = {"investigating", "identified", "monitoring", "resolved", "postmortem"}
INDICATORS = {"none", "minor", "major", "critical", "maintenance"}
IMPACTS = {"none", "minor", "major", "critical"}
ISO = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?Z$")


def fixture(fixtures_dir: Path, name: str) -> Any:
    return orjson.loads((fixtures_dir / "status" / name).read_bytes())


def wait_for(predicate: Any, seconds: float = 15.0) -> Any:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.1)
    raise AssertionError("condition not met in time")


def test_summary_has_every_field_of_the_real_documents(api: httpx.Client, fixtures_dir: Path) -> None:
    assert chat(api).status_code == 200
    real = fixture(fixtures_dir, "summary-with-incident-example.json")
    claude = fixture(fixtures_dir, "claude-summary-2026-09-04.json")
    ours = api.get("/api/v2/summary.json").json()
    assert set(real) <= set(ours)
    assert set(real["page"]) <= set(ours["page"])
    assert set(claude["components"][0]) <= set(ours["components"][0])
    assert ours["status"]["indicator"] in INDICATORS
    for component in ours["components"]:
        assert component["status"] in COMPONENT_STATUSES and ISO.match(component["updated_at"])
    names = {c["name"] for c in ours["components"]}
    assert {"anthropic", "anthropic/claude-sonnet-4-6"} <= names
    assert parse_statuspage(ours).components["anthropic"] in COMPONENT_STATUSES  # our own reader reads it
    for name in ("status.json", "components.json", "incidents.json", "incidents/unresolved.json"):
        document = api.get(f"/api/v2/{name}").json()
        assert set(document["page"]) == set(ours["page"])
    assert api.get("/api/v2/nope.json").status_code == 404


def test_an_outage_opens_an_incident_seen_in_json_atom_and_html(api: httpx.Client, sim: Any,
                                                                fixtures_dir: Path) -> None:
    sim.add_fault(vendor="anthropic", model="claude-sonnet-4-6", mode="status", status=529)

    def opened() -> Any:
        chat(api)
        unresolved = api.get("/api/v2/incidents/unresolved.json").json()["incidents"]
        return [i for i in unresolved if "anthropic/claude-sonnet-4-6" in [c["name"] for c in i["components"]]]

    (incident,) = wait_for(opened)
    real = fixture(fixtures_dir, "summary-with-incident-example.json")["incidents"][0]
    assert set(real) <= set(incident)
    assert set(real["incident_updates"][0]) <= set(incident["incident_updates"][0])
    assert set(real["components"][0]) <= set(incident["components"][0])
    assert incident["status"] in INCIDENT_STATUSES and incident["impact"] in IMPACTS
    assert "overloaded" in incident["incident_updates"][-1]["body"]
    assert ISO.match(incident["created_at"]) and incident["resolved_at"] is None
    summary = api.get("/api/v2/summary.json").json()
    assert summary["status"]["indicator"] != "none"
    assert incident["id"] in [i["id"] for i in summary["incidents"]]
    feed = parse_atom(api.get("/history.atom").content)
    assert incident["name"] in [i.name for i in feed.incidents]
    page = api.get("/status").text
    assert incident["name"] in page and 'class="banner' in page
    sim.clear_faults()

    def resolved() -> bool:
        chat(api)
        return incident["id"] in [i["id"] for i in api.get("/api/v2/incidents.json").json()["incidents"]
                                  if i["status"] == "resolved"]

    wait_for(resolved, 30)
    done = api.get(f"/outlast/v1/incidents/{incident['id']}").json()
    assert [u["status"] for u in done["updates"]][-1] == "resolved"
    assert "monitoring" in [u["status"] for u in done["updates"]]


def test_status_page_loads_nothing_from_elsewhere_and_refreshes_itself(api: httpx.Client) -> None:
    response = httpx.get(api.base_url.join("/status"))  # public: no key
    assert response.status_code == 200
    html = response.text
    assert 'http-equiv="refresh"' in html
    for match in re.findall(r'(?:src|href)="([^"]+)"', html):
        assert match.startswith(("/", "#", "data:")), match
    assert "default-src 'self'" in response.headers["content-security-policy"]


def test_reports_are_counted_and_checked(api: httpx.Client) -> None:
    before = api.post("/outlast/v1/reports", json={"component": "openai", "note": "slow"})
    assert before.status_code == 201 and before.json()["component"] == "openai"
    again = api.post("/outlast/v1/reports", json={"component": "openai"}).json()
    assert again["reports_in_window"] == before.json()["reports_in_window"] + 1
    unknown = api.post("/outlast/v1/reports", json={"component": "nobody"})
    assert unknown.status_code == 400 and "known" in unknown.json()["error"]
    assert api.post("/outlast/v1/reports", content=b"[]").status_code == 400
    assert httpx.post(api.base_url.join("/outlast/v1/reports"), json={"component": "openai"}).status_code == 401


def test_dashboard_needs_the_master_key_through_a_login_form(api: httpx.Client) -> None:
    base = api.base_url
    with httpx.Client(base_url=base, timeout=10) as browser:
        first = browser.get("/ui/")
        assert first.status_code == 303 and first.headers["location"] == "/ui/login"
        wrong = browser.post("/ui/login", data={"key": "nope"})
        assert wrong.status_code == 401
        login = browser.post("/ui/login", data={"key": MASTER_KEY})
        assert login.status_code == 303
        cookie = login.headers["set-cookie"]
        assert "HttpOnly" in cookie and "SameSite=Strict" in cookie and MASTER_KEY not in cookie
        page = browser.get("/ui/")
        assert page.status_code == 200 and 'id="report-form"' in page.text
        # The session works for the dashboard's own calls (marked), not as a bare cross-site request.
        assert browser.get("/outlast/v1/health", headers={"x-outlast-ui": "1"}).status_code == 200
        assert browser.get("/outlast/v1/health").status_code == 401
        for path in ("/ui/incidents", "/ui/providers", "/ui/conversations", "/ui/conversations?q=hello"):
            assert browser.get(path).status_code == 200, path


def test_dashboard_exports_a_conversation_as_markdown_and_json(api: httpx.Client, health_gateway: Any) -> None:
    reply = api.post("/v1/chat/completions", json={"model": "to-anthropic", "max_tokens": 8, "messages": [
        {"role": "user", "content": "export me please [[reply:exported]]"}]})
    assert reply.status_code == 200
    recorder = next(s for s in health_gateway.gateway.sinks if hasattr(s, "wait_ingested"))
    assert recorder.wait_ingested()
    with httpx.Client(base_url=api.base_url, timeout=10) as browser:
        assert browser.post("/ui/login", data={"key": MASTER_KEY}).status_code == 303
        listing = browser.get("/ui/conversations", params={"q": "export me"})
        found = re.search(r'href="/ui/conversations/([^"/]+)"', listing.text)
        assert found is not None, listing.text
        markdown = browser.get(f"/ui/conversations/{found.group(1)}/export.md")
        assert markdown.status_code == 200 and markdown.headers["content-type"].startswith("text/markdown")
        assert "export me please" in markdown.text and "exported" in markdown.text
        document = browser.get(f"/ui/conversations/{found.group(1)}/export.json")
        assert document.status_code == 200 and "export me please" in document.text


def test_dashboard_deletes_a_conversation_only_from_its_own_page(api: httpx.Client, health_gateway: Any) -> None:
    reply = api.post("/v1/chat/completions", json={"model": "to-anthropic", "max_tokens": 8, "messages": [
        {"role": "user", "content": "forget me afterwards [[reply:forgotten]]"}]})
    assert reply.status_code == 200
    exchange_id = reply.headers["x-outlast-exchange-id"]
    recorder = next(s for s in health_gateway.gateway.sinks if hasattr(s, "wait_ingested"))
    assert recorder.wait_ingested()
    store = recorder.store
    cid = store.get_exchange(exchange_id)["conversation_id"]
    origin = {"origin": str(api.base_url).rstrip("/")}
    with httpx.Client(base_url=api.base_url, timeout=10) as browser:
        assert browser.post("/ui/login", data={"key": MASTER_KEY}).status_code == 303
        page = browser.get(f"/ui/conversations/{cid}").text
        form = re.search(rf'<form method="post" action="/ui/conversations/{cid}/delete">.*?</form>', page, re.S)
        assert form is not None, page
        csrf = re.search(r'name="csrf" value="([^"]+)"', form.group(0))
        assert csrf is not None
        # Another site can make the browser post (the cookie goes along), but not with the token.
        forged = browser.post(f"/ui/conversations/{cid}/delete", data={}, headers={"origin": "https://evil.example"})
        assert forged.status_code == 403 and store.get_conversation(cid) is not None
        by_prefix = browser.post(f"/ui/conversations/{cid[:8]}/delete", data={"csrf": csrf.group(1)}, headers=origin)
        assert by_prefix.status_code == 404 and store.get_conversation(cid) is not None  # only by its full id
        done = browser.post(f"/ui/conversations/{cid}/delete", data={"csrf": csrf.group(1)}, headers=origin)
        assert done.status_code == 303 and done.headers["location"] == "/ui/conversations?deleted=1"
        listing = browser.get(done.headers["location"]).text
        assert "The conversation was deleted." in listing and cid not in listing
        assert browser.get(f"/ui/conversations/{cid}").status_code == 404
    assert store.get_conversation(cid) is None and store.get_exchange(exchange_id) is None
    assert store.search("forget afterwards") == []


def test_live_numbers_count_requests_and_failovers(api: httpx.Client, sim: Any) -> None:
    before = api.get("/outlast/v1/health").json()["live"]
    sim.add_fault(vendor="openai", model="gpt-5.1", mode="status", status=500, count=4)
    for _ in range(3):
        assert chat(api, "gpt-5.1").status_code == 200
    after = api.get("/outlast/v1/health").json()["live"]
    assert after["requests_total"] == before["requests_total"] + 3
    assert after["failovers"] > before["failovers"]
    assert after["requests_per_minute"] >= 3



def test_the_days_before_the_gateway_watched_a_component_show_as_no_data(api: httpx.Client) -> None:
    def watched() -> str | None:
        page = api.get("/status").text
        return page if "uptime since" in page else None

    page = wait_for(watched)
    bars = re.findall(r'<div class="bars"[^>]*>(.*?)</div><div class="muted">([^<]*)</div>', page)
    assert any("uptime since" in summary for _, summary in bars)
    for bar, summary in bars:
        days = re.findall(r'<span class="([a-z_]+)" title="([^"]+)"', bar)
        assert len(days) == 90  # health.uptime_days
        # At most today was watched: the 89 days before are no data, not 100 % up.
        assert {kind for kind, _ in days[:-1]} == {"no_data"} and all(t.endswith("no data") for _, t in days[:-1])
        if "uptime since" in summary:
            assert days[-1][0] != "no_data" and days[-1][1].endswith("% uptime")
        else:  # a component not ticked yet (a model first asked for a moment ago)
            assert "no data yet" in summary and days[-1][0] == "no_data"
