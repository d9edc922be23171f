"""The upstream HTTP client against raw asyncio servers on loopback that answer exactly as told:
framing (Content-Length, chunked, close-delimited), gzip, keep-alive reuse, a pooled connection
the server closed, early release, broken and non-HTTP answers, deadlines, bad headers."""

from __future__ import annotations

import asyncio
import gzip
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager

import pytest

from outlast.providers import client as http

Handler = Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]]


@asynccontextmanager
async def serving(handler: Handler) -> AsyncIterator[tuple[str, list[int]]]:
    """A server running ``handler`` per connection; yields its URL and a list that counts connections."""
    connections: list[int] = []

    async def accept(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        connections.append(1)
        try:
            await handler(reader, writer)
        except (ConnectionError, asyncio.IncompleteReadError):
            pass
        finally:
            writer.close()

    server = await asyncio.start_server(accept, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    try:
        yield f"http://127.0.0.1:{port}", connections
    finally:
        server.close()


async def read_request(reader: asyncio.StreamReader) -> tuple[bytes, bytes]:
    head = await reader.readuntil(b"\r\n\r\n")
    length = 0
    for line in head.split(b"\r\n"):
        if line.lower().startswith(b"content-length:"):
            length = int(line.split(b":", 1)[1])
    return head, await reader.readexactly(length)


def keep_answering(*answers: bytes) -> Handler:
    """Answer each request on a connection with the next of ``answers`` (the last one repeats)."""
    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        i = 0
        while True:
            await read_request(reader)
            writer.write(answers[min(i, len(answers) - 1)])
            await writer.drain()
            i += 1
    return handler


def deadlines(seconds: float = 5.0) -> dict[str, float]:
    now = asyncio.get_running_loop().time()
    return {"connect_deadline": now + seconds, "deadline": now + seconds}


OK = b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 11\r\n\r\n{\"ok\":true}"


async def test_content_length_answers_reuse_one_connection() -> None:
    async with serving(keep_answering(OK)) as (url, connections):
        client = http.Client()
        for _ in range(3):
            response = await client.request("POST", url + "/v1/x", b"{}", {"x-k": "v"}, **deadlines())
            assert response.status == 200 and response.content_type == "application/json"
            assert await response.read(asyncio.get_running_loop().time() + 5) == b'{"ok":true}'
            response.release()
        assert len(connections) == 1
        await client.aclose()


async def test_the_request_carries_host_length_and_headers() -> None:
    seen: list[tuple[bytes, bytes]] = []

    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        seen.append(await read_request(reader))
        writer.write(OK)
        await writer.drain()

    async with serving(handler) as (url, _):
        client = http.Client()
        response = await client.request("POST", url + "/v1/messages?beta=true", b'{"a":1}',
                                        {"x-api-key": "k-123"}, **deadlines())
        response.release()
        await client.aclose()
    head, body = seen[0]
    lines = head.decode().split("\r\n")
    assert lines[0] == "POST /v1/messages?beta=true HTTP/1.1"
    assert f"Host: {url.removeprefix('http://')}" in lines
    assert "Content-Length: 7" in lines and "x-api-key: k-123" in lines
    assert body == b'{"a":1}'


async def test_chunked_body_arrives_piece_by_piece() -> None:
    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await read_request(reader)
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nTransfer-Encoding: chunked\r\n\r\n")
        writer.write(b"6\r\ndata: \r\n")
        await writer.drain()
        await asyncio.sleep(0.05)
        writer.write(b"3\r\nhi\n\r\n0\r\n\r\n")
        await writer.drain()
        await reader.read()  # keep the connection open

    async with serving(handler) as (url, _):
        client = http.Client()
        response = await client.request("POST", url, b"", {}, **deadlines())
        assert response.content_type == "text/event-stream"
        later = asyncio.get_running_loop().time() + 5
        pieces = []
        while chunk := await response.read_chunk(later):
            pieces.append(chunk)
        assert b"".join(pieces) == b"data: hi\n" and len(pieces) == 2
        response.release()
        await client.aclose()


async def test_a_body_delimited_by_the_connection_closing() -> None:
    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await read_request(reader)
        writer.write(b"HTTP/1.1 200 OK\r\nConnection: close\r\n\r\nall of it")
        await writer.drain()

    async with serving(handler) as (url, _):
        client = http.Client()
        response = await client.request("GET", url, None, {}, **deadlines())
        assert await response.read(asyncio.get_running_loop().time() + 5) == b"all of it"
        response.release()
        await client.aclose()


async def test_gzip_bodies_are_decoded() -> None:
    packed = gzip.compress(b'{"long":"' + b"x" * 1000 + b'"}')
    answer = (b"HTTP/1.1 200 OK\r\nContent-Encoding: gzip\r\nContent-Length: " + str(len(packed)).encode()
              + b"\r\n\r\n" + packed)
    async with serving(keep_answering(answer)) as (url, _):
        client = http.Client()
        response = await client.request("POST", url, b"{}", {}, **deadlines())
        assert await response.read(asyncio.get_running_loop().time() + 5) == b'{"long":"' + b"x" * 1000 + b'"}'
        response.release()
        await client.aclose()


async def test_a_pooled_connection_the_server_closed_is_replaced_transparently() -> None:
    async def once_then_close(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await read_request(reader)
        writer.write(OK)  # keep-alive as far as the client knows, but the server closes right after
        await writer.drain()
        await read_request(reader)  # the next request arrives ... and the connection just closes

    async with serving(once_then_close) as (url, connections):
        client = http.Client()
        for _ in range(2):
            response = await client.request("POST", url, b"{}", {}, **deadlines())
            assert await response.read(asyncio.get_running_loop().time() + 5) == b'{"ok":true}'
            response.release()
        assert len(connections) == 2
        await client.aclose()


async def test_a_connection_cut_mid_body_is_disconnected_after_the_head() -> None:
    async def cut(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await read_request(reader)
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\nonly some")
        await writer.drain()

    async with serving(cut) as (url, _):
        client = http.Client()
        response = await client.request("POST", url, b"{}", {}, **deadlines())
        with pytest.raises(http.Disconnected) as caught:
            await response.read(asyncio.get_running_loop().time() + 5)
        assert caught.value.head_received
        response.release()
        await client.aclose()


async def test_an_early_release_drains_and_pools_the_connection() -> None:
    async def slow_tail(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        while True:
            await read_request(reader)
            writer.write(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nfirst\r\n")
            await writer.drain()
            await asyncio.sleep(0.05)
            writer.write(b"0\r\n\r\n")
            await writer.drain()

    async with serving(slow_tail) as (url, connections):
        client = http.Client()
        response = await client.request("POST", url, b"{}", {}, **deadlines())
        assert await response.read_chunk(asyncio.get_running_loop().time() + 5) == b"first"
        response.release()  # before the last chunk
        await asyncio.sleep(0.3)
        response = await client.request("POST", url, b"{}", {}, **deadlines())
        assert await response.read_chunk(asyncio.get_running_loop().time() + 5) == b"first"
        response.release()
        assert len(connections) == 1
        await client.aclose()


async def test_an_answer_that_is_not_http_is_a_protocol_error() -> None:
    async def garbage(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await read_request(reader)
        writer.write(b"SSH-2.0-OpenSSH_9.6\r\n\r\n")
        await writer.drain()
        await reader.read()

    async with serving(garbage) as (url, _):
        client = http.Client()
        with pytest.raises(http.ProtocolError, match="invalid HTTP response"):
            await client.request("POST", url, b"{}", {}, **deadlines())
        await client.aclose()


async def test_a_silent_server_hits_the_deadline() -> None:
    async def silent(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.read()

    async with serving(silent) as (url, _):
        client = http.Client()
        with pytest.raises(http.ReadTimeout):
            await client.request("POST", url, b"{}", {}, **deadlines(0.2))
        await client.aclose()


async def test_a_refused_connection_is_a_connect_error() -> None:
    server = await asyncio.start_server(lambda r, w: None, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    server.close()
    await server.wait_closed()
    client = http.Client()
    with pytest.raises(http.ConnectError) as caught:
        await client.request("POST", f"http://127.0.0.1:{port}/", b"{}", {}, **deadlines())
    assert caught.value.os_error is not None
    await client.aclose()


@pytest.mark.parametrize("headers", [{"x-evil": "a\r\nHost: elsewhere"}, {"x-bad\nname": "v"},
                                     {"x": "caf\u00e9\u2603"}])
async def test_headers_that_would_break_the_request_are_refused(headers: dict[str, str]) -> None:
    async with serving(keep_answering(OK)) as (url, connections):
        client = http.Client()
        with pytest.raises(http.ProtocolError):
            await client.request("POST", url, b"{}", headers, **deadlines())
        assert connections == []
        await client.aclose()


async def test_only_http_and_https_urls() -> None:
    client = http.Client()
    with pytest.raises(http.ConnectError, match="cannot request file URL"):
        await client.request("GET", "file:///etc/passwd", None, {}, **deadlines())
    await client.aclose()
