"""Virtual keys (shown once, stored hashed, revoked everywhere), rate limits, the team on the exchange,
and the audit chain: every routing decision recorded; edits, inserts and deletes found by
``outlast audit verify``."""

from __future__ import annotations

import contextlib
import hashlib
import os
import time
from collections.abc import Iterator
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


@contextlib.contextmanager
def replicas(sim: Any, tmp_path: Path, **overrides: Any) -> Iterator[dict[str, Any]]:
    """Two replicas of one configuration sharing one store and data directory, and the CLI pointed
    at them; ``overrides`` change the configuration."""
    import yaml

    from outlast.app import build_gateway
    from outlast.config import validate
    from outlast.serving import BackgroundServer

    store = f"sqlite:///{tmp_path / 'gov.db'}"
    document = policy_document(sim.url, store=store, **overrides)
    document["governance"] = {"key_refresh": 0.2, **document.get("governance", {})}
    document = {k: v for k, v in document.items() if v is not None}
    config_file = tmp_path / "outlast.yaml"
    config_file.write_text(yaml.safe_dump(document))
    one = build_gateway(validate(document), data_directory=tmp_path)
    two = build_gateway(validate(document), data_directory=tmp_path)
    engine = sa.create_engine(store)
    try:
        with BackgroundServer(one) as a, BackgroundServer(two) as b:
            a.gateway, b.gateway = one, two
            yield {"a": a, "b": b, "config": str(config_file), "store": store, "engine": engine, "data": tmp_path}
    finally:
        engine.dispose()


@pytest.fixture
def gov(sim: Any, tmp_path: Path) -> Iterator[dict[str, Any]]:
    with replicas(sim, tmp_path) as found:
        yield found


def cli(gov: Any, *args: str) -> Any:
    """``outlast ARGS --config ...`` with the replicas' data directory (where the audit key is)."""
    return CliRunner().invoke(main, [*args, "--config", gov["config"]], catch_exceptions=False,
                              env={"OUTLAST_DATA_DIR": str(gov["data"])})


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
    for replica in ("a", "b"):
        gov[replica].gateway.governance.audit.flush()
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


@pytest.mark.parametrize("tamper", ["edit", "insert", "delete", "delete-last", "cut-tail-move-head",
                                    "cut-tail-forge-head"])
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
        elif tamper == "delete-last":
            conn.execute(sa.text("DELETE FROM gov_audit WHERE seq = 4"))
        else:
            # Cut the last two records off and make the head name the new last one, as the head once
            # was: its hash (as an unsigned head held it), or a made-up signature.
            conn.execute(sa.text("DELETE FROM gov_audit WHERE seq > 2"))
            forged = rows[1]["hash"] if tamper == "cut-tail-move-head" else hashlib.sha256(b"forged").hexdigest()
            conn.execute(sa.text("UPDATE gov_audit_head SET seq = 2, hash = :h"), {"h": forged})
    result = cli(gov, "audit", "verify")
    assert result.exit_code == 1
    expected = {"edit": "record 2: content does not match", "insert": "record 3: content does not match",
                "delete": "records 2..2 are missing", "delete-last": "records 4..4 are missing at the end",
                "cut-tail-move-head": "the chain's head is not signed",
                "cut-tail-forge-head": "the chain's head does not match its signature"}[tamper]
    assert expected in result.output


