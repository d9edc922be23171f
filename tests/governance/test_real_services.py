"""Governance on the real engines: the audit chain in PostgreSQL, written by two replicas at once
and checked by ``outlast audit verify`` (edits, inserts and deletes found), and per-key rate limits
counted in Redis, so one replica refuses what another already spent."""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import anthropic
import openai
import orjson
import pytest
import sqlalchemy as sa
from click.testing import CliRunner

from outlast.cli import main
from outlast.store.sql import engine_url
from tests.conftest import MASTER_KEY
from tests.policy.conftest import SECRET, policy_document

REPLY = "[[reply:audited]]"


@contextlib.contextmanager
def _replicas(document: dict[str, Any], tmp_path: Path) -> Iterator[tuple[Any, Any]]:
    from outlast.app import build_gateway
    from outlast.config import validate
    from outlast.serving import BackgroundServer

    one = build_gateway(validate(document), data_directory=tmp_path / "one")
    two = build_gateway(validate(document), data_directory=tmp_path / "two")
    with BackgroundServer(one) as a, BackgroundServer(two) as b:
        a.gateway, b.gateway = one, two
        yield a, b


def _cli(config: Path, *args: str) -> Any:
    return CliRunner().invoke(main, [*args, "--config", str(config)], catch_exceptions=False)


# --------------------------------------------------------------------------- audit on PostgreSQL


@pytest.fixture
def pg_audit(sim: Any, pg_url: str, tmp_path: Path) -> Iterator[dict[str, Any]]:
    """Two replicas sharing a PostgreSQL store, after traffic through both at once."""
    import yaml

    # Replicas with data directories of their own share one audit key only when it is configured.
    document = policy_document(sim.url, store=pg_url, record=False,
                               governance={"audit_key": "replicas-share-this-audit-key"})
    config = tmp_path / "outlast.yaml"
    config.write_text(yaml.safe_dump(document))
    with _replicas(document, tmp_path) as (a, b):
        clients = [anthropic.Anthropic(base_url=s.url, api_key=MASTER_KEY, max_retries=0, timeout=30) for s in (a, b)]
        failures: list[BaseException] = []

        def traffic(client: Any) -> None:
            try:
                for _ in range(5):
                    client.messages.create(model="to-anthropic", max_tokens=20,
                                           messages=[{"role": "user", "content": REPLY}])
            except BaseException as error:  # reported below
                failures.append(error)

        threads = [threading.Thread(target=traffic, args=(c,)) for c in clients]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        assert not failures
        with pytest.raises(anthropic.PermissionDeniedError):  # refused by policy: audited too
            clients[1].messages.create(model="gov-none", max_tokens=20,
                                       messages=[{"role": "user", "content": f"{SECRET} {REPLY}"}])
        for server in (a, b):
            server.gateway.governance.audit.flush()
        engine = sa.create_engine(engine_url(pg_url))
        try:
            yield {"config": config, "engine": engine}
        finally:
            engine.dispose()


def _records(engine: sa.Engine) -> list[dict[str, Any]]:
    with engine.connect() as conn:
        return [dict(r) for r in conn.execute(sa.text("SELECT * FROM gov_audit ORDER BY seq")).mappings()]


def test_two_replicas_append_one_intact_chain_in_postgresql(pg_audit: Any) -> None:
    rows = _records(pg_audit["engine"])
    assert [r["seq"] for r in rows] == list(range(1, 12))
    records = [orjson.loads(r["record"]) for r in rows]
    assert sum(r["served_by"] == "anthropic/claude-sonnet-4-6" for r in records) == 10
    refused = next(r for r in records if r["served_by"] is None)
    assert refused["data_class"] == "secret" and refused["found"] == ["AWS Access Key"]
    assert SECRET not in str(rows)
    assert all(rows[i]["prev"] == rows[i - 1]["hash"] for i in range(1, len(rows)))
    verified = _cli(pg_audit["config"], "audit", "verify")
    assert verified.exit_code == 0 and "ok: 11 records" in verified.output
    exported = _cli(pg_audit["config"], "audit", "export")
    assert [orjson.loads(line)["seq"] for line in exported.output.splitlines()] == list(range(1, 12))


