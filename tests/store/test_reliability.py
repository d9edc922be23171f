"""Crash and outage under load, with real processes and real servers.

- ``outlast serve`` killed with SIGKILL mid-stream: every answer a client received in full
  is in the store after a restart.
- PostgreSQL cut off mid-load (through a TCP proxy we control): no request fails, the journal
  is ingested when it is back, and every exchange is stored exactly once.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx
import pytest
import sqlalchemy as sa
import yaml

from outlast.app import build_gateway
from outlast.config import validate
from outlast.serving import BackgroundServer, free_port
from outlast.store.sql import SqlStore
from tests.conftest import MASTER_KEY, gateway_document
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
        store.close()
    finally:
        restarted.terminate()
        restarted.wait(10)
    assert missing == []
    assert stored >= len(received)


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
