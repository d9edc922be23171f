"""Failover behaviours per failure class, continuation, disclosure and the allowed-target hook,
through a real gateway in front of ``outlast sim``."""

from __future__ import annotations

from typing import Any

import anthropic
import httpx
import openai
import pytest

from outlast.routing.continuation import CONTINUE_INSTRUCTION
from tests.conftest import MASTER_KEY
from tests.failover.conftest import FAST, LONG_TEXT

AUTH = {"authorization": f"Bearer {MASTER_KEY}"}


def messages_body(route: str, text: str = f"[[reply:{LONG_TEXT}]]", stream: bool = False) -> dict[str, Any]:
    return {"model": route, "max_tokens": 400, "stream": stream, "messages": [{"role": "user", "content": text}]}


def post(url: str, body: dict[str, Any], headers: dict[str, str] | None = None,
         path: str = "/v1/messages") -> httpx.Response:
    with httpx.Client(base_url=url, timeout=20) as http:
        return http.post(path, json=body, headers={**AUTH, **(headers or {})})


def sse_lines(url: str, body: dict[str, Any]) -> list[str]:
    with httpx.Client(base_url=url, timeout=20) as http, \
            http.stream("POST", "/v1/messages", json=body, headers=AUTH) as response:
        assert response.status_code == 200
        return list(response.iter_lines())


def last_message(record: dict[str, Any]) -> dict[str, Any]:
    message: dict[str, Any] = record["body"]["messages"][-1]
    return message


# --------------------------------------------------------------------------- continuation


def test_stream_cut_mid_answer_continues_on_fallback_with_prefill_and_a_comment(failover: Any, sim: Any) -> None:
    sim.add_fault(vendor="anthropic", model="claude-opus-4-6", mode="cut", after_events=8, rate=1.0)
    lines = sse_lines(failover.url, messages_body("mx-anthropic-same", stream=True))
    events = [line.removeprefix("event: ") for line in lines if line.startswith("event: ")]
    assert events.count("message_start") == 1 and events.count("message_stop") == 1
    assert "error" not in events
    comments = [line for line in lines if line.startswith(":")]
    assert comments == [": outlast: continued on anthropic-backup/claude-haiku-4-5-20251001 after "
                        "anthropic/claude-opus-4-6 failed (connection_lost)"]
    # Claude Haiku 4.5 takes a prefill: the conversation ends with the partial answer, stripped of its
    # trailing space, and no instruction.
    continued = sim.requests()[-1]
    assert continued["model"] == "claude-haiku-4-5-20251001"
    prefill = last_message(continued)
    assert prefill["role"] == "assistant"
    text = prefill["content"] if isinstance(prefill["content"], str) else prefill["content"][0]["text"]
    assert LONG_TEXT.startswith(text) and text and not text.endswith(" ")


def test_a_target_that_refuses_prefill_gets_the_continue_instruction(failover: Any, sim: Any) -> None:
    sim.add_fault(vendor="anthropic", model="claude-opus-4-6", mode="cut", after_events=8, rate=1.0)
    client = openai.OpenAI(base_url=f"{failover.url}/v1", api_key=MASTER_KEY, max_retries=0)
    chunks = list(client.chat.completions.create(model="mx-anthropic-cross", stream=True, max_tokens=400,
                                                 messages=[{"role": "user", "content": f"[[reply:{LONG_TEXT}]]"}]))
    assert [c.choices[0].finish_reason for c in chunks if c.choices[0].finish_reason] == ["stop"]
    continued = sim.requests()[-1]
    assert continued["vendor"] == "openai"  # prefill not known for gpt-5.1: the instruction is safe everywhere
    assert continued["body"]["messages"][-2]["role"] == "assistant"
    assert last_message(continued) == {"role": "user", "content": CONTINUE_INSTRUCTION}


