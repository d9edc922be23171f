"""``outlast report`` (scorecard in three formats, post-incident report) from a store, and
``outlast status`` against a running gateway."""

from __future__ import annotations

import time
from datetime import date
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from outlast.cli import main
from outlast.health.incidents import Incident
from outlast.health.persist import HealthStore
from outlast.store.sql import SqlStore
from tests.conftest import MASTER_KEY
from tests.web.conftest import chat


@pytest.fixture
def config_file(tmp_path: Path) -> Path:
    db = tmp_path / "outlast.db"
    store = SqlStore(f"sqlite:///{db}")
    store.migrate()
    health = HealthStore(store.engine)
    now = 1780380240.0 + 3600  # 2 June 2026, 07:04 UTC
    incident = Incident(id="anthropic-20260602-060426-1", provider="anthropic", title="Overloaded on opus",
                        status="investigating", cause="overload", impact="major", started_at=now - 3600,
                        opened_at=now - 3574, components=["anthropic/claude-opus-4-6"])
    incident.update(now - 3574, "investigating", "43% of 14 requests failing")
    incident.update(now - 3514, "identified", "stable")
    incident.vendor_ack_at = now - 3600 + 2100
    incident.update(now - 900, "monitoring", "errors stopped")
    incident.update(now, "resolved", "quiet")
    incident.failed_over = 691
    health.save_incident(incident)
    health.save_uptime([("anthropic", date(2026, 6, 2), {"partial_outage": 100.0, "major_outage": 200.0})])
    store.close()
    path = tmp_path / "outlast.yaml"
    path.write_text(f"store: sqlite:///{db}\nproviders: {{}}\n", encoding="utf-8")
    return path


def test_report_scorecard_in_three_formats(config_file: Path, tmp_path: Path) -> None:
    runner = CliRunner()
    days = ["--days", "100000"]  # the fixture's incident is on 2 June 2026
    markdown = runner.invoke(main, ["report", "--config", str(config_file), *days, "--format", "markdown"])
    assert markdown.exit_code == 0, markdown.output
    line = next(x for x in markdown.output.splitlines() if x.startswith("| anthropic"))
    assert "| 1 |" in line and "1h 00m" in line and "35m 00s" in line
    html_path = tmp_path / "card.html"
    html = runner.invoke(main, ["report", "--config", str(config_file), *days, "--format", "html", "-o",
                                str(html_path)])
    assert html.exit_code == 0 and "<td>anthropic</td>" in html_path.read_text()
    terminal = CliRunner(env={"COLUMNS": "250"}).invoke(main, ["report", "--config", str(config_file), *days])
    assert terminal.exit_code == 0 and "anthropic" in terminal.output


def test_report_incident_has_timeline_cause_and_impact(config_file: Path) -> None:
    result = CliRunner().invoke(main, ["report", "--config", str(config_file), "incident", "anthropic-2026"])
    assert result.exit_code == 0, result.output
    out = result.output
    timeline = out[out.index("## Timeline"):]
    assert "overloaded (529/503)" in out and "691 requests served by failover" in out
    assert timeline.index("investigating") < timeline.index("identified") < timeline.index("monitoring") \
        < timeline.index("resolved")
    assert "35m 00s after onset" in out
    missing = CliRunner().invoke(main, ["report", "--config", str(config_file), "incident", "nope"])
    assert missing.exit_code == 1


def test_status_summarises_the_running_gateway(health_gateway: Any, api: Any) -> None:
    chat(api)
    time.sleep(1.2)  # a detector tick or two
    result = CliRunner(env={"COLUMNS": "200"}).invoke(main, ["status", "--url", health_gateway.url, "--key",
                                                             MASTER_KEY])
    assert result.exit_code == 0, result.output
    assert "requests/min" in result.output and "anthropic/claude-sonnet-4-6" in result.output
    denied = CliRunner().invoke(main, ["status", "--url", health_gateway.url, "--key", "wrong"])
    assert denied.exit_code == 1 and "401" in denied.output
