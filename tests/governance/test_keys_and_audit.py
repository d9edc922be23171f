"""Virtual keys (shown once, stored hashed, revoked everywhere), rate limits, the team on the exchange,
and the audit chain: every routing decision recorded; edits, inserts and deletes found by
``outlast audit verify``."""

from __future__ import annotations

import hashlib
import time
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest
import sqlalchemy as sa
from click.testing import CliRunner

from outlast.cli import main
from tests.conftest import MASTER_KEY
from tests.policy.conftest import SECRET, policy_document

REPLY = "[[reply:hello there]]"


def ask(url: str, key: str, route: str = "to-anthropic", text: str = REPLY) -> httpx.Response:
    with httpx.Client(base_url=url, timeout=30) as http:
        return http.post("/v1/messages", headers={"x-api-key": key, "anthropic-version": "2023-06-01"},
                         json={"model": route, "max_tokens": 50, "messages": [{"role": "user", "content": text}]})


@pytest.fixture
def gov(sim: Any, tmp_path: Path) -> Any:
    """Two replicas of one configuration sharing one store, and the CLI pointed at it."""
    import yaml

    from outlast.app import build_gateway
    from outlast.config import validate
    from outlast.serving import BackgroundServer

    store = f"sqlite:///{tmp_path / 'gov.db'}"
    document = policy_document(sim.url, store=store, governance={"key_refresh": 0.2})
    config_file = tmp_path / "outlast.yaml"
    config_file.write_text(yaml.safe_dump(document))
    one = build_gateway(validate(document), data_directory=tmp_path)
    two = build_gateway(validate(document), data_directory=tmp_path)
    with BackgroundServer(one) as a, BackgroundServer(two) as b:
        a.gateway, b.gateway = one, two
        yield {"a": a, "b": b, "config": str(config_file), "store": store, "engine": sa.create_engine(store)}


def cli(gov: Any, *args: str) -> Any:
    result = CliRunner().invoke(main, [*args, "--config", gov["config"]], catch_exceptions=False)
    return result


def create(gov: Any, *args: str) -> tuple[str, str]:
    result = cli(gov, "keys", "create", *args)
    assert result.exit_code == 0, result.output
    key = next(line.split()[-1] for line in result.output.splitlines() if "olk_" in line)
    return key, key.split("_")[1]


def test_a_key_is_shown_once_stored_hashed_and_revoked_on_every_replica(gov: Any) -> None:
    key, key_id = create(gov, "--team", "payments")
    with gov["engine"].connect() as conn:
        stored = conn.execute(sa.text("SELECT * FROM gov_keys")).mappings().all()
    assert len(stored) == 1 and stored[0]["team"] == "payments"
    assert key not in str(dict(stored[0])) and stored[0]["hash"] == hashlib.sha256(
        key.split("_", 2)[2].encode()).hexdigest()
    listed = cli(gov, "keys", "list")
    assert key_id in listed.output and key not in listed.output
    assert ask(gov["a"].url, key).status_code == 200
    assert ask(gov["b"].url, key).status_code == 200
    assert ask(gov["a"].url, key[:-2] + "xx").status_code == 401
    assert ask(gov["a"].url, MASTER_KEY).status_code == 200  # the master key still works
    assert cli(gov, "keys", "revoke", key_id).exit_code == 0
    deadline = time.monotonic() + 5
    statuses: tuple[int, int] = (0, 0)
    while time.monotonic() < deadline:
        statuses = (ask(gov["a"].url, key).status_code, ask(gov["b"].url, key).status_code)
        if statuses == (401, 401):
            break
        time.sleep(0.1)
    assert statuses == (401, 401)


def test_a_key_limits_rate_class_and_routes(gov: Any) -> None:
    limited, _ = create(gov, "--team", "ops", "--rpm", "2")
    assert [ask(gov["a"].url, limited).status_code for _ in range(3)] == [200, 200, 429]
    capped, _ = create(gov, "--team", "ops", "--max-class", "internal")
    assert ask(gov["a"].url, capped).status_code == 200
    refused = ask(gov["a"].url, capped, text=f"{SECRET} {REPLY}")
    assert refused.status_code == 403 and "up to 'internal'" in refused.json()["error"]["message"]
    routed, _ = create(gov, "--team", "ops", "--routes", "to-openai")
    assert ask(gov["a"].url, routed, route="to-openai").status_code == 200
    assert ask(gov["a"].url, routed, route="to-anthropic").status_code == 403