def test_a_refused_continuation_never_reaches_the_caller(failover: Any, sim: Any) -> None:
    """claude-sonnet-5 is configured (wrongly) as taking prefill: it refuses, the router learns it
    and asks again with the instruction; the caller only sees one good answer."""
    sim.add_fault(vendor="openai", model="gpt-4.1", mode="cut", after_events=8, rate=1.0)
    client = anthropic.Anthropic(base_url=failover.url, api_key=MASTER_KEY, max_retries=0)
    with client.messages.stream(model="wrong-prefill", max_tokens=400,
                                messages=[{"role": "user", "content": f"[[reply:{LONG_TEXT}]]"}]) as stream:
        text = "".join(stream.text_stream)
        final = stream.get_final_message()
    assert text.startswith("word0") and final.stop_reason == "end_turn"
    sonnet = [r for r in sim.requests() if r["model"] == "claude-sonnet-5"]
    assert [last_message(r)["role"] for r in sonnet] == ["assistant", "user"]
    assert sonnet[0]["status"] == 400
    health = failover.gateway.router.health.snapshot(0)["targets"]["anthropic/claude-sonnet-5"]
    assert health["prefill"] is False


def test_usage_of_a_spliced_answer_sums_both_parts(failover: Any, sim: Any) -> None:
    response = post(failover.url, messages_body("mx-anthropic-same"))
    whole = response.json()["usage"]
    sim.reset()
    failover.gateway.router.health.reset()
    sim.add_fault(vendor="anthropic", model="claude-opus-4-6", mode="cut", after_events=8, rate=1.0)
    spliced = post(failover.url, messages_body("mx-anthropic-same")).json()
    # Two prompts were paid for; the output is the broken part's (estimated) plus the rest.
    assert spliced["usage"]["input_tokens"] > whole["input_tokens"]
    assert spliced["usage"]["output_tokens"] > 0
    assert spliced["model"] == "claude-haiku-4-5-20251001"


# --------------------------------------------------------------------------- per failure class


def test_transient_500_is_retried_on_the_same_target_first(failover: Any, sim: Any) -> None:
    sim.add_fault(vendor="openai", model="gpt-5.1", mode="status", status=500, count=1)
    response = post(failover.url, messages_body("mx-openai-cross"))
    assert response.status_code == 200
    assert response.headers["x-outlast-served-by"] == "openai/gpt-5.1"
    assert response.headers["x-outlast-attempts"] == "2"
    assert [r["model"] for r in sim.requests()] == ["gpt-5.1", "gpt-5.1"]


def test_reset_is_retried_on_the_same_target_first(failover: Any, sim: Any) -> None:
    sim.add_fault(vendor="anthropic", model="claude-opus-4-6", mode="reset", count=1)
    response = post(failover.url, messages_body("mx-anthropic-cross"))
    assert response.headers["x-outlast-served-by"] == "anthropic/claude-opus-4-6"
    assert [r["model"] for r in sim.requests()] == ["claude-opus-4-6", "claude-opus-4-6"]


def test_429_with_retry_after_is_never_retried_sooner(failover: Any, sim: Any) -> None:
    sim.add_fault(vendor="anthropic", model="claude-opus-4-6", mode="status", status=429, retry_after=0.6, count=1)
    response = post(failover.url, messages_body("mx-anthropic-cross"))
    assert response.headers["x-outlast-served-by"] == "anthropic/claude-opus-4-6"
    first, second = sim.requests()
    assert second["time"] - first["time"] >= 0.6


def test_429_with_a_long_retry_after_fails_over_and_the_target_waits(failover: Any, sim: Any) -> None:
    sim.add_fault(vendor="anthropic", model="claude-opus-4-6", mode="status", status=429, retry_after=30)
    for _ in range(3):
        response = post(failover.url, messages_body("mx-anthropic-cross"))
        assert response.headers["x-outlast-served-by"] == "openai/gpt-5.1"
    assert [r["vendor"] for r in sim.requests()] == ["anthropic", "openai", "openai", "openai"]


