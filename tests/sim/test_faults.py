"""Each fault mode produces exactly what the vendor (or a broken network) would, as the SDKs see it."""

from __future__ import annotations

import json
import socket
import time
from typing import Any

import anthropic
import httpx
import openai
import pytest

from outlast.sim.faults import Fault, FaultBook, Latency, parse_fault
from tests.sim.conftest import KEY

ASK = [{"role": "user", "content": "[[reply:alpha beta gamma delta epsilon zeta eta theta]]"}]
AN_HEADERS = {"x-api-key": KEY, "anthropic-version": "2023-06-01"}


@pytest.mark.parametrize(("status", "exception", "kind"), [
    (400, anthropic.BadRequestError, "invalid_request_error"),
    (401, anthropic.AuthenticationError, "authentication_error"),
    (403, anthropic.PermissionDeniedError, "permission_error"),
    (404, anthropic.NotFoundError, "not_found_error"),
    (413, anthropic.APIStatusError, "request_too_large"),
    (429, anthropic.RateLimitError, "rate_limit_error"),
    (500, anthropic.InternalServerError, "api_error"),
    (504, anthropic.InternalServerError, "timeout_error"),
    (529, anthropic.InternalServerError, "overloaded_error"),
])
def test_anthropic_status_faults(sim: Any, an: anthropic.Anthropic, status: int, exception: type, kind: str) -> None:
    sim.add_fault(vendor="anthropic", model="*", mode="status", status=status, rate=1.0)
    with pytest.raises(exception) as caught:
        an.messages.create(model="claude-opus-4-6", max_tokens=10, messages=ASK)  # type: ignore[arg-type]
    error = caught.value
    assert error.status_code == status
    assert error.body["type"] == "error" and error.body["error"]["type"] == kind
    assert error.body["request_id"] == error.response.headers["request-id"]
    assert sim.requests("anthropic")[-1]["fault"]["mode"] == "status"


def test_anthropic_529_default_message_and_retry_after(sim: Any, an: anthropic.Anthropic) -> None:
    sim.add_fault(vendor="anthropic", model="claude-opus-*", mode="status", status=529, retry_after=7)
    with pytest.raises(anthropic.InternalServerError) as caught:
        an.messages.create(model="claude-opus-4-6", max_tokens=10, messages=ASK)  # type: ignore[arg-type]
    assert caught.value.body["error"] == {"type": "overloaded_error", "message": "Overloaded"}  # type: ignore[index]
    assert caught.value.response.headers["retry-after"] == "7"
    # other models are untouched by the glob
    assert an.messages.create(model="claude-sonnet-4-6", max_tokens=10, messages=ASK).stop_reason  # type: ignore[arg-type]


def test_anthropic_429_has_rate_limit_headers(sim: Any, an: anthropic.Anthropic) -> None:
    sim.add_fault(vendor="anthropic", mode="status", status=429, retry_after=12)
    with pytest.raises(anthropic.RateLimitError) as caught:
        an.messages.create(model="claude-sonnet-4-6", max_tokens=10, messages=ASK)  # type: ignore[arg-type]
    headers = caught.value.response.headers
    assert headers["retry-after"] == "12"
    assert headers["anthropic-ratelimit-requests-remaining"] == "0"
    assert headers["anthropic-ratelimit-requests-limit"] and headers["anthropic-ratelimit-tokens-reset"]


def test_openai_rate_limit_retry_after_is_honoured_by_the_sdk(sim: Any) -> None:
    sim.add_fault(vendor="openai", mode="status", status=429, retry_after=0.5, count=1)
    client = openai.OpenAI(base_url=f"{sim.url}/openai/v1", api_key=KEY, max_retries=1)
    started = time.monotonic()
    completion = client.chat.completions.create(model="gpt-5.1", messages=ASK)  # type: ignore[arg-type]
    assert time.monotonic() - started >= 0.45  # waited as told, then the transient fault was gone
    assert completion.choices[0].message.content == "alpha beta gamma delta epsilon zeta eta theta"
    assert [r["status"] for r in sim.requests("openai")] == [429, 200]


