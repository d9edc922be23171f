"""Incidents, uptime and reports survive in the store (SQLite and PostgreSQL); webhooks are
delivered in both formats and retried with backoff."""

from __future__ import annotations

import json
import re
import socket
from collections.abc import Iterator
from datetime import date
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web

from outlast.health.incidents import Incident
from outlast.health.persist import HealthStore
from outlast.health.reports import Report
from outlast.health.webhooks import Hook, Webhooks
from outlast.store.sql import SqlStore
from tests.store.conftest import pg_server, pg_url, store_url  # noqa: F401  (fixtures)


@pytest.fixture
def health_store(store_url: str) -> Iterator[HealthStore]:  # noqa: F811
    sql = SqlStore(store_url)
    sql.migrate()
    yield HealthStore(sql.engine)
    sql.close()


def incident(status: str = "investigating") -> Incident:
    i = Incident(id="anthropic-20260602-060426-1", provider="anthropic", title="Overloaded on anthropic/opus",
                 status="investigating", cause="overload", impact="major", started_at=1780380240.0,
                 opened_at=1780380266.0, components=["anthropic/claude-opus-4-6", "anthropic"])
    i.update(1780380266.0, "investigating", "43% of 14 requests failing")
    if status != "investigating":
        i.update(1780380326.0, "identified", "cause stable")
    i.vendor_ack_at = 1780382340.0
    i.evidence = {"peak_error_rate": 0.9, "causes": {"overload": 10}}
    return i


def test_incidents_uptime_and_reports_round_trip(health_store: HealthStore) -> None:
    health_store.save_incident(incident())
    health_store.save_incident(incident("identified"))  # saved again as it moves on: one row
    (loaded,) = health_store.load_incidents(since=0)
    assert loaded.status == "identified" and [u.status for u in loaded.updates] == ["investigating", "identified"]
    assert loaded.ack_lag == 2100.0 and loaded.components == ["anthropic/claude-opus-4-6", "anthropic"]
    assert loaded.evidence["causes"] == {"overload": 10}
    assert health_store.get_incident("anthropic-2026") is not None
    day = date(2026, 6, 2)
    health_store.save_uptime([("anthropic/claude-opus-4-6", day, {"partial_outage": 100.0, "major_outage": 220.5})])
    health_store.save_uptime([("anthropic/claude-opus-4-6", day, {"partial_outage": 103.0, "major_outage": 221.0})])
    (row,) = health_store.load_uptime(date(2026, 6, 1))
    assert row[0] == "anthropic/claude-opus-4-6" and row[2]["partial_outage"] == 103.0
    assert health_store.load_uptime(date(2026, 6, 3)) == []
    health_store.add_report(Report(1780380300.0, "anthropic", "answers stop half-way"))
    (report,) = health_store.load_reports(0)
    assert report.note == "answers stop half-way"


async def test_webhooks_retry_with_backoff_in_json_and_slack_format() -> None:
    from outlast.serving import free_port

    unused_tcp_port = free_port()
    received: list[tuple[str, Any]] = []
    failures = {"/json": 2, "/slack": 0}

    async def hook(request: web.Request) -> web.Response:
        if failures[request.path] > 0:
            failures[request.path] -= 1
            return web.Response(status=503)
        received.append((request.path, await request.json()))
        return web.Response(status=204)

    app = web.Application()
    app.router.add_post("/json", hook)
    app.router.add_post("/slack", hook)
    runner = web.AppRunner(app)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", unused_tcp_port).start()
    waits: list[float] = []

    async def sleep(seconds: float) -> None:
        waits.append(seconds)

    base = f"http://127.0.0.1:{unused_tcp_port}"
    hooks = Webhooks([Hook(base + "/json"), Hook(base + "/slack", "slack")], backoff=0.5, sleep=sleep)
    try:
        i = incident()
        hooks.enqueue(i, i.updates[-1], {"id": "p", "indicator": "major", "description": "Partial System Outage"})
        await hooks.drain()
    finally:
        await hooks.aclose()
        await runner.cleanup()
    assert waits == [0.5, 1.0]  # two failures, backoff doubling
    paths = dict(received)
    assert paths["/json"]["meta"]["event"] == "incident.opened"
    assert paths["/json"]["incident"]["status"] == "investigating"
    assert paths["/json"]["incident"]["incident_updates"][0]["body"] == "43% of 14 requests failing"
    assert "Overloaded on anthropic/opus" in paths["/slack"]["text"]
    assert hooks.delivered == 2 and hooks.dropped == 0