def test_without_an_audit_key_the_first_writer_makes_a_private_one_and_verify_names_it(gov: Any) -> None:
    from outlast.governance.audit import DEFAULT_KEY, verify

    assert ask(gov["a"].url, MASTER_KEY).status_code == 200
    assert ask(gov["b"].url, MASTER_KEY).status_code == 200
    assert len(_audit_rows(gov)) == 2
    key_file = gov["data"] / "audit.key"
    assert key_file.stat().st_mode & 0o777 == 0o600  # one key, made by whichever replica wrote first
    assert len(bytes.fromhex(key_file.read_text().strip())) == 32
    assert not verify(gov["engine"], DEFAULT_KEY).ok  # the public key cannot recompute the chain
    verified = cli(gov, "audit", "verify")
    assert verified.exit_code == 0, verified.output
    assert f"key: the key file {key_file}" in verified.output and "2 records" in verified.output
    assert "warning" not in verified.output
    # verify run where the key file is not: it says which key it used, warns, and finds nothing verifies
    elsewhere = CliRunner().invoke(main, ["audit", "verify", "--config", gov["config"]],
                                   env={"OUTLAST_DATA_DIR": str(gov["data"] / "elsewhere")})
    assert elsewhere.exit_code == 1
    assert "built-in key (public" in elsewhere.output and "warning:" in elsewhere.output


def test_a_chain_begun_with_the_builtin_key_is_continued_with_it_and_verify_warns(sim: Any, tmp_path: Path) -> None:
    from outlast.governance.audit import DEFAULT_KEY, append
    from outlast.store.sql import SqlStore

    store = SqlStore(f"sqlite:///{tmp_path / 'gov.db'}")
    store.migrate()
    append(store.engine, [(1.0, {"who": "an older outlast"})], DEFAULT_KEY)  # before key files existed
    store.engine.dispose()
    with replicas(sim, tmp_path) as found:
        assert ask(found["a"].url, MASTER_KEY).status_code == 200
        assert len(_audit_rows(found)) == 2
        assert not (tmp_path / "audit.key").exists()
        verified = cli(found, "audit", "verify")
    assert verified.exit_code == 0, verified.output
    assert "key: outlast's built-in key (public" in verified.output
    assert "warning: the audit log uses outlast's built-in key, which is public" in verified.output


def test_with_an_audit_key_configured_verify_says_so_and_no_key_file_is_made(sim: Any, tmp_path: Path) -> None:
    with replicas(sim, tmp_path, governance={"audit_key": "a-long-audit-secret-0123456789"}) as found:
        assert ask(found["a"].url, MASTER_KEY).status_code == 200
        _audit_rows(found)
        verified = cli(found, "audit", "verify")
    assert verified.exit_code == 0 and "key: governance.audit_key" in verified.output
    assert "a-long-audit-secret" not in verified.output
    assert not (tmp_path / "audit.key").exists()


# --------------------------------------------------------------------------- keys without a master key


def ask_openai(url: str, key: str | None, route: str = "to-anthropic") -> httpx.Response:
    headers = {"authorization": f"Bearer {key}"} if key is not None else {}
    with httpx.Client(base_url=url, timeout=30) as http:
        return http.post("/v1/chat/completions", headers=headers,
                         json={"model": route, "messages": [{"role": "user", "content": REPLY}]})


def ask_anthropic_without_a_key(url: str) -> httpx.Response:
    with httpx.Client(base_url=url, timeout=30) as http:
        return http.post("/v1/messages", headers={"anthropic-version": "2023-06-01"},
                         json={"model": "to-anthropic", "max_tokens": 50,
                               "messages": [{"role": "user", "content": REPLY}]})


def test_without_a_master_key_every_request_needs_a_key_once_a_virtual_key_exists(sim: Any, tmp_path: Path) -> None:
    with replicas(sim, tmp_path, master_key=None) as found:
        url = found["a"].url
        assert ask_openai(url, None).status_code == 200  # no keys at all: open, as documented
        assert ask_openai(url, "sk-anything").status_code == 200
        key, key_id = create(found, "--team", "payments")
        assert ask_openai(url, key).status_code == 200  # an unknown key makes the ring look at once
        refused = ask_openai(url, None)
        assert refused.status_code == 401
        error = refused.json()["error"]  # OpenAI's shape, as its SDK expects a bad key
        assert error["code"] == "invalid_api_key" and "virtual keys" in error["message"]
        anthropic_refused = ask_anthropic_without_a_key(url)
        assert anthropic_refused.status_code == 401
        body = anthropic_refused.json()  # Anthropic's shape
        assert body["type"] == "error" and body["error"]["type"] == "authentication_error"
        assert "virtual keys" in body["error"]["message"]
        assert ask_openai(url, "sk-anything").status_code == 401
        assert ask(url, key).status_code == 200
        # revoking the last key does not open the gateway again
        assert cli(found, "keys", "revoke", key_id).exit_code == 0
        deadline = time.monotonic() + 10
        while ask(url, key).status_code != 401:
            assert time.monotonic() < deadline, "the revocation never arrived"
            time.sleep(0.1)
        assert ask_openai(url, None).status_code == 401
        assert ask_anthropic_without_a_key(found["b"].url).status_code == 401