def test_openai_rate_limit_error_body_and_headers(sim: Any, oa: openai.OpenAI) -> None:
    sim.add_fault(vendor="openai", mode="status", status=429, retry_after=20)
    with pytest.raises(openai.RateLimitError) as caught:
        oa.chat.completions.create(model="gpt-5.1", messages=ASK)  # type: ignore[arg-type]
    body = caught.value.body
    assert body["code"] == "rate_limit_exceeded" and body["type"] == "requests"  # type: ignore[index]
    assert "Please try again in 20s" in body["message"]  # type: ignore[index]
    headers = caught.value.response.headers
    assert headers["retry-after"] == "20" and headers["x-ratelimit-remaining-requests"] == "0"
    assert headers["x-request-id"]


@pytest.mark.parametrize(("status", "exception"), [(500, openai.InternalServerError),
                                                   (503, openai.InternalServerError),
                                                   (403, openai.PermissionDeniedError)])
def test_openai_status_faults(sim: Any, oa: openai.OpenAI, status: int, exception: type) -> None:
    sim.add_fault(vendor="openai", mode="status", status=status)
    with pytest.raises(exception) as caught:
        oa.chat.completions.create(model="gpt-5.1", messages=ASK)  # type: ignore[arg-type]
    assert caught.value.status_code == status
    assert set(caught.value.body) == {"message", "type", "param", "code"}


def test_status_fault_with_the_providers_own_code(sim: Any, oa: openai.OpenAI, an: anthropic.Anthropic) -> None:
    sim.add_fault(vendor="openai", mode="status", status=400, code="context_length_exceeded")
    with pytest.raises(openai.BadRequestError) as caught:
        oa.chat.completions.create(model="gpt-4o-mini", messages=ASK)  # type: ignore[arg-type]
    assert caught.value.code == "context_length_exceeded"
    assert "maximum context length is 128000 tokens" in caught.value.message
    sim.add_fault(vendor="anthropic", mode="status", status=400, code="context_length_exceeded")
    with pytest.raises(anthropic.BadRequestError) as caught_an:
        an.messages.create(model="claude-opus-4-6", max_tokens=5, messages=ASK)  # type: ignore[arg-type]
    assert caught_an.value.body["error"]["message"].startswith("prompt is too long")  # type: ignore[index]


def test_gemini_status_faults(sim: Any) -> None:
    sim.add_fault(vendor="gemini", mode="status", status=429, retry_after=30)
    sim.add_fault(vendor="gemini", model="gemini-2.5-pro", mode="status", status=503)
    url = f"{sim.url}/gemini/v1beta/models/{{}}:generateContent"
    body = {"contents": [{"role": "user", "parts": [{"text": "hi"}]}]}
    limited = httpx.post(url.format("gemini-2.5-flash"), json=body, headers={"x-goog-api-key": "k"})
    assert limited.status_code == 429
    error = limited.json()["error"]
    assert (error["code"], error["status"]) == (429, "RESOURCE_EXHAUSTED")
    assert {"@type": "type.googleapis.com/google.rpc.RetryInfo", "retryDelay": "30s"} in error["details"]
    sim.clear_faults()
    sim.add_fault(vendor="gemini", model="gemini-2.5-pro", mode="status", status=503)
    busy = httpx.post(url.format("gemini-2.5-pro"), json=body, headers={"x-goog-api-key": "k"})
    assert busy.json()["error"] == {"code": 503, "message": "The model is overloaded. Please try again later.",
                                    "status": "UNAVAILABLE"}


