"""Shared fixtures: the simulator and the gateway, both real servers on loopback."""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

FIXTURES = Path(__file__).resolve().parents[1].parent / "shared" / "fixtures"
if not FIXTURES.is_dir():  # a checkout elsewhere: OUTLAST_FIXTURES points at shared/fixtures
    FIXTURES = Path(os.environ.get("OUTLAST_FIXTURES", FIXTURES))

MASTER_KEY = "sk-outlast-test-master-key-0123456789"
PROVIDER_KEYS = {
    "anthropic": "sk-ant-test-provider-key-abcdef",
    "openai": "sk-openai-test-provider-key-abcdef",
    "gemini": "gemini-test-provider-key-abcdef",
}


def pytest_configure(config: pytest.Config) -> None:
    # Tests never touch the user's data directory: everything they record goes to a
    # temporary one (inherited by the `outlast` processes they start).
    config._outlast_data_dir = tempfile.mkdtemp(prefix="outlast-tests-")  # type: ignore[attr-defined]
    os.environ["OUTLAST_DATA_DIR"] = config._outlast_data_dir  # type: ignore[attr-defined]


def pytest_unconfigure(config: pytest.Config) -> None:
    directory = getattr(config, "_outlast_data_dir", None)
    if directory:
        shutil.rmtree(directory, ignore_errors=True)


@pytest.fixture(scope="session")
def fixtures_dir() -> Path:
    if not FIXTURES.is_dir():
        pytest.fail(f"shared fixtures not found at {FIXTURES}; set OUTLAST_FIXTURES")
    return FIXTURES


@pytest.fixture(scope="session")
def sim_server() -> Iterator[Any]:
    from outlast.sim.testing import running_sim

    with running_sim() as sim:
        yield sim


@pytest.fixture
def sim(sim_server: Any) -> Any:
    """The simulator, with faults, logs and clock reset for each test."""
    sim_server.reset()
    return sim_server


def gateway_document(sim_url: str, **overrides: Any) -> dict[str, Any]:
    """A configuration in front of the simulator: every vendor, and routes for every combination."""
    document: dict[str, Any] = {
        "providers": {
            "anthropic": {"kind": "anthropic", "base_url": f"{sim_url}/anthropic",
                          "api_key": PROVIDER_KEYS["anthropic"]},
            "openai": {"kind": "openai", "base_url": f"{sim_url}/openai/v1", "api_key": PROVIDER_KEYS["openai"]},
            "gemini": {"kind": "gemini", "base_url": f"{sim_url}/gemini", "api_key": PROVIDER_KEYS["gemini"]},
            "local": {"kind": "openai", "base_url": f"{sim_url}/local/v1"},
        },
        "routes": {
            "to-anthropic": ["anthropic/claude-sonnet-4-6"],
            "to-openai": ["openai/gpt-5.1"],
            "to-gemini": ["gemini/gemini-2.5-flash"],
            "to-local": ["local/qwen3:8b"],
            "claude-opus-4-6": ["anthropic/claude-opus-4-6", "openai/gpt-5.1", "local/qwen3:8b"],
            "gpt-5.1": ["openai/gpt-5.1", "anthropic/claude-sonnet-4-6"],
            # Model names in the client captures that the simulator does not carry.
            "claude-sonnet-4-5": ["anthropic/claude-sonnet-4-6"],
            "claude-*": ["anthropic/{model}"],
            "gpt-*": ["openai/{model}"],
        },
        "master_key": MASTER_KEY,
    }
    document.update(overrides)
    return document


@pytest.fixture(scope="session")
def gateway_server(sim_server: Any) -> Iterator[Any]:
    from outlast.app import build_gateway
    from outlast.config import validate
    from outlast.serving import BackgroundServer

    gateway = build_gateway(validate(gateway_document(sim_server.url)))
    with BackgroundServer(gateway) as server:
        server.gateway = gateway
        yield server


@pytest.fixture
def gateway(gateway_server: Any, sim: Any) -> Any:
    """The gateway in front of a freshly reset simulator, with its health state forgotten."""
    gateway_server.gateway.router.health.reset()
    return gateway_server
