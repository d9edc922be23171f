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
    started = time.monotonic()
    with pytest.raises(anthropic.APITimeoutError):
        client.messages.create(model="claude-opus-4-6", max_tokens=5, messages=ASK)  # type: ignore[arg-type]
    assert time.monotonic() - started >= 0.45  # it waited for the client's own deadline
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


def test_stall_goes_silent_then_closes(sim: Any) -> None:
    sim.add_fault(vendor="openai", mode="stall", after_events=2, seconds=0.6)
    body = {"model": "gpt-5", "stream": True, "messages": ASK}
    started = time.monotonic()
    received = b""
    with pytest.raises(httpx.RemoteProtocolError), httpx.stream(
            "POST", f"{sim.url}/openai/v1/chat/completions", json=body,
            headers={"authorization": f"Bearer {KEY}"}, timeout=5) as response:
        for chunk in response.iter_raw():
            received += chunk
    assert time.monotonic() - started >= 0.55
    assert received.count(b"data: ") == 2
    # and a client with a short idle timeout notices first
    sim.add_fault(vendor="openai", mode="stall", after_events=2, seconds=5)
    with pytest.raises(httpx.ReadTimeout), httpx.stream(
            "POST", f"{sim.url}/openai/v1/chat/completions", json=body,
            headers={"authorization": f"Bearer {KEY}"}, timeout=0.3) as response:
        for _ in response.iter_raw():
            pass


def test_no_terminator_omits_done_and_message_stop(sim: Any) -> None:
    sim.add_fault(vendor="*", mode="no_terminator")
    oa_text = httpx.post(f"{sim.url}/openai/v1/chat/completions", headers={"authorization": f"Bearer {KEY}"},
                         json={"model": "gpt-5", "stream": True, "messages": ASK}).text
    assert "[DONE]" not in oa_text and '"finish_reason":"stop"' in oa_text
    an_text = httpx.post(f"{sim.url}/anthropic/v1/messages", headers=AN_HEADERS,
                         json={"model": "claude-opus-4-6", "max_tokens": 50, "stream": True, "messages": ASK}).text
    assert "message_stop" not in an_text and "event: message_delta" in an_text


def test_bad_event_is_one_malformed_line_in_a_good_stream(sim: Any) -> None:
    sim.add_fault(vendor="anthropic", mode="bad_event", at_event=4)
    text = httpx.post(f"{sim.url}/anthropic/v1/messages", headers=AN_HEADERS,
                      json={"model": "claude-opus-4-6", "max_tokens": 50, "stream": True, "messages": ASK}).text
    frames = [f for f in text.split("\n\n") if f]
    bad = []
    for index, frame in enumerate(frames):
        try:
            json.loads(frame.split("data: ", 1)[1])
        except ValueError:
            bad.append(index)
    assert bad == [3]
    assert frames[-1].startswith("event: message_stop")


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


def test_slow_adds_first_token_and_gap_latency(sim: Any) -> None:
    sim.add_fault(vendor="openai", mode="slow", ttft_ms=300, gap_ms=20)
    started = time.monotonic()
    with httpx.stream("POST", f"{sim.url}/openai/v1/chat/completions", headers={"authorization": f"Bearer {KEY}"},
                      json={"model": "gpt-5", "stream": True, "messages": ASK}) as response:
        chunks = response.iter_raw()
        next(chunks)
        first = time.monotonic() - started
        for _ in chunks:
            pass
    total = time.monotonic() - started
    assert first >= 0.29
    assert total >= first + 0.15  # 11 events, 20 ms apart


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
])
def test_bad_faults_are_refused_with_the_reason(sim: Any, fault: dict[str, Any], phrase: str) -> None:
    response = httpx.post(f"{sim.url}/_sim/faults", json={"vendor": "openai", **fault})
    assert response.status_code == 400 and phrase in response.json()["error"]