def test_auth_fault_only_for_one_key(sim: Any) -> None:
    sim.add_fault(vendor="anthropic", mode="auth", key="sk-revoked")
    revoked = anthropic.Anthropic(base_url=f"{sim.url}/anthropic", api_key="sk-revoked", max_retries=0)
    with pytest.raises(anthropic.AuthenticationError) as caught:
        revoked.messages.create(model="claude-sonnet-4-6", max_tokens=5, messages=ASK)  # type: ignore[arg-type]
    assert caught.value.body["error"]["type"] == "authentication_error"  # type: ignore[index]
    good = anthropic.Anthropic(base_url=f"{sim.url}/anthropic", api_key=KEY, max_retries=0)
    assert good.messages.create(model="claude-sonnet-4-6", max_tokens=5, messages=ASK)  # type: ignore[arg-type]
    sim.add_fault(vendor="openai", mode="auth")
    client = openai.OpenAI(base_url=f"{sim.url}/openai/v1", api_key="sk-proj-abcdefghijkl", max_retries=0)
    with pytest.raises(openai.AuthenticationError) as caught_oa:
        client.chat.completions.create(model="gpt-5", messages=ASK)  # type: ignore[arg-type]
    assert caught_oa.value.code == "invalid_api_key"
    assert "sk-proj-abcdefghijkl" not in caught_oa.value.message and "ijkl" in caught_oa.value.message
    sim.add_fault(vendor="gemini", mode="auth")
    bad = httpx.post(f"{sim.url}/gemini/v1beta/models/gemini-2.5-pro:generateContent", params={"key": "nope"},
                     json={"contents": [{"parts": [{"text": "hi"}]}]})
    assert bad.status_code == 400 and bad.json()["error"]["details"][0]["reason"] == "API_KEY_INVALID"


def test_count_makes_a_fault_transient(sim: Any, an: anthropic.Anthropic) -> None:
    fault = sim.add_fault(vendor="anthropic", mode="status", status=529, count=2)
    assert fault["id"] and fault["remaining"] == 2
    for _ in range(2):
        with pytest.raises(anthropic.InternalServerError):
            an.messages.create(model="claude-opus-4-6", max_tokens=5, messages=ASK)  # type: ignore[arg-type]
    assert an.messages.create(model="claude-opus-4-6", max_tokens=5, messages=ASK)  # type: ignore[arg-type]
    assert sim.faults() == []


def test_rate_is_a_repeatable_share(sim: Any) -> None:
    sim.add_fault(vendor="openai", mode="status", status=500, rate=0.3)
    body = {"model": "gpt-5", "messages": [{"role": "user", "content": "hi"}]}
    with httpx.Client(base_url=sim.url, headers={"authorization": f"Bearer {KEY}"}) as http:
        first = [http.post("/openai/v1/chat/completions", json=body).status_code for _ in range(200)]
        sim.reset()
        sim.add_fault(vendor="openai", mode="status", status=500, rate=0.3)
        second = [http.post("/openai/v1/chat/completions", json=body).status_code for _ in range(200)]
    assert first == second  # same seed, same dice
    assert 40 <= first.count(500) <= 80


def test_reset_closes_the_connection_before_any_response(sim: Any, oa: openai.OpenAI) -> None:
    sim.add_fault(vendor="openai", mode="reset")
    with pytest.raises(openai.APIConnectionError):
        oa.chat.completions.create(model="gpt-5", messages=ASK)  # type: ignore[arg-type]
    # at the socket level: a reset, not an HTTP answer
    with socket.create_connection((sim.host, sim.port), timeout=5) as conn:
        body = json.dumps({"model": "gpt-5", "messages": ASK}).encode()
        head = (b"POST /openai/v1/chat/completions HTTP/1.1\r\nhost: x\r\nauthorization: Bearer k\r\n"
                b"content-type: application/json\r\ncontent-length: " + str(len(body)).encode() + b"\r\n\r\n")
        conn.sendall(head + body)
        with pytest.raises(ConnectionResetError):
            assert conn.recv(1024) == b""  # a FIN would give b"" and fail here


def test_hang_answers_nothing_until_the_client_gives_up(sim: Any) -> None:
    sim.add_fault(vendor="anthropic", mode="hang")
    client = anthropic.Anthropic(base_url=f"{sim.url}/anthropic", api_key=KEY, max_retries=0, timeout=0.5)
    with pytest.raises(anthropic.APITimeoutError):  # the SDK's own deadline, not an answer, ended it
        client.messages.create(model="claude-opus-4-6", max_tokens=5, messages=ASK)  # type: ignore[arg-type]
    assert sim.requests("anthropic")[-1]["fault"]["mode"] == "hang"


