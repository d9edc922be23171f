"""Metrics label requests by route key, so made-up model names cannot grow the scrape."""

from __future__ import annotations

from typing import Any

import httpx

from outlast.metrics import MAX_MODELS, Metrics
from outlast.routing.plan import Target
from outlast.routing.router import Attempt, Exchange
from tests.failover.test_behaviour import messages_body, post


def series(url: str) -> set[str]:
    with httpx.Client(base_url=url) as http:
        text = http.get("/metrics").text
    return {line.rsplit(" ", 1)[0] for line in text.splitlines() if line and not line.startswith("#")}


def test_unknown_model_names_add_no_request_series(failover: Any, sim: Any) -> None:
    for i in range(3):  # the series these requests need exist before counting
        post(failover.url, messages_body(f"warm-up-{i}"))
        post(failover.url, messages_body(f"gpt-warm-up-{i}"))
    before = series(failover.url)
    for i in range(50):
        assert post(failover.url, messages_body(f"no-such-model-{i}")).status_code == 404
    for i in range(50):
        post(failover.url, messages_body(f"gpt-made-up-{i}"))  # routed by the gpt-* pattern
    after = series(failover.url)
    requests = {s for s in after if s.startswith("outlast_requests_total{")}
    assert {s for s in requests - before} == set()
    assert 'outlast_requests_total{dialect="anthropic",route="unrouted",outcome="error",fallback="false"}' in requests
    assert any('route="gpt-*"' in s for s in requests)
    assert not [s for s in requests if "no-such-model" in s or "gpt-made-up" in s]


def test_model_labels_per_provider_are_capped() -> None:
    metrics = Metrics()
    for i in range(MAX_MODELS + 50):
        exchange = Exchange(str(i), "openai", f"gpt-{i}", 0.0, route="gpt-*")
        attempt = Attempt(Target("openai", f"gpt-{i}"), 0.0, ended=0.1)
        exchange.attempts.append(attempt)
        metrics.attempt_finished(exchange, attempt)
        metrics.exchange_finished(exchange)
    labels = {key[1] for key in metrics.attempts.values}
    assert len(labels) == MAX_MODELS + 1 and "other" in labels
    assert metrics.attempts.values[("openai", "other", "ok")] == 50
    assert list(metrics.requests.values) == [("openai", "gpt-*", "ok", "false")]
    # Another provider has its own allowance.
    metrics.attempt_finished(exchange, Attempt(Target("local", "qwen3:8b"), 0.0, ended=0.1))
    assert ("local", "qwen3:8b", "ok") in metrics.attempts.values