def test_with_classification_off_a_keys_routes_and_class_limit_still_hold(sim: Any, tmp_path: Path) -> None:
    with replicas(sim, tmp_path, governance={"classify": False}) as found:
        url = found["a"].url
        # the master key: no classification, so a secret may go to a provider not approved for it
        sim.add_fault(vendor="anthropic", model="claude-opus-4-6", mode="status", status=529)
        served = ask(url, MASTER_KEY, route="gov-secret", text=f"{SECRET} {REPLY}")
        assert served.status_code == 200 and served.headers["x-outlast-served-by"] == "openai/gpt-5.1"
        sim.reset()
        routed, _ = create(found, "--team", "ops", "--routes", "to-openai")
        assert ask(url, routed, route="to-openai").status_code == 200
        refused = ask(url, routed, route="to-anthropic")
        assert refused.status_code == 403 and "may not call 'to-anthropic'" in refused.json()["error"]["message"]
        capped, _ = create(found, "--team", "ops", "--max-class", "internal")
        assert ask(url, capped).status_code == 200
        sim.reset()
        over = ask(url, capped, route="gov-secret", text=f"{SECRET} {REPLY}")
        assert over.status_code == 403 and "up to 'internal'" in over.json()["error"]["message"]
        assert SECRET not in over.text
        assert sim.requests() == []  # refused before any provider saw it


def test_a_key_limited_to_a_pattern_route_may_call_the_models_it_routes(gov: Any) -> None:
    key, _ = create(gov, "--team", "ops", "--routes", "gpt-*")
    served = ask(gov["a"].url, key, route="gpt-4.1")  # routed by the configured pattern gpt-*
    assert served.status_code == 200 and served.headers["x-outlast-served-by"] == "openai/gpt-4.1"
    assert ask(gov["a"].url, key, route="to-openai").status_code == 403
    direct, _ = create(gov, "--team", "ops", "--routes", "to-openai,openai/gpt-5.1")
    assert ask(gov["a"].url, direct, route="openai/gpt-5.1").status_code == 200
    assert ask(gov["a"].url, direct, route="anthropic/claude-sonnet-4-6").status_code == 403


def test_keys_create_refuses_routes_that_are_not_configured(gov: Any) -> None:
    result = cli(gov, "keys", "create", "--team", "ops", "--routes", "to-openai,to-opneai")
    assert result.exit_code == 2
    assert "'to-opneai' is not a configured route" in result.output and "to-openai," in result.output
    assert "olk_" not in result.output
    with gov["engine"].connect() as conn:
        assert conn.execute(sa.text("SELECT count(*) FROM gov_keys")).scalar() == 0
    assert cli(gov, "keys", "create", "--team", "ops", "--routes", "gpt-*,local/qwen3:8b").exit_code == 0


def test_keys_create_without_a_configuration_warns_that_routes_cannot_be_checked(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)  # no ./outlast.yaml
    env = {"OUTLAST_DATA_DIR": str(tmp_path), "OUTLAST_CONFIG": ""}
    result = CliRunner().invoke(main, ["keys", "create", "--team", "ops", "--routes", "anything"], env=env)
    assert result.exit_code == 0, result.output
    assert "warning: no routes are configured here" in result.output and "olk_" in result.output