def test_a_silent_provider_costs_one_first_token_deadline_not_several(failover: Any, sim: Any) -> None:
    sim.add_fault(vendor="anthropic", model="claude-opus-4-6", mode="hang")
    attempts = []
    for _ in range(4):
        response = post(failover.url, messages_body("mx-anthropic-cross"))
        assert response.status_code == 200
        attempts.append(response.headers["x-outlast-attempts"])
    # The first request waited out the deadline and failed over; the breaker spares the next three.
    assert [r["vendor"] for r in sim.requests()].count("anthropic") == 1
    assert attempts == ["2", "1", "1", "1"]


def test_auth_failure_marks_the_whole_provider_unhealthy(failover: Any, sim: Any) -> None:
    sim.add_fault(vendor="anthropic", model="claude-opus-4-6", mode="auth")
    response = post(failover.url, messages_body("same-provider"))
    assert response.headers["x-outlast-served-by"] == "openai/gpt-5.1"
    # Haiku is at the same provider, whose key just failed: not asked.
    assert [r["model"] for r in sim.requests()] == ["claude-opus-4-6", "gpt-5.1"]


def test_context_too_long_goes_only_to_a_larger_window(failover: Any, sim: Any) -> None:
    long_prompt = "lorem ipsum " * 4000 + "[[reply:fits]]"  # ~12k tokens: over qwen3:8b's 8k
    response = post(failover.url, messages_body("small-first", long_prompt))
    assert response.status_code == 200 and response.json()["content"][0]["text"] == "fits"
    assert [r["model"] for r in sim.requests()] == ["qwen3:8b", "gpt-5.1"]


def test_context_too_long_with_no_larger_window_is_the_callers_400(failover: Any, sim: Any) -> None:
    long_prompt = "lorem ipsum " * 4000
    response = post(failover.url, messages_body("to-local", long_prompt))
    assert response.status_code == 400
    assert [r["model"] for r in sim.requests()] == ["qwen3:8b"]


def test_hedging_keeps_the_first_to_answer_and_closes_the_losers_connection(failover_server: Any,
                                                                            sim: Any) -> None:
    from urllib.parse import urlsplit

    from outlast.app import build_gateway
    from outlast.config import validate
    from outlast.serving import BackgroundServer
    from tests.failover.conftest import failover_document
    from tests.routing.tcp_proxy import TCPProxy

    address = urlsplit(sim.url)
    assert address.hostname is not None and address.port is not None
    proxy = TCPProxy(address.hostname, address.port)  # counts the gateway's connections to "anthropic"
    document = failover_document(sim.url)
    document["providers"]["anthropic"]["base_url"] = f"http://127.0.0.1:{proxy.port}/anthropic"
    # Longer than the slow answer takes: only the hedge's cancellation can close the loser early.
    document["providers"]["anthropic"]["timeouts"]["first_token"] = 30.0
    document["routes"]["hedged"] = {"candidates": ["anthropic/claude-opus-4-6", "openai/gpt-5.1"],
                                    "hedge_after": 0.15}
    sim.add_fault(vendor="anthropic", model="claude-opus-4-6", mode="slow", ttft_ms=10_000)
    try:
        with BackgroundServer(build_gateway(validate(document))) as server:
            response = post(server.url, messages_body("hedged"))
            assert response.headers["x-outlast-served-by"] == "openai/gpt-5.1"
            assert response.headers["x-outlast-attempts"] == "2"
            # The loser's connection was closed by the gateway, before the slow upstream sent a byte
            # (it answers only after 10 s): not left open in the pool, not read to the end.
            [loser] = proxy.connections
            assert loser.client_closed.wait(5), "the losing hedge's upstream connection is still open"
            assert loser.from_upstream_at_client_close == 0
    finally:
        proxy.close()
    # The second request went out at the hedge delay, not after the first one's 3 s deadline.
    first, second = sim.requests()
    assert first["vendor"] == "anthropic" and second["vendor"] == "openai"
    assert 0.1 <= second["time"] - first["time"] < FAST["first_token"]
    assert response.json()["content"][0]["text"] == LONG_TEXT


# --------------------------------------------------------------------------- disclosure and policy