@pytest.mark.parametrize("tamper", ["edit", "insert", "delete", "delete-last", "cut-tail-move-head"])
def test_audit_verify_finds_tampering_in_postgresql(pg_audit: Any, tamper: str) -> None:
    rows = _records(pg_audit["engine"])
    with pg_audit["engine"].begin() as conn:
        if tamper == "edit":
            record = orjson.loads(rows[4]["record"])
            record["served_by"] = "openai/gpt-5.1"
            conn.execute(sa.text("UPDATE gov_audit SET record = :r WHERE seq = 5"),
                         {"r": orjson.dumps(record, option=orjson.OPT_SORT_KEYS).decode()})
        elif tamper == "insert":
            conn.execute(sa.text("UPDATE gov_audit SET seq = -(seq + 1) WHERE seq >= 6"))
            conn.execute(sa.text("UPDATE gov_audit SET seq = -seq WHERE seq < 0"))
            conn.execute(sa.text("INSERT INTO gov_audit (seq, at, record, prev, hash) VALUES (6, 0, '{}', :p, :h)"),
                         {"p": rows[4]["hash"], "h": "0" * 64})
        elif tamper == "delete":
            conn.execute(sa.text("DELETE FROM gov_audit WHERE seq = 5"))
        elif tamper == "delete-last":
            conn.execute(sa.text("DELETE FROM gov_audit WHERE seq = 11"))
        else:  # the last two cut off, and the head moved back to name the new last record
            conn.execute(sa.text("DELETE FROM gov_audit WHERE seq > 9"))
            conn.execute(sa.text("UPDATE gov_audit_head SET seq = 9, hash = :h"), {"h": rows[8]["hash"]})
    result = _cli(pg_audit["config"], "audit", "verify")
    assert result.exit_code == 1 and "TAMPERED" in result.output
    expected = {"edit": "record 5: content does not match", "insert": "record 6: content does not match",
                "delete": "records 5..5 are missing", "delete-last": "records 11..11 are missing at the end",
                "cut-tail-move-head": "the chain's head is not signed"}[tamper]
    assert expected in result.output


# --------------------------------------------------------------------------- rate limits in Redis


@pytest.fixture
def shared_limits(sim: Any, redis_url: str, tmp_path: Path) -> Iterator[tuple[Any, Any]]:
    document = policy_document(sim.url, store=f"sqlite:///{tmp_path / 'limits.db'}", state=redis_url,
                               record=False)
    # Both replicas in the middle of the same minute: the count never straddles a window.
    now = (time.time() // 60) * 60 + 30
    with _replicas(document, tmp_path) as (a, b):
        for server in (a, b):
            server.gateway.governance.limiter.clock = lambda: now
        yield a, b


def test_a_keys_rate_limit_is_shared_by_replicas_through_redis(shared_limits: Any, sim: Any) -> None:
    from outlast.governance.keys import create_key

    a, b = shared_limits
    engine = a.gateway.governance.engine
    limited, _ = create_key(engine, "ops", rpm=3)
    other, _ = create_key(engine, "ops", rpm=3)
    first = anthropic.Anthropic(base_url=a.url, api_key=limited, max_retries=0, timeout=30)
    for _ in range(3):
        first.messages.create(model="to-anthropic", max_tokens=20, messages=[{"role": "user", "content": REPLY}])
    # the second replica refuses, in each caller's own dialect
    with pytest.raises(anthropic.RateLimitError) as refused:
        anthropic.Anthropic(base_url=b.url, api_key=limited, max_retries=0, timeout=30).messages.create(
            model="to-anthropic", max_tokens=20, messages=[{"role": "user", "content": REPLY}])
    body = refused.value.response.json()
    assert body["type"] == "error" and body["error"]["type"] == "rate_limit_error"
    assert "3 requests a minute" in body["error"]["message"]
    assert 1 <= int(refused.value.response.headers["retry-after"]) <= 60
    with pytest.raises(openai.RateLimitError) as refused_openai:
        openai.OpenAI(base_url=f"{b.url}/v1", api_key=limited, max_retries=0, timeout=30).chat.completions.create(
            model="to-openai", messages=[{"role": "user", "content": REPLY}])
    assert refused_openai.value.response.json()["error"]["code"] == "rate_limit_exceeded"  # as OpenAI says it
    assert limited not in refused_openai.value.response.text
    assert len(sim.requests()) == 3  # refused requests never reach a provider
    # the limit is the key's own: another key is still served by both
    for server in (a, b):
        anthropic.Anthropic(base_url=server.url, api_key=other, max_retries=0, timeout=30).messages.create(
            model="to-anthropic", max_tokens=20, messages=[{"role": "user", "content": REPLY}])
    assert len(sim.requests()) == 5


def test_two_writers_beginning_an_empty_chain_at_once_both_append(pg_url: str,
                                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    """Two replicas' first records: neither finds a head row to lock, both take sequence number 1, and
    PostgreSQL refuses the second. It must try again after the first, not lose its records."""
    from outlast.governance import audit
    from outlast.store.sql import SqlStore

    store = SqlStore(pg_url)
    store.migrate()
    both_read_the_head = threading.Barrier(2, timeout=30)
    waited: set[int] = set()
    known_entries = audit._known_entries

    def after_reading_the_head(conn: sa.Connection, entries: Any) -> set[str]:
        if threading.get_ident() not in waited:  # first tries only: both have seen an empty chain
            waited.add(threading.get_ident())
            both_read_the_head.wait()
        return known_entries(conn, entries)

    monkeypatch.setattr(audit, "_known_entries", after_reading_the_head)
    appended: list[int] = []
    failures: list[BaseException] = []

    def writer(name: str) -> None:
        try:
            appended.append(audit.append(store.engine, [(time.time(), {"who": name})], entries=[name]))
        except BaseException as error:  # reported below
            failures.append(error)

    threads = [threading.Thread(target=writer, args=(name,)) for name in ("one", "two")]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    try:
        assert failures == [] and appended == [1, 1]
        verification = audit.verify(store.engine)
        assert verification.ok and verification.records == 2, verification.problems
        assert sorted(r["entry"] for r in _records(store.engine)) == ["one", "two"]
    finally:
        store.close()
