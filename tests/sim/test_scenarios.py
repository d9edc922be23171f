"""Scenario timelines on the controllable clock, the scenario format, and extra vendors."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import anthropic
import httpx
import pytest

from outlast.sim.app import build_app
from outlast.sim.scenario import builtin_names, load_scenario, parse_scenario, parse_time
from outlast.sim.testing import running_sim
from tests.sim.conftest import KEY

ASK = [{"role": "user", "content": "hi"}]


def test_shipped_scenarios_load() -> None:
    assert set(builtin_names()) >= {"june-2-2026", "flapping", "rate-limited", "mid-stream-cuts", "blank-answers",
                                    "slow-first-token"}
    for name in builtin_names():
        scenario = load_scenario(name)
        assert scenario.phases and any(p.faults for p in scenario.phases), name


def test_times_are_read_in_every_form() -> None:
    scenario = load_scenario("june-2-2026")
    start = scenario.start
    assert parse_time("06:04", start, "t") == 14 * 60
    assert parse_time("2026-06-02T06:39:00Z", start, "t") == 49 * 60
    assert parse_time("1h30m", None, "t") == 5400 and parse_time("+45s", None, "t") == 45
    assert parse_time(12.5, None, "t") == 12.5
    with pytest.raises(ValueError, match="needs the scenario's start"):
        parse_time("06:04", None, "t")
    with pytest.raises(ValueError, match="cannot read 'soon'"):
        parse_time("soon", None, "t")


def test_june_2_timeline_follows_the_clock(sim: Any) -> None:
    clock = {"now": 0.0}
    app = build_app("june-2-2026", clock=lambda: clock["now"])
    state = app.state
    assert state.clock.time_scale == 60
    assert state.scenario_faults() == []
    clock["now"] = 15  # 15 real seconds at 60x: 06:05
    assert state.describe()["scenario"]["phase"] == "onset"
    assert state.describe()["clock"]["wall"] == "2026-06-02T06:05:00Z"
    opus = [f for f in state.scenario_faults() if f.model == "claude-opus-4-6"]
    assert {f.status for f in opus} == {529, 500}
    state.clock.set(7 * 3600)
    assert state.describe()["scenario"]["phase"] == "recovered" and state.scenario_faults() == []


def test_june_2_errors_are_mostly_529_on_the_flagship() -> None:
    with running_sim("june-2-2026", time_scale=1) as sim:
        sim.set_clock(3 * 3600)  # 08:50, the peak
        client = anthropic.Anthropic(base_url=f"{sim.url}/anthropic", api_key=KEY, max_retries=0)
        codes = {"claude-opus-4-6": [], "claude-sonnet-4-6": [], "claude-haiku-4-5-20251001": []}
        for model, seen in codes.items():
            for _ in range(60):
                try:
                    client.messages.create(model=model, max_tokens=5, messages=ASK)  # type: ignore[arg-type]
                    seen.append(200)
                except anthropic.APIStatusError as error:
                    seen.append(error.status_code)
        opus = codes["claude-opus-4-6"]
        assert opus.count(529) > opus.count(500) > 0 and opus.count(200) < 20
        assert 0 < codes["claude-sonnet-4-6"].count(529) < 25
        assert codes["claude-haiku-4-5-20251001"] == [200] * 60
        sim.set_clock(7 * 3600)
        assert client.messages.create(model="claude-opus-4-6", max_tokens=5, messages=ASK)  # type: ignore[arg-type]


def test_time_scale_override_and_clock_api() -> None:
    with running_sim("flapping", time_scale=1000) as sim:
        state = sim.state()
        assert state["clock"]["time_scale"] == 1000 and state["scenario"]["name"] == "flapping"
        moved = sim.advance(100)
        assert moved["seconds"] >= 100
        assert httpx.post(f"{sim.url}/_sim/clock", json={"forward": 1}).status_code == 400
        sim.reset()
        assert sim.state()["clock"]["seconds"] < 100


def test_flapping_fails_only_in_its_windows() -> None:
    with running_sim("flapping", time_scale=0.001) as sim:
        client = anthropic.Anthropic(base_url=f"{sim.url}/anthropic", api_key=KEY, max_retries=0)
        outcomes = []
        for minute in (1, 2.5, 4, 5.5, 7):
            sim.set_clock(minute * 60)
            try:
                client.messages.create(model="claude-sonnet-4-6", max_tokens=5, messages=ASK)  # type: ignore[arg-type]
                outcomes.append("ok")
            except anthropic.InternalServerError as error:
                outcomes.append(str(error.status_code))
        assert outcomes == ["ok", "529", "ok", "529", "ok"]
        assert [f["id"] for f in sim.state()["scenario_faults"]] == []


def test_a_scenario_file_with_an_extra_vendor(tmp_path: Path) -> None:
    path = tmp_path / "azure.yaml"
    path.write_text("""
name: azure-test
start: 2026-01-05T09:00:00Z
vendors:
  azure: {format: openai, models: [gpt-4o, {id: tiny, context_window: 100}]}
  vertex: {format: anthropic, models: [claude-sonnet-4-6], status_page: {name: Vertex, components: [Claude]}}
phases:
  - {name: calm, at: "09:00"}
  - name: broken
    at: "09:10"
    faults: [{vendor: azure, model: gpt-4o, mode: status, status: 503}]
status:
  - {at: "09:30", vendor: vertex, incident: v1, name: Degraded, status: identified, components: {Claude: major_outage}}
""")
    with running_sim(str(path), time_scale=1) as sim:
        assert {"azure", "vertex", "anthropic", "local"} <= set(sim.state()["vendors"])
        url = f"{sim.url}/azure/v1/chat/completions"
        headers = {"authorization": f"Bearer {KEY}"}
        assert httpx.post(url, json={"model": "gpt-4o", "messages": ASK}, headers=headers).status_code == 200
        too_long = httpx.post(url, json={"model": "tiny", "messages": [{"role": "user", "content": "x" * 800}]},
                              headers=headers)
        assert too_long.json()["error"]["code"] == "context_length_exceeded"
        sim.set_clock(600)
        assert httpx.post(url, json={"model": "gpt-4o", "messages": ASK}, headers=headers).status_code == 503
        sim.set_clock(1800)
        summary = httpx.get(f"{sim.url}/vertex/status/api/v2/summary.json").json()
        assert summary["page"]["name"] == "Vertex"
        assert summary["status"]["indicator"] == "critical"
        assert summary["incidents"][0]["created_at"] == "2026-01-05T09:30:00.000Z"


@pytest.mark.parametrize(("document", "phrase"), [
    ({"phases": [{"faults": [{"mode": "boom"}]}]}, "mode must be one of"),
    ({"colour": 1}, "unknown scenario keys: colour"),
    ({"time_scale": 0}, "time_scale must be positive"),
    ({"vendors": {"x": {"format": "soap", "models": ["m"]}}}, "format must be one of"),
    ({"status": [{"vendor": "anthropic", "components": {"API": "on_fire"}}]}, "'on_fire' is not one of"),
])
def test_bad_scenarios_say_what_is_wrong(document: dict[str, Any], phrase: str) -> None:
    with pytest.raises(ValueError, match=phrase):
        parse_scenario(document)


def test_unknown_scenario_name_lists_the_shipped_ones() -> None:
    with pytest.raises(ValueError, match="june-2-2026"):
        load_scenario("no-such-scenario")