# --------------------------------------------------------------------------- the writer when the store is away


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def _unmigrated(tmp_path: Path) -> sa.Engine:
    """A store whose audit tables do not exist yet: every append fails until they do."""
    return sa.create_engine(f"sqlite:///{tmp_path / 'away.db'}")


def _bring_back(engine: sa.Engine) -> None:
    from outlast.governance.tables import metadata

    metadata.create_all(engine)


def _chain(engine: sa.Engine) -> list[str]:
    with engine.connect() as conn:
        return [orjson.loads(r)["n"] for r in conn.execute(sa.text("SELECT record FROM gov_audit ORDER BY seq"))
                .scalars()]


def test_records_the_store_refuses_are_kept_counted_and_written_in_order_when_it_is_back(tmp_path: Path) -> None:
    from outlast.governance.audit import AuditWriter, verify

    clock = Clock()
    engine = _unmigrated(tmp_path)
    writer = AuditWriter(engine, b"k" * 32, clock=clock, retry_after=1.0)
    for n in range(3):
        writer.add({"n": f"r{n}"})
    assert writer._drain() is False
    assert (writer.failures, writer.unwritten, writer.written) == (1, 3, 0)
    writer.add({"n": "r3"})
    assert writer._drain() is False and writer.failures == 1  # backing off: not tried again yet
    clock.now = 1.5
    assert writer._drain() is False and writer.failures == 2  # tried, still away; next wait doubled
    _bring_back(engine)
    clock.now = 2.5
    assert writer._drain() is False  # within the doubled backoff
    clock.now = 3.6
    assert writer._drain() is True
    assert (writer.written, writer.unwritten, writer.failing) == (4, 0, False)
    assert _chain(engine) == ["r0", "r1", "r2", "r3"]
    assert verify(engine, b"k" * 32).ok


def test_beyond_what_it_holds_the_writer_spools_and_any_writer_appends_the_spool_first(tmp_path: Path) -> None:
    from outlast.governance.audit import AuditWriter, verify

    clock = Clock()
    engine = _unmigrated(tmp_path)
    spool = tmp_path / "data"
    writer = AuditWriter(engine, b"k" * 32, clock=clock, spool=spool, hold=4)
    for n in range(10):
        writer.add({"n": f"r{n}"})
    assert writer._drain() is False
    files = list(spool.glob("audit-spool-*.jsonl"))
    assert len(files) == 1 and files[0].stat().st_mode & 0o777 == 0o600
    assert writer.unwritten == 10 and writer.spooled == 8 and len(writer.pending) == 2
    writer.add({"n": "r10"})
    writer.close()  # the store is still away: what is left is spooled too, not lost
    assert writer.unwritten == 11 and len(list(spool.glob("audit-spool-*.jsonl"))) == 2
    # the next run (or another replica) appends the spool files, oldest first, before its own records
    _bring_back(engine)
    again = AuditWriter(engine, b"k" * 32, clock=clock, spool=spool)
    again.add({"n": "r11"})
    assert again._drain() is True
    assert _chain(engine) == [f"r{n}" for n in range(12)]
    assert list(spool.glob("*spool*")) == [] and verify(engine, b"k" * 32).ok


def test_a_writer_that_cannot_read_its_key_file_keeps_the_records(tmp_path: Path) -> None:
    from outlast.governance.audit import AuditWriter, resolve_key

    (tmp_path / "audit.key").write_text("not hex at all")
    os.chmod(tmp_path / "audit.key", 0o600)
    engine = sa.create_engine(f"sqlite:///{tmp_path / 'gov.db'}")
    _bring_back(engine)
    clock = Clock()
    writer = AuditWriter(engine, lambda: resolve_key(None, tmp_path, engine, create=True), clock=clock)
    writer.add({"n": "r0"})
    assert writer._drain() is False and writer.unwritten == 1
    (tmp_path / "audit.key").write_text("ab" * 32)
    clock.now = 10
    assert writer._drain() is True and _chain(engine) == ["r0"]
    assert writer.key_source == f"the key file {tmp_path / 'audit.key'}"


