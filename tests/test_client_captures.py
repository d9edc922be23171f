"""Requests captured from real clients (Claude Code, the Python SDKs), replayed through the gateway:
each gets a well-formed answer in its own dialect."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import httpx
import pytest

from outlast.providers.sse import SSEDecoder
from tests.conftest import FIXTURES, MASTER_KEY

DROP = {"host", "content-length", "connection", "accept-encoding", "x-api-key", "authorization"}


def captures() -> list[tuple[str, dict[str, Any]]]:
    found: list[tuple[str, dict[str, Any]]] = []
    clients = FIXTURES / "clients"
    for name in ("python-sdks.jsonl", "claude-code-2.1.197.jsonl"):
        for i, line in enumerate((clients / name).read_text().splitlines()):
            if line.strip():
                found.append((f"{name}:{i + 1}", json.loads(line)))
    for path in sorted(clients.glob("*.request.json")):
        document = json.loads(path.read_text())
        for i, item in enumerate(document if isinstance(document, list) else [document]):
            found.append((f"{path.name}:{i}", _unredact(item)))
    return found


def _unredact(capture: dict[str, Any]) -> dict[str, Any]:
    """The redacted captures summarise their tool lists; replay them with the one tool kept whole."""
    body = capture.get("body")
    if isinstance(body, dict) and "tools" in body:
        tools = body["tools"]
        if isinstance(tools, dict):
            body = {**body, "tools": [tools["first_tool_full"]] if "first_tool_full" in tools else []}
        elif isinstance(tools, str):
            body = {k: v for k, v in body.items() if k != "tools"}
        capture = {**capture, "body": body}
    return capture


def sse_events(text: str) -> list[tuple[str | None, str]]:
    decoder = SSEDecoder()
    events = []
    for line in text.splitlines():
        event = decoder.feed(line)
        if event is not None:
            events.append((event.event, event.data))
    tail = decoder.flush()
    if tail is not None:
        events.append((tail.event, tail.data))
    return events


def check_anthropic_stream(text: str) -> None:
    events = sse_events(text)
    names = [e for e, _ in events]
    assert names[0] == "message_start" and names[-1] == "message_stop", names
    assert all(name is not None for name in names), "Claude Code needs event: lines"
    open_blocks: set[int] = set()
    for name, data in events:
        payload = json.loads(data)
        assert payload["type"] == name
        if name == "content_block_start":
            open_blocks.add(payload["index"])
        elif name == "content_block_stop":
            open_blocks.remove(payload["index"])
        elif name == "content_block_delta":
            assert payload["index"] in open_blocks
    assert not open_blocks
    delta = [json.loads(d) for e, d in events if e == "message_delta"]
    assert len(delta) == 1 and delta[0]["delta"]["stop_reason"] in ("end_turn", "tool_use", "max_tokens")


def check_openai_stream(text: str, include_usage: bool) -> None:
    events = sse_events(text)
    assert events[-1][1] == "[DONE]"
    chunks = [json.loads(d) for _, d in events[:-1]]
    assert all(c["object"] == "chat.completion.chunk" for c in chunks)
    assert [c for c in chunks if c["choices"] and c["choices"][0].get("finish_reason")]
    if include_usage:
        assert chunks[-1]["choices"] == [] and chunks[-1]["usage"]["total_tokens"] > 0


@pytest.mark.parametrize(("name", "capture"), captures(), ids=[n for n, _ in captures()])
def test_captured_request_gets_a_well_formed_answer(gateway: Any, sim: Any, name: str,
                                                    capture: dict[str, Any]) -> None:
    headers = {k: v for k, v in capture.get("headers", {}).items() if k.lower() not in DROP}
    headers["x-api-key"] = MASTER_KEY
    path = capture["path"] + (f"?{capture['query']}" if capture.get("query") else "")
    body = capture.get("body")
    with httpx.Client(base_url=gateway.url, timeout=30) as http:
        response = http.request(capture["method"], path, headers=headers,
                                content=json.dumps(body).encode() if body is not None else None)
    route = capture["path"]
    if capture["method"] == "HEAD":
        assert response.status_code == 200
        return
    if route == "/v1/responses":
        # Not served yet: a quick, clean 404 in OpenAI's shape, so clients fall back.
        assert response.status_code == 404
        assert "Responses API" in response.json()["error"]["message"]
        return
    assert response.status_code == 200, response.text
    if route == "/v1/models":
        assert response.json()["object"] == "list" and response.json()["data"]
        return
    if route == "/v1/messages/count_tokens":
        assert response.json()["input_tokens"] > 0
        return
    assert response.headers["x-outlast-served-by"]
    streaming = isinstance(body, dict) and body.get("stream") is True
    if route == "/v1/messages":
        if streaming:
            assert response.headers["content-type"].startswith("text/event-stream")
            check_anthropic_stream(response.text)
        else:
            message = response.json()
            assert message["type"] == "message" and message["role"] == "assistant" and message["content"]
    else:
        if streaming:
            options = body.get("stream_options") or {}
            check_openai_stream(response.text, bool(options.get("include_usage")))
        else:
            completion = response.json()
            assert completion["object"] == "chat.completion"
            choice = completion["choices"][0]
            assert choice["message"]["content"] or choice["message"].get("tool_calls")
    assert len(sim.requests()) == 1


def test_fixture_files_are_all_replayed() -> None:
    names = {n.split(":")[0] for n, _ in captures()}
    on_disk = {p.name for p in (FIXTURES / "clients").iterdir() if p.suffix in (".json", ".jsonl")}
    assert names == on_disk
    assert Path(FIXTURES / "clients" / "CLIENTS.md").is_file()
