"""Health state shared through Redis: one replica's learning protects the others within a second;
with Redis gone each replica keeps serving on its own state and reconnects by itself."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from outlast.providers.errors import FailureKind
from outlast.routing.breaker import BreakerPolicy
from outlast.routing.plan import Target
from outlast.routing.state.redis import RedisHealth
from outlast.serving import free_port
from tests.conftest import MASTER_KEY
from tests.failover.conftest import failover_document
from tests.routing.tcp_proxy import TCPProxy

T = Target("anthropic", "claude-opus-4-6")


async def wait_for(condition: Any, limit: float = 5.0) -> float:
    started = time.monotonic()
    while not condition():
        if time.monotonic() - started > limit:
            raise AssertionError("condition not met in time")
        await asyncio.sleep(0.01)
    return time.monotonic() - started


async def test_one_replicas_open_breaker_protects_the_other_within_a_second(redis_proxy: TCPProxy) -> None:
    url = f"redis://127.0.0.1:{redis_proxy.port}/0?channel=test-{uuid.uuid4().hex}"
    a, b = RedisHealth(url, BreakerPolicy(consecutive=3)), RedisHealth(url, BreakerPolicy(consecutive=3))
    await a.start()
    await b.start()
    try:
        await wait_for(lambda: a.connected and b.connected)
        for _ in range(3):
            a.failed(T, FailureKind.OVERLOADED, a.clock())
        assert not a.ready(T, a.clock())
        assert await wait_for(lambda: not b.ready(T, b.clock())) < 1.0
        # A replica that starts later learns the open breaker from the hash at once.
        c = RedisHealth(url, BreakerPolicy(consecutive=3))
        await c.start()
        try:
            await wait_for(lambda: c.connected)
            assert not c.ready(T, c.clock())
        finally:
            await c.aclose()
        # Redis goes away: both answer from their own state, without waiting on it.
        redis_proxy.cut()
        await wait_for(lambda: not a.connected and not b.connected)
        b.failed(Target("openai", "gpt-5.1"), FailureKind.SERVER_ERROR, b.clock())
        assert b.ready(Target("openai", "gpt-5.1"), b.clock())
        # ... and reconnect by themselves: what one learns reaches the other again.
        redis_proxy.restore()
        await wait_for(lambda: a.connected and b.connected, limit=10)
        gemini = Target("gemini", "gemini-2.5-flash")
        for _ in range(3):
            b.failed(gemini, FailureKind.OVERLOADED, b.clock())
        assert await wait_for(lambda: not a.ready(gemini, a.clock())) < 1.0
    finally:
        await a.aclose()
        await b.aclose()


# --------------------------------------------------------------------------- two `outlast serve` processes


def _serve(config: Path, port: int) -> subprocess.Popen[bytes]:
    exe = Path(sys.executable).parent / "outlast"
    return subprocess.Popen([str(exe), "serve", "--config", str(config), "--port", str(port),
                             "--log-level", "warning"], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                            env={**os.environ, "OUTLAST_DATA_DIR": str(config.parent)})


@pytest.fixture
def two_gateways(sim: Any, redis_proxy: TCPProxy, tmp_path: Path) -> Iterator[tuple[str, str]]:
    document = failover_document(sim.url)
    document["state"] = f"redis://127.0.0.1:{redis_proxy.port}/0?channel=test-{uuid.uuid4().hex}"
    document["record"] = False
    for provider in document["providers"].values():
        provider["api_key"] = provider.get("api_key")
    config = tmp_path / "outlast.yaml"
    config.write_text(yaml.safe_dump(document))
    ports = [free_port(), free_port()]
    processes = [_serve(config, port) for port in ports]
    urls = [f"http://127.0.0.1:{port}" for port in ports]
    try:
        for url, process in zip(urls, processes, strict=True):
            deadline = time.monotonic() + 20
            while True:
                if process.poll() is not None:
                    raise RuntimeError(f"outlast serve exited: {process.stderr.read().decode()[-2000:]}")
                try:
                    health = httpx.get(f"{url}/healthz", timeout=1).json()
                    if health["health"]["shared"]["connected"]:
                        break
                except (httpx.HTTPError, KeyError):
                    pass
                if time.monotonic() > deadline:
                    raise RuntimeError("outlast serve did not connect to Redis in time")
                time.sleep(0.05)
        yield urls[0], urls[1]
    finally:
        for process in processes:
            process.terminate()
        for process in processes:
            process.wait(10)


def ask(url: str) -> httpx.Response:
    return httpx.post(f"{url}/v1/messages", headers={"authorization": f"Bearer {MASTER_KEY}"}, timeout=20,
                      json={"model": "mx-anthropic-cross", "max_tokens": 32,
                            "messages": [{"role": "user", "content": "[[reply:shared]]"}]})


def test_two_replicas_share_what_they_learn_and_survive_redis_going_away(
        two_gateways: tuple[str, str], sim: Any, redis_proxy: TCPProxy) -> None:
    first, second = two_gateways
    sim.add_fault(vendor="anthropic", model="claude-opus-4-6", mode="status", status=529)
    for _ in range(5):  # the first replica sees the primary fail until its breaker opens
        response = ask(first)
        assert response.status_code == 200 and response.headers["x-outlast-served-by"] == "openai/gpt-5.1"
    seen = len([r for r in sim.requests() if r["vendor"] == "anthropic"])
    assert seen == 5
    time.sleep(0.3)  # well within the promised second
    for _ in range(3):  # the second replica never asks the primary
        response = ask(second)
        assert response.headers["x-outlast-served-by"] == "openai/gpt-5.1"
        assert response.headers["x-outlast-attempts"] == "1"
    assert len([r for r in sim.requests() if r["vendor"] == "anthropic"]) == seen
    # Redis stops (as far as the gateways can tell): both keep serving.
    redis_proxy.cut()
    sim.clear_faults()
    for url in (first, second):
        for _ in range(3):
            assert ask(url).status_code == 200
        assert httpx.get(f"{url}/healthz").json()["status"] == "ok"
