"""The simulator tests use the shared ``sim`` fixture (tests/conftest.py): one server per session, reset per test."""

from __future__ import annotations

from typing import Any

import anthropic
import openai
import pytest

KEY = "sk-sim-test-key-0123456789"


@pytest.fixture
def oa(sim: Any) -> openai.OpenAI:
    return openai.OpenAI(base_url=f"{sim.url}/openai/v1", api_key=KEY, max_retries=0, timeout=10)


@pytest.fixture
def an(sim: Any) -> anthropic.Anthropic:
    return anthropic.Anthropic(base_url=f"{sim.url}/anthropic", api_key=KEY, max_retries=0, timeout=10)
