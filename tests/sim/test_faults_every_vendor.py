"""Every fault mode on every vendor format, over plain HTTP: what reaches the wire, frame by frame.

The SDK-level checks of single vendors live in test_faults.py; here each mode is run against OpenAI,
Anthropic and Gemini alike, streamed (SSE) and, where the mode applies to it, as one JSON answer.
"""

from __future__ import annotations

import json
import re
from typing import Any

import httpx
import pytest

from tests.sim.conftest import KEY

VENDORS = ["openai", "anthropic", "gemini"]
WORDS = " ".join(f"w{i}" for i in range(20))
ASK_TEXT = f"[[reply:{WORDS}]]"


def request_for(vendor: str, stream: bool) -> tuple[str, dict[str, Any], dict[str, str]]:
    """(path, body, headers) of a request for the 20-word answer."""
    if vendor == "openai":
        return ("/openai/v1/chat/completions",
                {"model": "gpt-5", "stream": stream, "messages": [{"role": "user", "content": ASK_TEXT}]},
                {"authorization": f"Bearer {KEY}"})
    if vendor == "anthropic":
        return ("/anthropic/v1/messages",
                {"model": "claude-opus-4-6", "max_tokens": 100, "stream": stream,
                 "messages": [{"role": "user", "content": ASK_TEXT}]},
                {"x-api-key": KEY, "anthropic-version": "2023-06-01"})
    verb = "streamGenerateContent?alt=sse" if stream else "generateContent"
    return (f"/gemini/v1beta/models/gemini-2.5-flash:{verb}",
            {"contents": [{"role": "user", "parts": [{"text": ASK_TEXT}]}]}, {"x-goog-api-key": KEY})


def post(sim: Any, vendor: str, stream: bool, timeout: float = 10) -> httpx.Response:
    path, body, headers = request_for(vendor, stream)
    return httpx.post(sim.url + path, json=body, headers=headers, timeout=timeout)


def frames(raw: bytes) -> list[str]:
    """SSE events of a stream body (Gemini separates them with CRLF)."""
    return [f for f in re.split(r"\r?\n\r?\n", raw.decode()) if f.strip()]


def data_of(frame: str) -> str:
    return frame.split("data: ", 1)[1].strip()


def read_until_broken(sim: Any, vendor: str, stream: bool) -> tuple[bytes, type[Exception] | None]:
    """The bytes received before the connection broke, and how it broke (None: it did not)."""
    path, body, headers = request_for(vendor, stream)
    received = b""
    try:
        with httpx.stream("POST", sim.url + path, json=body, headers=headers, timeout=10) as response:
            for chunk in response.iter_raw():
                received += chunk
    except httpx.HTTPError as error:
        return received, type(error)
    return received, None


def text_of_stream(vendor: str, raw: bytes) -> str:
    out = []
    for frame in frames(raw):
        data = data_of(frame)
        if data == "[DONE]":
            continue
        event = json.loads(data)
        if vendor == "openai":
            out += [c["delta"].get("content") or "" for c in event["choices"]]
        elif vendor == "anthropic":
            if event["type"] == "content_block_delta":
                out.append(event["delta"].get("text", ""))
        else:
            for candidate in event.get("candidates", []):
                out += [p.get("text", "") for p in candidate.get("content", {}).get("parts", [])]
    return "".join(out)


def text_of_json(vendor: str, body: dict[str, Any]) -> str:
    if vendor == "openai":
        return str(body["choices"][0]["message"]["content"])
    if vendor == "anthropic":
        return "".join(b["text"] for b in body["content"] if b["type"] == "text")
    return "".join(p.get("text", "") for p in body["candidates"][0].get("content", {}).get("parts", []))


def terminated(vendor: str, raw: bytes) -> bool:
    """Whether the stream ended the way the vendor ends a complete one."""
    last = frames(raw)[-1]
    if vendor == "openai":
        return data_of(last) == "[DONE]"
    if vendor == "anthropic":
        return last.startswith("event: message_stop")
    return "finishReason" in json.loads(data_of(last))["candidates"][0]


@pytest.mark.parametrize("vendor", VENDORS)
def test_a_clean_stream_is_terminated_and_complete(sim: Any, vendor: str) -> None:
    # the baseline every fault below departs from
    raw = post(sim, vendor, stream=True).content
    assert terminated(vendor, raw)
    assert text_of_stream(vendor, raw) == WORDS


@pytest.mark.parametrize("vendor", VENDORS)
def test_hang_answers_nothing(sim: Any, vendor: str) -> None:
    sim.add_fault(vendor=vendor, mode="hang")
    with pytest.raises(httpx.ReadTimeout):
        post(sim, vendor, stream=True, timeout=0.3)
    (record,) = sim.requests(vendor)
    assert record["fault"]["mode"] == "hang" and record["status"] is None


