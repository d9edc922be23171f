"""A gateway with health on a short tick in front of the simulator, served on loopback."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from outlast.app import build_gateway
from outlast.config import validate
from outlast.serving import BackgroundServer
from tests.conftest import MASTER_KEY, gateway_document

HEALTH = {"tick": 0.5, "window": 3.0, "open_after": 0.5, "identify_after": 2.0, "recovery_window": 4.0,
          "quiet_period": 2.0, "min_samples": 3, "feed_interval": 1.0}


@pytest.fixture(scope="module")
def health_gateway(sim_server: Any, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    directory: Path = tmp_path_factory.mktemp("health-gateway")
    document = gateway_document(sim_server.url, health=HEALTH)
    document["providers"]["anthropic"]["status_feed"] = f"{sim_server.url}/anthropic/status/api/v2/summary.json"
    document["store"] = f"sqlite:///{directory / 'outlast.db'}"
    gateway = build_gateway(validate(document), data_directory=directory)
    with BackgroundServer(gateway) as server:
        server.gateway = gateway
        yield server


@pytest.fixture
def api(health_gateway: Any, sim: Any) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=health_gateway.url, timeout=10,
                      headers={"authorization": f"Bearer {MASTER_KEY}"}) as client:
        yield client


def chat(client: httpx.Client, model: str = "to-anthropic") -> httpx.Response:
    return client.post("/v1/chat/completions", json={"model": model, "max_tokens": 8,
                                                     "messages": [{"role": "user", "content": "[[reply:hi]]"}]})
