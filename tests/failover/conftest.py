"""A gateway in front of the simulator with short deadlines, so failover tests stay fast."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from tests.conftest import gateway_document
from tests.store.conftest import pg_server, pg_url, store_url  # noqa: F401 - stores for the recording tests

# Deadlines well above what a healthy simulated answer needs even on a loaded two-core CI machine (the
# simulator, gateway and client share one process), and well below what a faulty one takes.
FAST = {"connect": 2.0, "first_token": 3.0, "idle": 1.5, "total": 30.0}
LONG_TEXT = " ".join(f"word{i}" for i in range(40))


def failover_document(sim_url: str, **overrides: Any) -> dict[str, Any]:
    document = gateway_document(sim_url)
    for provider in document["providers"].values():
        provider["timeouts"] = dict(FAST)
    document["providers"]["anthropic"]["models"] = {
        "claude-opus-4-6": {"prefill": False, "context_window": 200_000},
        "claude-sonnet-4-6": {"prefill": False, "context_window": 200_000},
        "claude-haiku-4-5-20251001": {"prefill": True, "context_window": 200_000},
    }
    document["providers"]["local"]["models"] = {"qwen3:8b": {"context_window": 8_192}}
    document["providers"]["openai"]["models"] = {"gpt-5.1": {"context_window": 400_000}}
    # A second account at the same vendors: a fallback in the same wire format, another provider.
    document["providers"]["anthropic-backup"] = {**document["providers"]["anthropic"], "models": {}}
    document["providers"]["openai-backup"] = {**document["providers"]["openai"], "models": {}}
    document["providers"]["anthropic-backup"]["models"] = {"claude-haiku-4-5-20251001": {"prefill": True}}
    fast = {"first_token_floor": 1.5}
    document["routes"].update({
        # primary vendor x fallback in the same wire format or the other one
        "mx-anthropic-same": {"candidates": ["anthropic/claude-opus-4-6",
                                             "anthropic-backup/claude-haiku-4-5-20251001"],
                              "deadlines": fast},
        "mx-anthropic-cross": {"candidates": ["anthropic/claude-opus-4-6", "openai/gpt-5.1"], "deadlines": fast},
        "mx-openai-same": {"candidates": ["openai/gpt-5.1", "openai-backup/gpt-4.1"], "deadlines": fast},
        "same-provider": {"candidates": ["anthropic/claude-opus-4-6", "anthropic/claude-haiku-4-5-20251001",
                                         "openai/gpt-5.1"], "deadlines": fast},
        "mx-openai-cross": {"candidates": ["openai/gpt-5.1", "anthropic/claude-sonnet-4-6"], "deadlines": fast},
        "mx-anthropic-alone": {"candidates": ["anthropic/claude-opus-4-6"], "deadlines": fast},
        "mx-openai-alone": {"candidates": ["openai/gpt-5.1"], "deadlines": fast},
        "tiered": {"candidates": ["anthropic/claude-opus-4-6", {"target": "local/qwen3:8b", "tier": 1}],
                   "deadlines": fast},
        "small-first": ["local/qwen3:8b", "openai/gpt-5.1"],
        "wrong-prefill": {"candidates": ["openai/gpt-4.1", "anthropic/claude-sonnet-5"], "deadlines": fast},
        # Half a second, retries and failover included, before the answer begins.
        "bounded": {"candidates": ["anthropic/claude-opus-4-6", "openai/gpt-5.1", "local/qwen3:8b"],
                    "deadlines": {**fast, "total": 0.5}},
    })
    document.update(overrides)
    return document


@pytest.fixture(scope="session")
def failover_server(sim_server: Any) -> Iterator[Any]:
    from outlast.app import build_gateway
    from outlast.config import validate
    from outlast.serving import BackgroundServer

    document = failover_document(sim_server.url)
    # Claude Sonnet 5 refuses prefill, but this configuration says it accepts it: the router must learn.
    document["providers"]["anthropic"]["models"]["claude-sonnet-5"] = {"prefill": True}
    gateway = build_gateway(validate(document))
    with BackgroundServer(gateway) as server:
        server.gateway = gateway
        yield server


@pytest.fixture
def failover(failover_server: Any, sim: Any) -> Any:
    """The failover gateway in front of a freshly reset simulator, its health state forgotten."""
    failover_server.gateway.router.health.reset()
    return failover_server