@pytest.mark.parametrize("vendor", VENDORS)
@pytest.mark.parametrize("stream", [True, False], ids=["stream", "json"])
def test_reset_drops_the_connection_before_any_byte(sim: Any, vendor: str, stream: bool) -> None:
    sim.add_fault(vendor=vendor, mode="reset")
    received, broken = read_until_broken(sim, vendor, stream)
    assert broken is not None and issubclass(broken, httpx.TransportError)
    assert received == b""
    assert sim.requests(vendor)[-1]["status"] is None


@pytest.mark.parametrize("vendor", VENDORS)
def test_cut_closes_a_stream_after_n_events(sim: Any, vendor: str) -> None:
    sim.add_fault(vendor=vendor, mode="cut", after_events=3)
    received, broken = read_until_broken(sim, vendor, stream=True)
    assert broken is httpx.RemoteProtocolError
    assert len(frames(received)) == 3
    assert all(json.loads(data_of(f)) for f in frames(received))  # whole events, then nothing


@pytest.mark.parametrize("vendor", VENDORS)
def test_cut_closes_a_json_answer_half_way(sim: Any, vendor: str) -> None:
    whole = post(sim, vendor, stream=False).content
    sim.add_fault(vendor=vendor, mode="cut")
    received, broken = read_until_broken(sim, vendor, stream=False)
    assert broken is httpx.RemoteProtocolError
    assert 0 < len(received) < len(whole)


@pytest.mark.parametrize("vendor", VENDORS)
def test_stall_goes_silent_then_closes(sim: Any, vendor: str) -> None:
    sim.add_fault(vendor=vendor, mode="stall", after_events=2, seconds=0.2)
    received, broken = read_until_broken(sim, vendor, stream=True)
    assert broken is httpx.RemoteProtocolError
    assert len(frames(received)) == 2
    # a client whose idle timeout is shorter than the stall gives up first
    sim.clear_faults()
    sim.add_fault(vendor=vendor, mode="stall", after_events=2, seconds=5)
    path, body, headers = request_for(vendor, True)
    with pytest.raises(httpx.ReadTimeout), httpx.stream("POST", sim.url + path, json=body, headers=headers,
                                                        timeout=0.3) as response:
        for _ in response.iter_raw():
            pass


@pytest.mark.parametrize("vendor", VENDORS)
def test_no_terminator_is_complete_but_unterminated(sim: Any, vendor: str) -> None:
    sim.add_fault(vendor=vendor, mode="no_terminator")
    raw = post(sim, vendor, stream=True).content
    assert text_of_stream(vendor, raw) == WORDS
    assert not terminated(vendor, raw)


@pytest.mark.parametrize("vendor", VENDORS)
def test_bad_event_is_one_broken_event_in_a_good_stream(sim: Any, vendor: str) -> None:
    sim.add_fault(vendor=vendor, mode="bad_event", at_event=2)
    raw = post(sim, vendor, stream=True).content
    bad = []
    for index, frame in enumerate(frames(raw)):
        data = data_of(frame)
        if data == "[DONE]":
            continue
        try:
            json.loads(data)
        except ValueError:
            bad.append(index)
    assert bad == [1]
    assert terminated(vendor, raw)


@pytest.mark.parametrize("vendor", VENDORS)
@pytest.mark.parametrize("stream", [True, False], ids=["stream", "json"])
def test_malformed_is_a_200_that_is_not_json(sim: Any, vendor: str, stream: bool) -> None:
    sim.add_fault(vendor=vendor, mode="malformed")
    response = post(sim, vendor, stream=stream)
    assert response.status_code == 200
    with pytest.raises(ValueError):
        json.loads(response.content)
    assert b"upstream connect error" in response.content


@pytest.mark.parametrize("vendor", VENDORS)
@pytest.mark.parametrize("stream", [True, False], ids=["stream", "json"])
def test_blank_is_well_formed_and_empty(sim: Any, vendor: str, stream: bool) -> None:
    sim.add_fault(vendor=vendor, mode="blank")
    response = post(sim, vendor, stream=stream)
    assert response.status_code == 200
    if stream:
        assert terminated(vendor, response.content)
        assert text_of_stream(vendor, response.content) == ""
    else:
        assert text_of_json(vendor, response.json()) == ""


@pytest.mark.parametrize("vendor", VENDORS)
def test_slow_delays_are_applied_and_logged(sim: Any, vendor: str) -> None:
    sim.add_fault(vendor=vendor, mode="slow", ttft_ms=30, gap_ms=2)
    raw = post(sim, vendor, stream=True).content
    assert terminated(vendor, raw) and text_of_stream(vendor, raw) == WORDS
    (record,) = sim.requests(vendor)
    assert record["fault"] == {"id": record["fault"]["id"], "mode": "slow", "ttft_ms": 30.0, "gap_ms": 2.0}
