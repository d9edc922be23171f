"""What the store keeps of a failover: every attempt with its purpose, continuation mode and
deadline, the candidates skipped while unhealthy, and each splice, read back after a real
mid-stream break (SQLite and PostgreSQL)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import anthropic
import pytest

from outlast.providers.errors import FailureKind, TimeoutPhase
from outlast.routing.plan import Target
from outlast.store.sql import SqlStore
from tests.conftest import MASTER_KEY
from tests.failover.conftest import LONG_TEXT, failover_document


def test_a_spliced_answer_is_stored_with_its_splice_skips_and_attempt_details(
        sim: Any, store_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from outlast.app import build_gateway
    from outlast.config import validate
    from outlast.serving import BackgroundServer

    monkeypatch.setenv("OUTLAST_DATA_DIR", str(tmp_path / "data"))
    document = failover_document(sim.url, store=store_url)
    document["routes"]["recorded"] = {"candidates": ["anthropic/claude-opus-4-6", "openai/gpt-5.1",
                                                     "anthropic-backup/claude-haiku-4-5-20251001"],
                                      "deadlines": {"first_token_floor": 1.5}}
    gateway = build_gateway(validate(document))
    sim.add_fault(vendor="anthropic", model="claude-opus-4-6", mode="cut", after_events=8)
    with BackgroundServer(gateway) as server:
        router = gateway.router
        # gpt-5.1 went silent a moment ago: its breaker is open, so the continuation passes it over.
        router.health.failed(Target("openai", "gpt-5.1"), FailureKind.TIMEOUT, router.clock(),
                             phase=TimeoutPhase.FIRST_TOKEN)
        client = anthropic.Anthropic(base_url=server.url, api_key=MASTER_KEY, max_retries=0)
        with client.messages.with_streaming_response.create(
                model="recorded", max_tokens=400, stream=True,
                messages=[{"role": "user", "content": f"[[reply:{LONG_TEXT}]]"}]) as response:
            exchange_id = response.headers["x-outlast-exchange-id"]
            body = "".join(response.iter_text())
        assert "message_stop" in body
        assert gateway.sinks[0].wait_ingested()
    prefill = sim.requests()[-1]["body"]["messages"][-1]
    prefill_text = prefill["content"] if isinstance(prefill["content"], str) else prefill["content"][0]["text"]
    store = SqlStore(store_url)
    try:
        row = store.get_exchange(exchange_id)
    finally:
        store.close()
    assert row is not None
    assert row["skipped"] == ["openai/gpt-5.1"]
    assert [(a["provider"], a["model"], a["outcome"], a["purpose"], a["mode"]) for a in row["attempts"]] == [
        ("anthropic", "claude-opus-4-6", "connection_lost", "first", None),
        ("anthropic-backup", "claude-haiku-4-5-20251001", "ok", "continuation", "prefill")]
    assert all(a["deadline_ms"] is not None and 0 < a["deadline_ms"] <= 3000 for a in row["attempts"])
    [splice] = row["splices"]
    assert (splice["broken_provider"], splice["broken_model"], splice["failure"]) == (
        "anthropic", "claude-opus-4-6", "connection_lost")
    assert (splice["continued_provider"], splice["continued_model"], splice["mode"]) == (
        "anthropic-backup", "claude-haiku-4-5-20251001", "prefill")
    # The splice point is where the caller's answer stood: what the fallback was asked to continue.
    assert 0 < splice["after_chars"] < len(LONG_TEXT)
    assert LONG_TEXT[:splice["after_chars"]].rstrip() == prefill_text
    assert row["attempts"][0]["ended_ms"] <= splice["at_ms"] <= row["attempts"][1]["started_ms"]
