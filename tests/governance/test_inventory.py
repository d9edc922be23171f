"""The inventory from real traffic: ``GET /outlast/v1/usage`` (admin only), the dashboard's usage
page, and ``outlast report usage`` giving the same rows."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import anthropic
import httpx
import openai
import orjson
import pytest
from click.testing import CliRunner

from outlast.cli import main
from outlast.governance.inventory import parse_when
from tests.conftest import MASTER_KEY
from tests.policy.conftest import SECRET, policy_document

REPLY = "[[reply:inventory answer]]"


@pytest.fixture
def inventory(sim: Any, tmp_path: Path) -> Iterator[dict[str, Any]]:
    """A recording gateway with two teams' keys, after some traffic of each."""
    import yaml

    from outlast.app import build_gateway
    from outlast.config import validate
    from outlast.governance.keys import create_key
    from outlast.serving import BackgroundServer

    document = policy_document(sim.url, store=f"sqlite:///{tmp_path / 'inventory.db'}")
    config = tmp_path / "outlast.yaml"
    config.write_text(yaml.safe_dump(document))
    gateway = build_gateway(validate(document), data_directory=tmp_path)
    with BackgroundServer(gateway) as server:
        engine = gateway.governance.engine  # type: ignore[union-attr]
        payments, _ = create_key(engine, "payments")
        research, _ = create_key(engine, "research")
        an = anthropic.Anthropic(base_url=server.url, api_key=payments, max_retries=0, timeout=30)
        for _ in range(3):
            an.messages.create(model="to-anthropic", max_tokens=50, messages=[{"role": "user", "content": REPLY}])
        an.messages.create(model="gov-secret", max_tokens=50,
                           messages=[{"role": "user", "content": f"{SECRET} {REPLY}"}])
        oa = openai.OpenAI(base_url=f"{server.url}/v1", api_key=research, max_retries=0, timeout=30)
        oa.chat.completions.create(model="to-openai", messages=[{"role": "user", "content": REPLY}])
        sim.add_fault(vendor="openai", model="*", mode="status", status=500)
        with pytest.raises(openai.APIStatusError):
            oa.chat.completions.create(model="to-openai", messages=[{"role": "user", "content": REPLY}])
        openai.OpenAI(base_url=f"{server.url}/v1", api_key=MASTER_KEY, max_retries=0, timeout=30).chat.completions \
            .create(model="to-local", messages=[{"role": "user", "content": REPLY}])
        assert gateway.sinks[0].wait_ingested()  # type: ignore[attr-defined]
        yield {"url": server.url, "config": str(config), "payments": payments}


def get(url: str, path: str, **kwargs: Any) -> httpx.Response:
    with httpx.Client(base_url=url, timeout=30, follow_redirects=False) as http:
        return http.get(path, **kwargs)


def test_the_usage_endpoint_says_which_teams_use_which_providers_with_volumes_and_classes(inventory: Any) -> None:
    response = get(inventory["url"], "/outlast/v1/usage", headers={"authorization": f"Bearer {MASTER_KEY}"})
    assert response.status_code == 200
    found = response.json()
    rows = {(r["team"], r["provider"], r["model"], r["data_class"]): r for r in found["usage"]}
    everyday = rows[("payments", "anthropic", "claude-sonnet-4-6", "public")]
    assert everyday["requests"] == 3 and everyday["input_tokens"] > 0 and everyday["output_tokens"] > 0
    assert everyday["errors"] == 0
    assert rows[("payments", "anthropic", "claude-opus-4-6", "secret")]["requests"] == 1
    assert rows[("research", "openai", "gpt-5.1", "public")]["requests"] == 1
    assert rows[("research", "(none)", "(none)", "public")]["errors"] == 1  # the failed one: nobody served it
    assert rows[("(master key)", "local", "qwen3:8b", "public")]["requests"] == 1
    teams = {t["team"]: t for t in found["teams"]}
    assert teams["payments"]["requests"] == 4
    assert teams["payments"]["models"] == {"anthropic/claude-sonnet-4-6": 3, "anthropic/claude-opus-4-6": 1}
    assert teams["payments"]["data_classes"] == {"public": 3, "secret": 1}
    assert teams["research"]["errors"] == 1
    assert SECRET not in response.text
    # the CLI gives the same rows
    printed = CliRunner().invoke(main, ["report", "usage", "--json", "--config", inventory["config"]])
    assert printed.exit_code == 0, printed.output
    assert sorted(orjson.loads(printed.output), key=str) == sorted(found["usage"], key=str)