async def test_a_webhook_that_never_answers_is_dropped_after_its_attempts() -> None:
    waits: list[float] = []

    async def sleep(seconds: float) -> None:
        waits.append(seconds)

    hooks = Webhooks([Hook("http://127.0.0.1:9/never")], attempts=3, backoff=1.0, sleep=sleep)
    i = incident()
    hooks.enqueue(i, i.updates[-1], {})
    await hooks.drain()
    await hooks.aclose()
    assert waits == [1.0, 2.0] and hooks.dropped == 1 and hooks.delivered == 0


ISO = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$")
# Statuspage's subscriber links: outlast has no subscriber management, so it has nothing to link to.
NOT_SENT = {"meta.unsubscribe", "meta.documentation"}


def assert_shape(expected: Any, got: Any, where: str = "") -> None:
    """``got`` has every key ``expected`` has, with a value of the same kind (times as ISO 8601 with
    milliseconds and Z); lists are compared element by element against ``expected``'s first element."""
    if isinstance(expected, dict):
        assert isinstance(got, dict), where
        for key, value in expected.items():
            path = f"{where}.{key}".lstrip(".")
            if path in NOT_SENT:
                continue
            assert key in got, f"{path} missing"
            assert_shape(value, got[key], path)
    elif isinstance(expected, list):
        assert isinstance(got, list) and got, f"{where}: expected a non-empty list, got {got!r}"
        for item in got:
            assert_shape(expected[0], item, where + "[]")
    elif expected is None:
        assert got is None or isinstance(got, str | bool | int | list | dict), where
        if where.endswith("_at") and got is not None:
            assert ISO.match(got), f"{where}: {got!r} is not ISO 8601"
    elif isinstance(expected, bool):
        assert isinstance(got, bool), f"{where}: {got!r} is not a boolean"
    elif isinstance(expected, int):
        assert isinstance(got, int) and not isinstance(got, bool), f"{where}: {got!r} is not an integer"
    else:
        assert isinstance(got, str), f"{where}: {got!r} is not a string"
        if where.endswith("_at"):
            assert ISO.match(got), f"{where}: {got!r} is not ISO 8601"


STATES = {"anthropic": "partial_outage", "anthropic/claude-opus-4-6": "major_outage", "openai": "operational"}