def test_cut_breaks_the_stream_after_n_events(sim: Any, an: anthropic.Anthropic) -> None:
    sim.add_fault(vendor="anthropic", mode="cut", after_events=5)
    seen: list[str] = []
    # (anthropic 2.x runs on httpx2, so its exception is named alike but is another class)
    with pytest.raises(Exception, match="peer closed connection without sending complete message body"), \
            an.messages.stream(
            model="claude-opus-4-6", max_tokens=100, messages=ASK) as stream:  # type: ignore[arg-type]
        for event in stream:
            seen.append(event.type)
    # message_start, content_block_start, ping, then two deltas (the SDK adds a text event per delta)
    assert [t for t in seen if t != "text"] == ["message_start", "content_block_start", "content_block_delta",
                                                "content_block_delta"]


def test_cut_on_a_json_answer_closes_mid_body(sim: Any, oa: openai.OpenAI) -> None:
    sim.add_fault(vendor="openai", mode="cut")
    with pytest.raises(openai.APIConnectionError):
        oa.chat.completions.create(model="gpt-5", messages=ASK)  # type: ignore[arg-type]


def test_malformed_is_a_200_that_is_not_json(sim: Any, oa: openai.OpenAI) -> None:
    sim.add_fault(vendor="openai", mode="malformed")
    response = httpx.post(f"{sim.url}/openai/v1/chat/completions", headers={"authorization": f"Bearer {KEY}"},
                          json={"model": "gpt-5", "messages": ASK})
    assert response.status_code == 200
    with pytest.raises(ValueError):
        response.json()
    with pytest.raises(ValueError, match="Unterminated string"):
        oa.chat.completions.create(model="gpt-5", messages=ASK)  # type: ignore[arg-type]


def test_blank_answers_are_well_formed_and_empty(sim: Any, oa: openai.OpenAI, an: anthropic.Anthropic) -> None:
    sim.add_fault(vendor="*", mode="blank")
    completion = oa.chat.completions.create(model="gpt-5", messages=ASK)  # type: ignore[arg-type]
    assert completion.choices[0].message.content == "" and completion.choices[0].message.tool_calls is None
    message = an.messages.create(model="claude-opus-4-6", max_tokens=20, messages=ASK)  # type: ignore[arg-type]
    assert [(b.type, getattr(b, "text", None)) for b in message.content] == [("text", "")]
    with an.messages.stream(model="claude-opus-4-6", max_tokens=20, messages=ASK) as stream:  # type: ignore[arg-type]
        assert stream.get_final_text() == ""


def test_faults_are_listed_and_deleted_one_by_one(sim: Any) -> None:
    one = sim.add_fault(vendor="openai", mode="status", status=500)
    two = sim.add_fault(vendor="anthropic", mode="hang", id="my-hang")
    assert two["id"] == "my-hang"
    assert [f["id"] for f in sim.faults()] == [one["id"], "my-hang"]
    assert httpx.delete(f"{sim.url}/_sim/faults/{one['id']}").status_code == 200
    assert httpx.delete(f"{sim.url}/_sim/faults/nope").status_code == 404
    assert [f["id"] for f in sim.faults()] == ["my-hang"]
    sim.clear_faults()
    assert sim.faults() == []


@pytest.mark.parametrize(("fault", "phrase"), [
    ({"mode": "explode"}, "mode must be one of"),
    ({"mode": "status", "status": 200}, "HTTP error status"),
    ({"rate": 2}, "between 0 and 1"),
    ({"colour": "red"}, "unknown fault field 'colour'"),
    ({"count": 0}, "at least 1"),
    ({"mode": "slow", "ttft_ms": {"p50": 300, "p99": 100}}, "at most p99"),
    ({"mode": "slow", "ttft_ms": {"p50": 0, "p99": 100}}, "above 0"),
    ({"mode": "slow", "gap_ms": {"p50": 10}}, "'gap_ms' is a number or"),
    ({"mode": "slow", "gap_ms": {"p50": 10, "p99": "lots"}}, "must be numbers"),
    ({"mode": "slow", "ttft_ms": -5}, "must not be negative"),
    ({"mode": "slow", "ttft_ms": "fast"}, "'ttft_ms' must be a number"),
])
def test_bad_faults_are_refused_with_the_reason(sim: Any, fault: dict[str, Any], phrase: str) -> None:
    response = httpx.post(f"{sim.url}/_sim/faults", json={"vendor": "openai", **fault})
    assert response.status_code == 400 and phrase in response.json()["error"]