def test_no_downgrade_header_refuses_lower_tiers(failover: Any, sim: Any) -> None:
    sim.add_fault(vendor="anthropic", model="claude-opus-4-6", mode="status", status=529)
    refused = post(failover.url, messages_body("tiered"), {"x-outlast-no-downgrade": "true"})
    assert refused.status_code == 529 and refused.json()["error"]["type"] == "overloaded_error"
    served = post(failover.url, messages_body("tiered"))
    assert served.status_code == 200
    assert served.headers["x-outlast-served-by"] == "local/qwen3:8b"
    assert served.headers["x-outlast-downgrade"] == "true"
    assert served.headers["x-outlast-fallback"] == "true"
    assert served.json()["model"] == "qwen3:8b"


def test_breaker_cool_down_becomes_retry_after_when_nothing_can_serve(failover: Any, sim: Any) -> None:
    sim.add_fault(vendor="anthropic", model="claude-opus-4-6", mode="status", status=529)
    for _ in range(5):
        post(failover.url, messages_body("mx-anthropic-alone"))
    response = post(failover.url, messages_body("mx-anthropic-alone"))
    assert response.status_code == 529
    assert 1 <= int(response.headers["retry-after"]) <= 5
    # The open breaker was not skipped into failing at once: the least recently failed target was tried.
    assert len(sim.requests()) == 6


def metric(url: str, line_prefix: str) -> float:
    with httpx.Client(base_url=url) as http:
        for line in http.get("/metrics").text.splitlines():
            if line.startswith(line_prefix + " "):
                return float(line.rsplit(" ", 1)[1])
    return 0.0


def test_failed_attempts_are_failures_in_metrics_and_the_answer_is_the_fallbacks(failover: Any, sim: Any) -> None:
    opus = 'outlast_attempts_total{provider="anthropic",model="claude-opus-4-6",outcome="%s"}'
    tokens = 'outlast_tokens_total{provider="openai",model="gpt-5.1",direction="output"}'
    before = {k: metric(failover.url, k) for k in (opus % "overloaded", opus % "ok", tokens)}
    sim.add_fault(vendor="anthropic", model="claude-opus-4-6", mode="status", status=529, count=1)
    body = post(failover.url, messages_body("mx-anthropic-cross")).json()
    assert body["model"] == "gpt-5.1"
    assert metric(failover.url, opus % "overloaded") == before[opus % "overloaded"] + 1
    assert metric(failover.url, opus % "ok") == before[opus % "ok"]
    assert metric(failover.url, tokens) == before[tokens] + body["usage"]["output_tokens"]


def test_the_router_never_tries_a_target_outside_the_allowed_predicate(sim: Any) -> None:
    from outlast.app import build_gateway
    from outlast.config import validate
    from outlast.serving import BackgroundServer
    from tests.failover.conftest import failover_document

    gateway = build_gateway(validate(failover_document(sim.url)), allowed=lambda request, t: t.provider != "anthropic")
    with BackgroundServer(gateway) as server:
        ok = post(server.url, messages_body("claude-opus-4-6"))
        assert ok.headers["x-outlast-served-by"] == "openai/gpt-5.1"
        assert ok.headers["x-outlast-fallback"] == "false"  # the first allowed candidate
        refused = post(server.url, messages_body("to-anthropic"))
    assert refused.status_code == 403 and refused.json()["error"]["type"] == "permission_error"
    assert "anthropic" not in {r["vendor"] for r in sim.requests()}


@pytest.mark.parametrize("stream", [False, True])
def test_nothing_can_finish_a_broken_answer_ends_with_an_error_not_a_stop(failover: Any, sim: Any,
                                                                         stream: bool) -> None:
    sim.add_fault(vendor="anthropic", model="claude-opus-4-6", mode="cut", after_events=8)
    if not stream:
        response = post(failover.url, messages_body("mx-anthropic-alone"))
        assert response.status_code == 529 and "broke off" in response.json()["error"]["message"]
        return
    lines = sse_lines(failover.url, messages_body("mx-anthropic-alone", stream=True))
    events = [line.removeprefix("event: ") for line in lines if line.startswith("event: ")]
    assert events[-1] == "error" and "message_stop" not in events
