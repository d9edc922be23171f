"""The HTTP server's limits on clients, over raw sockets on loopback: oversized headers (431), headers
or a body that trickle in too slowly (408), idle keep-alive connections (closed), oversized bodies (413).

The gateway's limits are made small through its configuration; the sockets wait generously, and no
assertion is about how long anything took.
"""

from __future__ import annotations

import socket
from collections.abc import Iterator
from typing import Any

import orjson
import pytest

from outlast.app import build_gateway
from outlast.config import validate
from outlast.serving import BackgroundServer
from tests.conftest import MASTER_KEY, gateway_document

MAX_HEADERS = 4096
WAIT = 30.0  # the socket timeout: far longer than any server-side limit below


@pytest.fixture(scope="module")
def limited(sim_server: Any) -> Iterator[Any]:
    document = gateway_document(sim_server.url, max_body_bytes=2048, record=False,
                                limits={"header_timeout": 1.0, "body_timeout": 1.0, "keep_alive": 1.0})
    document["governance"] = {"max_header_bytes": MAX_HEADERS}
    with BackgroundServer(build_gateway(validate(document))) as server:
        yield server


def connect(server: Any) -> socket.socket:
    client = socket.create_connection((server.host, server.port), timeout=WAIT)
    client.settimeout(WAIT)
    return client


def read_all(client: socket.socket) -> bytes:
    """Everything the server sends until it closes the connection."""
    chunks = []
    while True:
        try:
            chunk = client.recv(65536)
        except ConnectionResetError:
            break
        if not chunk:
            break
        chunks.append(chunk)
    return b"".join(chunks)


def read_response(client: socket.socket) -> tuple[int, dict[str, str], bytes]:
    """One response with a content-length, leaving the connection open."""
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = client.recv(65536)
        assert chunk, f"the connection closed mid-response: {data!r}"
        data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    headers = {k.lower(): v.strip() for k, _, v in (line.partition(":") for line in lines[1:])}
    while len(body) < int(headers["content-length"]):
        body += client.recv(65536)
    return int(lines[0].split()[1]), headers, body


def status_of(response: bytes) -> int:
    assert response.startswith(b"HTTP/1.1 "), response[:200]
    return int(response.split()[1])


def body_of(response: bytes) -> Any:
    return orjson.loads(response.partition(b"\r\n\r\n")[2])


def request_head(path: str = "/v1/chat/completions", extra: str = "", length: int | None = None) -> bytes:
    head = f"POST {path} HTTP/1.1\r\nhost: gateway\r\nauthorization: Bearer {MASTER_KEY}\r\n"
    head += "content-type: application/json\r\n"
    if length is not None:
        head += f"content-length: {length}\r\n"
    return (head + extra + "\r\n").encode()


CHAT = orjson.dumps({"model": "to-openai", "max_tokens": 8, "messages": [{"role": "user", "content": "hi"}]})


def test_headers_over_the_limit_get_431_and_the_connection_closed(limited: Any) -> None:
    with connect(limited) as client:
        client.sendall(request_head(extra=f"x-padding: {'a' * (MAX_HEADERS + 100)}\r\n", length=len(CHAT)) + CHAT)
        response = read_all(client)
    assert status_of(response) == 431
    error = body_of(response)["error"]
    assert "4096 bytes" in error["message"] and error["code"] == "request_header_fields_too_large"
    assert b"connection: close" in response.lower()


def test_headers_that_never_end_are_cut_off_at_the_limit(limited: Any) -> None:
    with connect(limited) as client:
        client.sendall(b"GET /healthz HTTP/1.1\r\nhost: gateway\r\n")
        sent = 0
        try:
            while sent < 4 * MAX_HEADERS:  # one endless header, in small pieces
                client.sendall(b"x-endless-" + str(sent).encode() + b": " + b"b" * 500 + b"\r\n")
                sent += 520
        except (BrokenPipeError, ConnectionResetError):
            pass  # the server closed on us, as it should
        response = read_all(client)
    assert status_of(response) == 431


def test_headers_just_under_the_limit_are_served(limited: Any) -> None:
    with connect(limited) as client:
        client.sendall(request_head(extra=f"x-padding: {'a' * (MAX_HEADERS - 400)}\r\n", length=len(CHAT)) + CHAT)
        status, _, body = read_response(client)
    assert status == 200, body
    assert orjson.loads(body)["object"] == "chat.completion"


def test_headers_that_trickle_too_slowly_get_408(limited: Any) -> None:
    with connect(limited) as client:
        client.sendall(b"POST /v1/messages HTTP/1.1\r\nhost: gateway\r\n")  # and then nothing
        response = read_all(client)
    assert status_of(response) == 408
    assert body_of(response)["error"]["code"] == "request_timeout"


def test_a_connection_that_sends_nothing_is_closed_without_an_answer(limited: Any) -> None:
    with connect(limited) as client:
        assert read_all(client) == b""


def test_a_body_that_stops_arriving_gets_408(limited: Any) -> None:
    with connect(limited) as client:
        client.sendall(request_head(length=len(CHAT)) + CHAT[:10])  # the rest never comes
        response = read_all(client)
    assert status_of(response) == 408
    error = body_of(response)["error"]
    assert "body" in error["message"] and error["code"] == "request_timeout"


def test_an_idle_keep_alive_connection_is_closed(limited: Any) -> None:
    with connect(limited) as client:
        client.sendall(b"GET /healthz HTTP/1.1\r\nhost: gateway\r\n\r\n")
        status, _, body = read_response(client)
        assert status == 200 and orjson.loads(body)["status"] == "ok"
        assert read_all(client) == b""  # no second request: the server hangs up


def test_a_kept_alive_connection_serves_a_second_request(limited: Any) -> None:
    with connect(limited) as client:
        for _ in range(2):
            client.sendall(b"GET /healthz HTTP/1.1\r\nhost: gateway\r\n\r\n")
            status, _, _ = read_response(client)
            assert status == 200


def test_a_body_over_max_body_bytes_gets_413_in_the_callers_dialect(limited: Any) -> None:
    big = orjson.dumps({"model": "to-openai", "max_tokens": 8,
                        "messages": [{"role": "user", "content": "x" * 4096}]})
    with connect(limited) as client:
        client.sendall(request_head("/v1/messages", extra="anthropic-version: 2023-06-01\r\n", length=len(big)) + big)
        status, _, body = read_response(client)
    assert status == 413
    assert orjson.loads(body)["type"] == "error" and "2048 bytes" in orjson.loads(body)["error"]["message"]