# --------------------------------------------------------------------------- content policy

GEMINI_ASK = {"contents": [{"role": "user", "parts": [{"text": "[[reply:one two three four five six]]"}]}]}


def gemini_post(sim: Any, verb: str, **params: str) -> httpx.Response:
    return httpx.post(f"{sim.url}/gemini/v1beta/models/gemini-2.5-flash:{verb}", params=params, json=GEMINI_ASK,
                      headers={"x-goog-api-key": KEY})


def test_content_policy_is_each_vendors_own_refusal(sim: Any, oa: openai.OpenAI, an: anthropic.Anthropic) -> None:
    fault = sim.add_fault(vendor="*", mode="status", code="content_policy")
    assert fault["status"] == 400  # the refusal codes default to a 400
    with pytest.raises(openai.BadRequestError) as caught_oa:
        oa.chat.completions.create(model="gpt-5", messages=ASK)  # type: ignore[arg-type]
    assert caught_oa.value.code == "content_policy_violation"
    assert caught_oa.value.body["type"] == "invalid_request_error"  # type: ignore[index]
    assert "safety system" in caught_oa.value.message
    with pytest.raises(anthropic.BadRequestError) as caught_an:
        an.messages.create(model="claude-opus-4-6", max_tokens=20, messages=ASK)  # type: ignore[arg-type]
    assert caught_an.value.status_code == 400
    assert caught_an.value.body["error"] == {  # type: ignore[index]
        "type": "invalid_request_error", "message": "Output blocked by content filtering policy"}
    # Gemini has no error status for it: a 200 whose promptFeedback says why, and no candidates
    blocked = gemini_post(sim, "generateContent")
    assert blocked.status_code == 200
    document = blocked.json()
    assert "candidates" not in document
    assert document["promptFeedback"]["blockReason"] == "SAFETY"
    assert any(r.get("blocked") for r in document["promptFeedback"]["safetyRatings"])
    assert document["usageMetadata"]["promptTokenCount"] > 0
    streamed = gemini_post(sim, "streamGenerateContent", alt="sse")
    assert streamed.headers["content-type"].startswith("text/event-stream")
    (frame,) = [f for f in streamed.text.split("\r\n\r\n") if f]
    assert json.loads(frame[len("data: "):])["promptFeedback"]["blockReason"] == "SAFETY"
    (element,) = gemini_post(sim, "streamGenerateContent").json()  # without alt=sse: a JSON array of one
    assert element["promptFeedback"]["blockReason"] == "SAFETY" and "candidates" not in element
    assert [r["status"] for r in sim.requests()] == [400, 400, 200, 200, 200]


def test_content_policy_keeps_a_status_given_and_a_message_given(sim: Any, an: anthropic.Anthropic) -> None:
    sim.add_fault(vendor="anthropic", mode="status", status=403, code="content_policy", message="Nope.")
    with pytest.raises(anthropic.PermissionDeniedError) as caught:
        an.messages.create(model="claude-opus-4-6", max_tokens=20, messages=ASK)  # type: ignore[arg-type]
    assert caught.value.body["error"] == {"type": "permission_error", "message": "Nope."}  # type: ignore[index]