def _audit_rows(gov: Any) -> list[dict[str, Any]]:
    gov["a"].gateway.governance.audit.flush()
    with gov["engine"].connect() as conn:
        return [dict(r) for r in conn.execute(sa.text("SELECT * FROM gov_audit ORDER BY seq")).mappings()]


def test_every_routing_decision_is_audited_and_the_team_recorded(gov: Any, sim: Any) -> None:
    key, _ = create(gov, "--team", "research")
    assert ask(gov["a"].url, key).status_code == 200
    sim.add_fault(vendor="anthropic", model="claude-opus-4-6", mode="status", status=529)
    assert ask(gov["a"].url, key, route="gov-secret", text=f"{SECRET} {REPLY}").status_code == 403
    rows = _audit_rows(gov)
    records = [orjson.loads(r["record"]) for r in rows]
    assert [r["team"] for r in records] == ["research", "research"]
    served, refused = records
    assert served["served_by"] == "anthropic/claude-sonnet-4-6" and served["data_class"] == "public"
    assert refused["data_class"] == "secret" and refused["found"] == ["AWS Access Key"]
    assert refused["served_by"] is None and refused["candidates"] == ["anthropic/claude-opus-4-6"]
    assert set(refused["excluded"]) == {"openai/gpt-5.1", "anthropic-backup/claude-haiku-4-5-20251001"}
    assert refused["attempts"][0]["outcome"] == "overloaded"
    assert SECRET not in str(rows)
    verified = cli(gov, "audit", "verify")
    assert verified.exit_code == 0 and "2 records" in verified.output
    exported = cli(gov, "audit", "export")
    lines = [orjson.loads(line) for line in exported.output.splitlines()]
    assert [line["seq"] for line in lines] == [1, 2] and all("hash" in line for line in lines)


@pytest.mark.parametrize("tamper", ["edit", "insert", "delete", "delete-last"])
def test_audit_verify_finds_edited_inserted_and_deleted_records(gov: Any, tamper: str) -> None:
    for _ in range(4):
        assert ask(gov["a"].url, MASTER_KEY).status_code == 200
    rows = _audit_rows(gov)
    assert len(rows) == 4
    assert cli(gov, "audit", "verify").exit_code == 0
    with gov["engine"].begin() as conn:
        if tamper == "edit":
            record = orjson.loads(rows[1]["record"])
            record["served_by"] = "openai/gpt-5.1"
            conn.execute(sa.text("UPDATE gov_audit SET record = :r WHERE seq = 2"),
                         {"r": orjson.dumps(record, option=orjson.OPT_SORT_KEYS).decode()})
        elif tamper == "insert":
            # make room in the middle (in two steps: seq is unique)
            conn.execute(sa.text("UPDATE gov_audit SET seq = -(seq + 1) WHERE seq >= 3"))
            conn.execute(sa.text("UPDATE gov_audit SET seq = -seq WHERE seq < 0"))
            conn.execute(sa.text("INSERT INTO gov_audit (seq, at, record, prev, hash) VALUES (3, 0, '{}', :p, :h)"),
                         {"p": rows[1]["hash"], "h": "0" * 64})
        elif tamper == "delete":
            conn.execute(sa.text("DELETE FROM gov_audit WHERE seq = 2"))
        else:
            conn.execute(sa.text("DELETE FROM gov_audit WHERE seq = 4"))
    result = cli(gov, "audit", "verify")
    assert result.exit_code == 1
    expected = {"edit": "record 2: content does not match", "insert": "record 3: content does not match",
                "delete": "records 2..2 are missing", "delete-last": "records 4..4 are missing at the end"}[tamper]
    assert expected in result.output
