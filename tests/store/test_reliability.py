"""Crash and outage under load, with real processes and real servers.

- ``outlast serve`` killed with SIGKILL mid-stream: every answer a client received in full
  is in the store after a restart.
- PostgreSQL cut off mid-load (through a TCP proxy we control): no request fails, the journal
  is ingested when it is back, and every exchange is stored exactly once.
- PostgreSQL really stopped mid-load (``pg_ctl stop -m fast`` on a private cluster) and started
  again, under ``outlast serve``: the same, and every turn lands in the conversation its response
  named, though the database was away when it was named.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest
import sqlalchemy as sa
import yaml

from outlast.app import build_gateway
from outlast.config import validate
from outlast.serving import BackgroundServer, free_port
from outlast.store.sql import SqlStore
from tests.conftest import MASTER_KEY, gateway_document
from tests.store.pgcluster import BINARIES, PrivateCluster, find_binaries
from tests.store.tcpproxy import TcpProxy

pytestmark = pytest.mark.slow
HEADERS = {"authorization": f"Bearer {MASTER_KEY}"}


def _stream_once(client: httpx.Client, url: str, n: int) -> str | None:
    """One streamed chat; the exchange id if the client received the answer in full."""
    body = {"model": "to-openai", "stream": True, "messages": [{"role": "user", "content": f"request {n}"}]}
    try:
        with client.stream("POST", f"{url}/v1/chat/completions", json=body, headers=HEADERS) as response:
            if response.status_code != 200:
                return None
            exchange_id = response.headers["x-outlast-exchange-id"]
            lines = list(response.iter_lines())
    except httpx.HTTPError:
        return None
    return exchange_id if "data: [DONE]" in lines else None


def _serve(config: Path, port: int, env: dict[str, str]) -> subprocess.Popen[bytes]:
    process = subprocess.Popen([sys.executable, "-m", "outlast.cli", "serve", "--config", str(config),
                                "--port", str(port), "--log-level", "warning"], env=env,
                               stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=1).status_code == 200:
                return process
        except httpx.HTTPError:
            time.sleep(0.1)
    process.kill()
    raise AssertionError(f"outlast serve did not start: {process.stderr.read() if process.stderr else ''!r}")


def test_sigkill_under_streaming_load_loses_no_answer_a_client_received(sim: Any, tmp_path: Path) -> None:
    database = tmp_path / "outlast.db"
    config = tmp_path / "outlast.yaml"
    config.write_text(yaml.safe_dump(gateway_document(sim.url, store=f"sqlite:///{database}")))
    env = {**os.environ, "OUTLAST_DATA_DIR": str(tmp_path / "data")}
    sim.add_fault(vendor="openai", mode="slow", ttft_ms=5, gap_ms=3)  # answers take a while: some are mid-stream
    port = free_port()
    server = _serve(config, port, env)
    url = f"http://127.0.0.1:{port}"
    received: list[str] = []
    stop = threading.Event()

    def client(worker: int) -> None:
        with httpx.Client(timeout=30) as http:
            n = 0
            while not stop.is_set():
                exchange_id = _stream_once(http, url, worker * 100_000 + n)
                if exchange_id is not None:
                    received.append(exchange_id)
                n += 1

    with ThreadPoolExecutor(8) as pool:
        futures = [pool.submit(client, w) for w in range(8)]
        deadline = time.monotonic() + 20
        while len(received) < 150 and time.monotonic() < deadline:
            time.sleep(0.05)
        server.send_signal(signal.SIGKILL)
        server.wait(10)
        stop.set()
        for future in futures:
            future.result()
    assert len(received) >= 150
    restarted = _serve(config, port, env)
    try:
        # Each answer was in the journal before its last byte; the restarted gateway ingests
        # the journal the killed one left, a moment after it starts.
        store = SqlStore(f"sqlite:///{database}")
        deadline = time.monotonic() + 30
        while True:
            missing = [i for i in received if (row := store.get_exchange(i)) is None or row["response"] is None]
            if not missing or time.monotonic() > deadline:
                break
            time.sleep(0.2)
        stored = store.stats().exchanges
        # The audit records travel in the same journal, each in the same write as its exchange: every
        # answer a client received has its record, and the chain the ingester built is whole.
        while True:
            audited = _audited(store.engine)
            if set(received) <= audited or time.monotonic() > deadline:
                break
            time.sleep(0.2)
        store.close()
        verified = subprocess.run([sys.executable, "-m", "outlast.cli", "audit", "verify", "--config", str(config)],
                                  env=env, capture_output=True, text=True, timeout=60)
    finally:
        restarted.terminate()
        restarted.wait(10)
    assert missing == []
    assert stored >= len(received)
    assert set(received) - audited == set()
    assert verified.returncode == 0, verified.stdout + verified.stderr


def _audited(engine: sa.Engine) -> set[str]:
    """The exchange ids the audit chain has a record of, each exactly once."""
    with engine.connect() as conn:
        ids = [orjson.loads(r)["exchange_id"] for r in conn.execute(sa.text("SELECT record FROM gov_audit")).scalars()]
    assert len(ids) == len(set(ids))
    return set(ids)


def test_postgresql_cut_mid_load_fails_no_request_and_loses_or_duplicates_nothing(
        sim: Any, pg_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    SqlStore(pg_url).migrate()
    proxy = TcpProxy(("127.0.0.1", 5432))
    monkeypatch.setenv("OUTLAST_DATA_DIR", str(tmp_path / "data"))
    gateway = build_gateway(validate(gateway_document(
        sim.url, store=pg_url.replace(":5432/", f":{proxy.port}/"))))
    recorder: Any = gateway.sinks[0]
    statuses: list[int] = []
    ids: list[str] = []
    stop = threading.Event()
    try:
        with BackgroundServer(gateway) as server:
            def client(worker: int) -> None:
                with httpx.Client(timeout=30) as http:
                    n = 0
                    while not stop.is_set():
                        body = {"model": "to-anthropic", "max_tokens": 32, "stream": n % 2 == 0,
                                "messages": [{"role": "user", "content": f"load {worker}-{n}"}]}
                        response = http.post(f"{server.url}/v1/messages", json=body,
                                             headers={"x-api-key": MASTER_KEY})
                        statuses.append(response.status_code)
                        ids.append(response.headers["x-outlast-exchange-id"])
                        n += 1

            with ThreadPoolExecutor(6) as pool:
                futures = [pool.submit(client, w) for w in range(6)]
                time.sleep(1.0)
                proxy.cut()
                time.sleep(2.0)
                waiting_during_outage = recorder.pending  # served, durable in the journal
                proxy.restore()
                time.sleep(1.0)
                stop.set()
                for future in futures:
                    future.result()
            caught_up = recorder.wait_ingested(30)
    finally:
        proxy.close()
    assert statuses and set(statuses) == {200}
    assert waiting_during_outage > 0
    assert caught_up and recorder.pending == 0
    direct = SqlStore(pg_url)
    with direct.engine.connect() as conn:
        stored = conn.execute(sa.text("SELECT id FROM exchanges")).scalars().all()
        per_exchange = conn.execute(sa.text(
            "SELECT exchange_id, count(*) FROM messages GROUP BY exchange_id HAVING count(*) <> 2")).all()
    direct.close()
    assert sorted(stored) == sorted(ids)  # every one, once
    assert per_exchange == []  # each stored its question and answer exactly once


@pytest.fixture
def private_postgres() -> Iterator[PrivateCluster]:
    """A PostgreSQL cluster of the test's own, to stop and start; skipped without the binaries
    (a failure under ``OUTLAST_REQUIRE_SERVICES=1``)."""
    binaries = find_binaries()
    if binaries is None:
        message = f"no PostgreSQL binaries (initdb, pg_ctl) under {BINARIES}/*/bin"
        if os.environ.get("OUTLAST_REQUIRE_SERVICES") == "1":
            pytest.fail(message + " (OUTLAST_REQUIRE_SERVICES=1)")
        pytest.skip(message)
    with PrivateCluster(binaries) as cluster:
        yield cluster


def _streamed_turn(http: httpx.Client, url: str, messages: list[dict[str, str]]) -> tuple[str, str, str]:
    """One streamed chat: (exchange id, conversation header, answer); raises if it did not finish."""
    body = {"model": "to-openai", "stream": True, "messages": messages}
    with http.stream("POST", f"{url}/v1/chat/completions", json=body, headers=HEADERS) as response:
        assert response.status_code == 200, response.read()
        lines = list(response.iter_lines())
    assert "data: [DONE]" in lines, "the stream did not finish"
    text = ""
    for line in lines:
        if line.startswith("data: {"):
            choices = orjson.loads(line[6:]).get("choices") or [{}]
            text += choices[0].get("delta", {}).get("content") or ""
    return response.headers["x-outlast-exchange-id"], response.headers["x-outlast-conversation-id"], text


def test_postgresql_stopped_mid_load_and_started_again_fails_no_request_and_stores_everything_once(
        sim: Any, private_postgres: PrivateCluster, tmp_path: Path) -> None:
    pg = private_postgres
    config = tmp_path / "outlast.yaml"
    config.write_text(yaml.safe_dump(gateway_document(sim.url, store=pg.url)))
    env = {**os.environ, "OUTLAST_DATA_DIR": str(tmp_path / "data")}
    sim.add_fault(vendor="openai", mode="slow", ttft_ms=5, gap_ms=2)  # some answers are mid-stream at the stop
    port = free_port()
    server = _serve(config, port, env)
    url = f"http://127.0.0.1:{port}"
    lock = threading.Lock()
    state = {"database": "up"}
    # (conversation header, [(exchange id, database state when it finished)] per turn)
    conversations: list[tuple[str, list[tuple[str, str]]]] = []
    failures: list[str] = []
    stop = threading.Event()

    def client(worker: int) -> None:
        with httpx.Client(timeout=30) as http:
            n = 0
            while not stop.is_set():
                # A new conversation, then its continuation: named with the database up or down.
                history = [{"role": "user", "content": f"worker {worker} conversation {n}"}]
                try:
                    first_id, named, text = _streamed_turn(http, url, history)
                    with lock:
                        first = (first_id, state["database"])
                    history += [{"role": "assistant", "content": text}, {"role": "user", "content": "go on"}]
                    second_id, continued, _ = _streamed_turn(http, url, history)
                    with lock:
                        second = (second_id, state["database"])
                except (AssertionError, httpx.HTTPError, KeyError) as error:
                    failures.append(f"{type(error).__name__}: {error}")
                    return
                if continued != named:
                    failures.append(f"turn 2 said {continued!r}, turn 1 {named!r}")
                with lock:
                    conversations.append((named, [first, second]))
                n += 1

    def finished(database: str) -> int:
        with lock:
            return sum(1 for _, turns in conversations for _, when in turns if when == database)

    def load_until(database: str, count: int) -> None:
        deadline = time.monotonic() + 30
        while finished(database) < count and not failures and time.monotonic() < deadline:
            time.sleep(0.02)

    try:
        with ThreadPoolExecutor(4) as pool:
            futures = [pool.submit(client, w) for w in range(4)]
            try:
                load_until("up", 20)
                pg.stop()  # pg_ctl stop -m fast: every session is cut, the server is gone
                with lock:
                    state["database"] = "down"
                load_until("down", 30)
                with lock:
                    state["database"] = "restarting"
                pg.start()
                with lock:
                    state["database"] = "up again"
                load_until("up again", 20)
            finally:
                stop.set()
                for future in futures:
                    future.result()
        exchange_ids = sorted(i for _, turns in conversations for i, _ in turns)
        store = SqlStore(pg.url)
        try:
            deadline = time.monotonic() + 60  # the journal written while it was down is replayed
            while True:
                try:
                    with store.engine.connect() as conn:
                        stored = sorted(conn.execute(sa.text("SELECT id FROM exchanges")).scalars().all())
                except sa.exc.SQLAlchemyError:
                    stored = []  # not migrated yet
                if len(stored) >= len(exchange_ids) or time.monotonic() > deadline:
                    break
                time.sleep(0.2)
            with store.engine.connect() as conn:
                per_exchange = conn.execute(sa.text(
                    "SELECT exchange_id, count(*) FROM messages GROUP BY exchange_id HAVING count(*) <> 2")).all()
                threaded = dict(conn.execute(sa.text("SELECT id, conversation_id FROM exchanges")).all())
                messages = dict(conn.execute(sa.text("SELECT id, message_count FROM conversations")).all())
        finally:
            store.close()
    finally:
        server.terminate()
        server.wait(10)
    assert failures == []
    assert finished("down") > 0  # answered, and made durable, while PostgreSQL was stopped
    assert stored == exchange_ids  # every one, once
    assert per_exchange == []  # each stored its question and answer exactly once
    for named, turns in conversations:  # each turn in the conversation its response named
        assert [threaded[i] for i, _ in turns] == [named, named]
        assert messages[named] == 4