def test_the_usage_window_follows_since_and_until(inventory: Any) -> None:
    auth = {"x-api-key": MASTER_KEY}
    future = get(inventory["url"], "/outlast/v1/usage", params={"since": str(time.time() + 3600)}, headers=auth)
    assert future.status_code == 200 and future.json()["usage"] == [] and future.json()["teams"] == []
    before = get(inventory["url"], "/outlast/v1/usage", params={"since": "2020-01-01", "until": "2020-02-01"},
                 headers=auth)
    assert before.status_code == 200 and before.json()["usage"] == []
    assert before.json()["since"] == parse_when("2020-01-01T00:00:00Z")
    recent = get(inventory["url"], "/outlast/v1/usage", params={"since": "1h"}, headers=auth)
    assert sum(r["requests"] for r in recent.json()["usage"]) == 7
    bad = get(inventory["url"], "/outlast/v1/usage", params={"since": "last tuesday"}, headers=auth)
    assert bad.status_code == 400 and "ISO 8601" in bad.json()["error"]


def test_the_usage_endpoint_needs_the_admin_credential(inventory: Any) -> None:
    assert get(inventory["url"], "/outlast/v1/usage").status_code == 401
    team_key = get(inventory["url"], "/outlast/v1/usage", headers={"x-api-key": inventory["payments"]})
    assert team_key.status_code == 401  # a team's key does not see every team
    assert inventory["payments"] not in team_key.text
    with httpx.Client(base_url=inventory["url"], timeout=30) as http:
        assert http.post("/outlast/v1/usage", headers={"x-api-key": MASTER_KEY}).status_code == 405


def test_the_dashboard_shows_the_inventory_after_signing_in(inventory: Any) -> None:
    page = get(inventory["url"], "/ui/usage")
    assert page.status_code == 303 and page.headers["location"] == "/ui/login"
    with httpx.Client(base_url=inventory["url"], timeout=30) as http:
        login = http.post("/ui/login", data={"key": MASTER_KEY})
        assert login.status_code == 303
        overview = http.get("/ui/")
        assert '<a href="/ui/usage">Usage</a>' in overview.text  # in the dashboard's navigation
        page = http.get("/ui/usage")
        json_view = http.get("/outlast/v1/usage")  # the page's JSON link works with the session
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    html = page.text
    assert '<a href="/ui/usage" aria-current=page>Usage</a>' in html
    assert "<caption>By team</caption>" in html and '<th scope="col">Data classes</th>' in html
    assert "<th scope=row>payments</th><td>4</td>" in html
    assert "anthropic/claude-sonnet-4-6 (3), anthropic/claude-opus-4-6 (1)" in html
    assert "public (3), secret (1)" in html
    assert "<td>research</td><td>openai</td><td>gpt-5.1</td><td>public</td><td>1</td>" in html
    assert "<label>Since <input" in html  # a labelled control for the window
    assert json_view.status_code == 200 and json_view.json()["teams"]
    assert MASTER_KEY not in html and SECRET not in html
    empty = httpx.get(f"{inventory['url']}/ui/usage", params={"since": "2020-01-01", "until": "2020-01-02"},
                      cookies=dict(login.cookies), timeout=30)
    assert "No requests in this window." in empty.text