@pytest.mark.parametrize("stream", [False, True], ids=["json", "stream"])
def test_filtered_stops_the_answer_half_way_with_the_vendors_reason(sim: Any, oa: openai.OpenAI,
                                                                     an: anthropic.Anthropic, stream: bool) -> None:
    sim.add_fault(vendor="*", mode="filtered")
    ask = [{"role": "user", "content": "[[reply:one two three four five six]]"}]
    if stream:
        chunks = list(oa.chat.completions.create(model="gpt-5", messages=ask, stream=True))  # type: ignore[arg-type]
        text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
        finish = [c.choices[0].finish_reason for c in chunks if c.choices and c.choices[0].finish_reason]
        with an.messages.stream(model="claude-opus-4-6", max_tokens=50, messages=ask) as s:  # type: ignore[arg-type]
            message = s.get_final_message()
    else:
        completion = oa.chat.completions.create(model="gpt-5", messages=ask)  # type: ignore[arg-type]
        text, finish = completion.choices[0].message.content or "", [completion.choices[0].finish_reason]
        message = an.messages.create(model="claude-opus-4-6", max_tokens=50, messages=ask)  # type: ignore[arg-type]
    assert (text, finish) == ("one two three", ["content_filter"])
    assert message.stop_reason == "refusal"
    assert [b.text for b in message.content if b.type == "text"] == ["one two three"]
    if stream:
        chunks_g = [json.loads(f[len("data: "):]) for f in gemini_post(
            sim, "streamGenerateContent", alt="sse").text.split("\r\n\r\n") if f]
        said = "".join(p["text"] for c in chunks_g for p in c["candidates"][0].get("content", {}).get("parts", []))
        assert said == "one two three"
        last = chunks_g[-1]["candidates"][0]
    else:
        last = gemini_post(sim, "generateContent").json()["candidates"][0]
    # the candidate the safety system stopped: its reason and ratings, and no content of its own
    assert last["finishReason"] == "SAFETY" and "content" not in last
    assert any(r.get("blocked") for r in last["safetyRatings"])


# --------------------------------------------------------------------------- latency distributions


def test_a_latency_distribution_is_a_lognormal_fitted_to_p50_and_p99() -> None:
    import random

    latency, rng = Latency(200, 2000), random.Random(7)
    draws = sorted(latency.draw(rng) for _ in range(20_000))
    assert 180 < draws[10_000] < 220  # the median
    assert 1700 < draws[19_800] < 2300  # the 99th percentile
    assert Latency(50, 50).draw(random.Random(1)) == pytest.approx(50)  # p50 == p99: a constant


def test_latency_draws_repeat_for_a_seed_and_differ_between_seeds() -> None:
    fault = parse_fault({"mode": "slow", "ttft_ms": {"p50": 200, "p99": 2000}}, "f1")
    assert isinstance(fault.ttft_ms, Latency)

    def draws(seed: int) -> list[float]:
        book = FaultBook(seed)
        out = []
        for hit in range(1, 6):
            fault.hits = hit
            out.append(fault.ttft_ms.draw(book.rng(fault)))  # type: ignore[union-attr]
        return out

    assert draws(0) == draws(0)
    assert draws(0) != draws(1)
    assert len(set(draws(0))) == 5  # every hit its own draw


def test_plain_numbers_still_mean_a_constant_delay() -> None:
    fault: Fault = parse_fault({"mode": "slow", "ttft_ms": 300, "gap_ms": 20}, "f1")
    assert (fault.ttft_ms, fault.gap_ms) == (300.0, 20.0)


def test_slow_with_distributions_spreads_and_repeats_per_seed(sim: Any) -> None:
    slow = {"vendor": "openai", "mode": "slow", "ttft_ms": {"p50": 2, "p99": 20}, "gap_ms": {"p50": 0.5, "p99": 3}}
    listed = sim.add_fault(**slow)
    assert (listed["ttft_ms"], listed["gap_ms"]) == (slow["ttft_ms"], slow["gap_ms"])
    body = {"model": "gpt-5", "stream": True, "messages": ASK}

    def run() -> list[dict[str, Any]]:
        with httpx.Client(base_url=sim.url, headers={"authorization": f"Bearer {KEY}"}) as http:
            for _ in range(12):
                assert b"data: [DONE]" in http.post("/openai/v1/chat/completions", json=body).content
        return [r["fault"] for r in sim.requests("openai")]

    first = run()
    ttfts = [f["ttft_ms"] for f in first]
    assert len(set(ttfts)) == 12 and all(t > 0 for t in ttfts)  # spread, not one constant
    gaps = first[0]["gap_ms"]
    assert len(gaps) == 10 and len(set(gaps)) == 10  # 11 events: a draw before each after the first
    sim.reset()
    sim.add_fault(**slow)
    assert run() == first  # same seed, same delays
