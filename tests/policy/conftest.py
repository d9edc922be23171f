"""A gateway in front of the simulator where only some providers may see secrets.

``anthropic`` is approved for every class; ``anthropic-backup`` (a second Anthropic account: the
same simulated vendor, other models), ``openai`` and ``openai-backup`` only for public and internal
data; ``local`` for everything.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from tests.failover.conftest import failover_document

SECRET = "AKIAIOSFODNN7EXAMPLE"  # AWS's documented example access key id
OPEN = ["public", "internal"]


def policy_document(sim_url: str, **overrides: Any) -> dict[str, Any]:
    document = failover_document(sim_url)
    for name in ("anthropic-backup", "openai", "openai-backup"):
        document["providers"][name]["approved_for"] = OPEN
    fast = {"first_token_floor": 1.5}
    document["routes"].update({
        # the only approved candidate first, then unapproved fallbacks in both wire formats
        "gov-secret": {"candidates": ["anthropic/claude-opus-4-6", "openai/gpt-5.1",
                                      "anthropic-backup/claude-haiku-4-5-20251001"], "deadlines": fast},
        "gov-open-first": {"candidates": ["openai/gpt-5.1", "anthropic/claude-opus-4-6"], "deadlines": fast},
        "gov-none": {"candidates": ["openai/gpt-5.1", "openai-backup/gpt-4.1"], "deadlines": fast},
    })
    document.update(overrides)
    return document


@pytest.fixture(scope="session")
def policy_server(sim_server: Any) -> Iterator[Any]:
    from outlast.app import build_gateway
    from outlast.config import validate
    from outlast.serving import BackgroundServer

    gateway = build_gateway(validate(policy_document(sim_server.url)))
    with BackgroundServer(gateway) as server:
        server.gateway = gateway
        yield server


@pytest.fixture
def policy(policy_server: Any, sim: Any) -> Any:
    policy_server.gateway.router.health.reset()
    return policy_server