def test_metrics_are_public_and_name_no_team_key_or_data_class(gov: Any, sim: Any) -> None:
    key, key_id = create(gov, "--team", "payments-secret-project")
    assert ask(gov["a"].url, key).status_code == 200
    sim.add_fault(vendor="anthropic", model="claude-opus-4-6", mode="status", status=529)
    assert ask(gov["a"].url, key, route="gov-secret", text=f"{SECRET} {REPLY}").status_code == 403
    assert ask(gov["a"].url, key, route="made-up-model-named-by-a-caller").status_code == 404
    _audit_rows(gov)
    scraped = httpx.get(f"{gov['a'].url}/metrics", timeout=10)  # as Prometheus scrapes: no credentials
    assert scraped.status_code == 200
    text = scraped.text
    assert 'route="to-anthropic"' in text  # what it is for: counts by route, provider and model
    assert "outlast_audit_records_unwritten 0" in text and "outlast_audit_write_failures_total 0" in text
    for private in ("payments-secret-project", key_id, key, MASTER_KEY, SECRET, "made-up-model",
                    'data_class="', 'team="', 'key="', 'key_id="'):
        assert private not in text, private


def test_a_spool_file_cut_short_by_the_store_keeps_what_is_left_under_its_own_name(tmp_path: Path) -> None:
    from outlast.governance.audit import AuditWriter, verify

    clock = Clock()
    engine = _unmigrated(tmp_path)
    spool = tmp_path / "data"
    first = AuditWriter(engine, b"k" * 32, clock=clock, spool=spool, hold=0)
    for n in range(6):
        first.add({"n": f"r{n}"})
    first.close()  # the store is away: all six go to one spool file
    (name,) = [p.name for p in spool.glob("audit-spool-*.jsonl")]
    _bring_back(engine)
    again = AuditWriter(engine, b"k" * 32, clock=clock, spool=spool, batch=2)
    real_write, calls = again._write, []

    def write_once(records: list) -> bool:  # the store goes away again after the first batch
        calls.append(len(records))
        return real_write(records) if len(calls) == 1 else False

    again._write = write_once  # type: ignore[method-assign]
    assert again._drain() is False
    assert _chain(engine) == ["r0", "r1"]
    (left,) = list(spool.iterdir())
    assert left.name == name and left.stat().st_mode & 0o777 == 0o600  # its place in order kept
    assert [orjson.loads(line)["record"]["n"] for line in left.read_bytes().splitlines()] == ["r2", "r3", "r4", "r5"]
    again._write = real_write  # type: ignore[method-assign]
    assert again._drain(force=True) is True
    assert _chain(engine) == [f"r{n}" for n in range(6)] and verify(engine, b"k" * 32).ok
    assert list(spool.iterdir()) == []


# --------------------------------------------------------------------------- audit through the journal