def test_json_webhook_has_the_shape_of_a_statuspage_webhook(fixtures_dir: Path) -> None:
    fixture = json.loads((fixtures_dir / "status" / "statuspage-webhook-incident-created.json").read_text())
    states = dict(STATES)
    hooks = Webhooks([Hook("http://127.0.0.1:9/json")], base_url="https://outlast.example.com/")
    i = incident()
    page = {"id": "p1", "indicator": "major", "description": "Partial System Outage"}
    hooks.enqueue(i, i.updates[-1], page, list(states.items()))
    _, opened = hooks.queue.get_nowait()
    assert_shape(fixture, opened)
    assert opened["meta"]["event"] == "incident.opened"
    assert opened["meta"]["generated_at"] == "2026-06-02T06:04:26.000Z"
    assert opened["incident"]["shortlink"] == f"https://outlast.example.com/ui/incidents/{i.id}"
    assert opened["incident"]["page_id"] == "p1"
    assert [(c["name"], c["status"], c["position"]) for c in opened["incident"]["components"]] == [
        ("anthropic/claude-opus-4-6", "major_outage", 2), ("anthropic", "partial_outage", 1)]
    (latest,) = opened["incident"]["incident_updates"]
    assert [(a["name"], a["old_status"], a["new_status"]) for a in latest["affected_components"]] == [
        ("anthropic/claude-opus-4-6", "operational", "major_outage"), ("anthropic", "operational", "partial_outage")]
    assert {a["code"] for a in latest["affected_components"]} == {c["id"] for c in opened["incident"]["components"]}

    # the next update: old_status is what the receiver was told last time
    states["anthropic/claude-opus-4-6"] = "partial_outage"
    i.update(1780380326.0, "identified", "cause stable")
    hooks.enqueue(i, i.updates[-1], page, list(states.items()))
    _, updated = hooks.queue.get_nowait()
    assert updated["meta"]["event"] == "incident.updated"
    newest, older = updated["incident"]["incident_updates"]
    assert [(a["old_status"], a["new_status"]) for a in newest["affected_components"]] == [
        ("major_outage", "partial_outage"), ("partial_outage", "partial_outage")]
    assert older["affected_components"] is None  # only the update being sent says what changed

    i.update(1780382000.0, "resolved", "recovered")
    hooks.enqueue(i, i.updates[-1], page, list(states.items()))
    _, resolved = hooks.queue.get_nowait()
    assert resolved["meta"]["event"] == "incident.resolved"
    assert [(a["old_status"], a["new_status"]) for a in resolved["incident"]["incident_updates"][0][
        "affected_components"]] == [("partial_outage", "operational"), ("partial_outage", "operational")]
    assert ISO.match(resolved["incident"]["resolved_at"])


def test_without_a_known_address_the_shortlink_stays_relative() -> None:
    hooks = Webhooks([Hook("http://127.0.0.1:9/json")])
    i = incident()
    hooks.enqueue(i, i.updates[-1], {"id": "p1"})
    _, body = hooks.queue.get_nowait()
    assert body["incident"]["shortlink"] == f"/ui/incidents/{i.id}"


def test_the_health_service_sends_component_states_and_its_public_url() -> None:
    from outlast.config import HealthConfig, WebhookConfig
    from outlast.health.service import HealthService

    config = HealthConfig(public_url="https://status.example.org/", webhooks=[WebhookConfig(url="http://127.0.0.1:9/")])
    service = HealthService(config, ["anthropic", "openai"], {})
    service.detector.component("anthropic/claude-opus-4-6").status = "major_outage"  # as a reading would set it
    service.detector.component("anthropic").status = "partial_outage"
    i = incident()
    for listener in service.detector.listeners:  # what the detector does when an incident opens
        listener(i, i.updates[-1])
    _, body = service.webhooks.queue.get_nowait()
    assert body["incident"]["shortlink"] == f"https://status.example.org/ui/incidents/{i.id}"
    assert body["page"]["id"] and body["incident"]["page_id"] == body["page"]["id"]
    # statuses and positions as the status page has them: providers first, each followed by its models
    assert [(c["name"], c["status"], c["position"]) for c in body["incident"]["components"]] == [
        ("anthropic/claude-opus-4-6", "major_outage", 2), ("anthropic", "partial_outage", 1)]
    assert [(a["name"], a["new_status"]) for a in body["incident"]["incident_updates"][0]["affected_components"]] == [
        ("anthropic/claude-opus-4-6", "major_outage"), ("anthropic", "partial_outage")]


@pytest.mark.parametrize(("host", "url"), [("127.0.0.1", "http://127.0.0.1:8484"), ("::1", "http://[::1]:8484"),
                                           ("0.0.0.0", f"http://{socket.getfqdn()}:8484")])
def test_serve_links_webhooks_to_the_address_it_listens_on(host: str, url: str) -> None:
    from outlast.cli import served_url

    assert served_url(host, 8484) == url