def test_a_recording_gateway_journals_its_audit_records_and_each_is_appended_once(sim: Any, tmp_path: Path) -> None:
    """No audit thread in the gateway: the records ride in the journal with the exchanges (a refusal
    that stores no exchange too), the ingester appends them, and a journal read twice (a crash
    before its checkpoint moved) appends nothing twice."""
    import threading

    from outlast.governance.audit import JournaledAudit
    from outlast.store.ingest import drain
    from outlast.store.journal import slots
    from outlast.store.sql import SqlStore

    with replicas(sim, tmp_path) as found:
        assert isinstance(found["a"].gateway.governance.audit, JournaledAudit)
        assert not any(t.name == "outlast-audit" for t in threading.enumerate())
        assert ask(found["a"].url, MASTER_KEY).status_code == 200
        assert ask(found["a"].url, MASTER_KEY, route="no-such-route").status_code == 404
        assert ask(found["b"].url, MASTER_KEY).status_code == 200
        rows = _audit_rows(found)
        metrics = httpx.get(f"{found['a'].url}/metrics", timeout=10).text
    assert len(rows) == 3 and len({r["entry"] for r in rows}) == 3 and all(r["entry"] for r in rows)
    assert "outlast_journal_audit_records_total 2" in metrics
    (journal,) = (tmp_path / "journal").iterdir()  # one store, so one journal (a slot per replica)
    store = SqlStore(found["store"])
    try:
        read_again = 0
        for slot in slots(journal):  # as if every checkpoint had been lost: the whole journal again
            (slot / "checkpoint").write_text("0 0")
            read_again += drain(store, slot)
        with store.engine.connect() as conn:
            again = conn.execute(sa.text("SELECT count(*) FROM gov_audit")).scalar()
    finally:
        store.close()
    assert read_again == 2 and again == 3  # both exchanges read again; no audit record appended twice
    verified = cli(found, "audit", "verify")
    assert verified.exit_code == 0 and "3 records" in verified.output


def test_journaled_audit_records_wait_in_the_journal_while_the_key_file_cannot_be_read(tmp_path: Path) -> None:
    from outlast.store.ingest import drain
    from outlast.store.journal import JournalWriter
    from outlast.store.sql import SqlStore

    writer = JournalWriter(tmp_path / "journal" / "store")  # the slot is <data dir>/journal/<store>/<n>
    note = {"kind": "audit", "entry": "e-1", "at": 1.0, "record": {"exchange_id": "e-1", "who": "master key"}}
    writer.append(orjson.dumps(note) + b"\n")
    writer.close()
    (tmp_path / "audit.key").mkdir()  # unreadable as a key
    store = SqlStore(f"sqlite:///{tmp_path / 'o.db'}")
    store.migrate()

    def chain() -> int:
        with store.engine.connect() as conn:
            return int(conn.execute(sa.text("SELECT count(*) FROM gov_audit")).scalar() or 0)

    try:
        drain(store, writer.slot)
        assert chain() == 0 and not (writer.slot / "rejected.jsonl").exists()  # kept, not set aside
        (tmp_path / "audit.key").rmdir()
        drain(store, writer.slot)
        assert chain() == 1 and (tmp_path / "audit.key").exists()
    finally:
        store.close()


def test_a_gateway_that_does_not_record_journals_only_its_audit_records(sim: Any, tmp_path: Path) -> None:
    """``record: false``: nothing of the exchanges is kept, but the audit records go through a journal
    and its ingester like a recording gateway's, with no audit thread in the gateway."""
    import threading

    from outlast.governance.audit import JournaledAudit
    from outlast.store.journal import JournalReader, slots

    with replicas(sim, tmp_path, record=False) as found:
        gateway = found["a"].gateway
        assert isinstance(gateway.governance.audit, JournaledAudit) and not gateway.sinks
        assert not any(t.name == "outlast-audit" for t in threading.enumerate())
        assert ask(found["a"].url, MASTER_KEY).status_code == 200
        assert ask(found["a"].url, MASTER_KEY, route="no-such-route").status_code == 404
        metrics = httpx.get(f"{found['a'].url}/metrics", timeout=10).text
        rows = _audit_rows(found)
        with found["engine"].connect() as conn:
            exchanges = conn.execute(sa.text("SELECT count(*) FROM exchanges")).scalar()
        (journal,) = (tmp_path / "journal").iterdir()
        assert sum(JournalReader(slot).pending_records() for slot in slots(journal)) == 0
    assert [orjson.loads(r["record"])["model"] for r in rows] == ["to-anthropic", "no-such-route"]
    assert exchanges == 0  # the audit says who asked what; no request or answer was stored
    assert "outlast_journal_audit_records_total 2" in metrics
    verified = cli(found, "audit", "verify")
    assert verified.exit_code == 0 and "2 records" in verified.output
