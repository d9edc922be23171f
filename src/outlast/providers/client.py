"""A small HTTP/1.1 client for the upstream hot path: asyncio protocols and httptools.

Every answer outlast relays crosses this code, so it does only what talking to an LLM API
needs: one POST (or GET) at a time per connection, keep-alive pools per origin, TLS, bodies
framed by Content-Length, chunked encoding or the connection closing, gzip/deflate bodies,
and deadlines as absolute event-loop times, so that a read arms at most one timer and only
when it actually has to wait. A general client (aiohttp) cost about a fifth of the gateway's
CPU per request in ``benchmarks/cpu_per_request.py``; this one a fraction of that.

What it raises, all :class:`HTTPClientError`:

- :class:`ConnectError` (refused, unreachable, DNS, TLS handshake) and :class:`ConnectTimeout`;
- :class:`ReadTimeout` when a deadline passes while waiting for the head or the body;
- :class:`Disconnected` when the connection closes (or is reset) before the response is whole;
- :class:`ProtocolError` for an answer that is not HTTP.

A response's connection goes back to its pool once its message is complete and both sides
keep it alive; a response released early (the caller stopped at the stream's terminator) is
drained in the background for a moment and pooled if its end arrives, closed otherwise.
"""

from __future__ import annotations

import asyncio
import ssl
import zlib
from collections.abc import Iterator, Mapping
from typing import Any
from urllib.parse import urlsplit

import httptools

# How long a released, not yet complete response may take to finish before its connection is closed.
DRAIN_SECONDS = 2.0
KEEPALIVE_SECONDS = 60.0
MAX_BODY = 64 * 1024 * 1024
_URL_ENTRIES = 1024  # URLs whose pool, Host and path are remembered (Gemini's carry the model: a few per model)


class HTTPClientError(Exception):
    """Base of everything this client raises."""


class ConnectError(HTTPClientError):
    def __init__(self, message: str, os_error: OSError | None = None) -> None:
        super().__init__(message)
        self.os_error = os_error


class ConnectTimeout(HTTPClientError, TimeoutError):
    pass


class ReadTimeout(HTTPClientError, TimeoutError):
    pass


class Disconnected(HTTPClientError):
    def __init__(self, message: str, *, head_received: bool) -> None:
        super().__init__(message)
        self.head_received = head_received


class ProtocolError(HTTPClientError):
    pass


class Headers(Mapping[str, str]):
    """Response headers, looked up case-insensitively; repeated fields joined with ', '."""

    __slots__ = ("_items",)

    def __init__(self, items: dict[str, str]) -> None:
        self._items = items

    def __getitem__(self, name: str) -> str:
        return self._items[name.lower()]

    def get(self, name: str, default: Any = None) -> Any:
        return self._items.get(name.lower(), default)

    def __contains__(self, name: object) -> bool:
        return isinstance(name, str) and name.lower() in self._items

    def __iter__(self) -> Iterator[str]:
        return iter(self._items)

    def __len__(self) -> int:
        return len(self._items)

    def __repr__(self) -> str:
        return f"Headers({self._items!r})"


def _expire(waiter: asyncio.Future[None]) -> None:
    if not waiter.done():
        waiter.set_exception(ReadTimeout("deadline passed"))


class _Connection(asyncio.Protocol):
    """One keep-alive connection and the response currently arriving on it."""

    def __init__(self, pool: _Pool) -> None:
        self.pool = pool
        self.transport: asyncio.Transport | None = None
        self.closed = False
        self.reused = False
        self.idle_since = 0.0
        self._reset()

    def _reset(self) -> None:
        self.parser = httptools.HttpResponseParser(self)
        self.status = 0
        self.raw_headers: dict[str, str] = {}
        self.head_done = False
        self.complete = False
        self.keep_alive = False
        self.delimited = True  # framed by Content-Length or chunked, not by the connection closing
        self.chunks: list[bytes] = []
        self.buffered = 0
        self.error: HTTPClientError | None = None
        self.received = False
        self.waiter: asyncio.Future[None] | None = None
        self.decoder: Any = None
        self.draining = False

    # ------------------------------------------------------------------ asyncio.Protocol

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def data_received(self, data: bytes) -> None:
        self.received = True
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserError as exc:
            if not self.complete:
                self.error = ProtocolError(f"upstream sent an invalid HTTP response ({exc})")
            self._close()
        self._wake()

    def eof_received(self) -> bool | None:
        return None  # close the transport; connection_lost follows

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        if not self.complete and self.error is None:
            if self.head_done and not self.delimited:
                self._finish_body()
                self.complete = True  # the body ended with the connection, as its head said it would
            elif exc is not None and isinstance(exc, OSError):
                self.error = Disconnected(f"upstream reset the connection ({exc.strerror or exc})",
                                          head_received=self.head_done)
            else:
                self.error = Disconnected("upstream closed the connection", head_received=self.head_done)
        self._wake()
        self.pool.forget(self)

    # ------------------------------------------------------------------ httptools callbacks

    def on_header(self, name: bytes, value: bytes) -> None:
        key = name.decode("latin-1").lower()
        text = value.decode("latin-1")
        previous = self.raw_headers.get(key)
        self.raw_headers[key] = text if previous is None else f"{previous}, {text}"

    def on_headers_complete(self) -> None:
        parser = self.parser
        self.status = parser.get_status_code()
        self.keep_alive = parser.should_keep_alive()
        headers = self.raw_headers
        self.delimited = "content-length" in headers or "chunked" in headers.get("transfer-encoding", "").lower()
        encoding = headers.get("content-encoding", "").strip().lower()
        if encoding in ("gzip", "x-gzip"):
            self.decoder = zlib.decompressobj(16 + zlib.MAX_WBITS)
        elif encoding == "deflate":
            self.decoder = zlib.decompressobj()
        self.head_done = True

    def on_body(self, body: bytes) -> None:
        if self.decoder is not None:
            try:
                body = self.decoder.decompress(body)
            except zlib.error:
                self.error = ProtocolError("upstream sent a body its Content-Encoding cannot decode")
                self._close()
                return
        if body:
            self.chunks.append(body)
            self.buffered += len(body)

    def on_message_complete(self) -> None:
        self._finish_body()
        self.complete = True
        if self.draining:
            self.draining = False
            self.pool.put(self) if self.keep_alive else self._close()

    # ------------------------------------------------------------------ the response's side

    def _finish_body(self) -> None:
        if self.decoder is not None:
            tail = self.decoder.flush()
            if tail:
                self.chunks.append(tail)
                self.buffered += len(tail)

    def _wake(self) -> None:
        waiter = self.waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    def _close(self) -> None:
        self.closed = True
        if self.transport is not None:
            self.transport.close()

    async def wait(self, deadline: float) -> None:
        """Until something new arrives (data, the end, an error) or ``deadline`` (loop time)."""
        loop = self.pool.loop
        waiter = loop.create_future()
        self.waiter = waiter
        timer = loop.call_at(deadline, _expire, waiter)
        try:
            await waiter
        finally:
            timer.cancel()
            self.waiter = None

    def drain_or_close(self) -> None:
        """The caller is done with the response before its end: pool the connection when the
        end arrives soon, close it otherwise."""
        if self.closed or self.error is not None or not self.head_done or not self.keep_alive:
            self._close()
            return
        self.chunks.clear()
        self.draining = True
        self.pool.loop.call_later(DRAIN_SECONDS, self._drain_expired)

    def _drain_expired(self) -> None:
        if self.draining:
            self.draining = False
            self._close()


class Response:
    """The head of an answer, and its body read as it arrives."""

    __slots__ = ("_conn", "_released", "headers", "status")

    def __init__(self, conn: _Connection) -> None:
        self._conn = conn
        self.status = conn.status
        self.headers = Headers(conn.raw_headers)
        self._released = False

    @property
    def content_type(self) -> str:
        return self.headers.get("content-type", "").partition(";")[0].strip().lower()

    async def read_chunk(self, deadline: float) -> bytes:
        """Whatever body arrived since the last call (b"" at the end), waiting until ``deadline``."""
        conn = self._conn
        while True:
            if conn.chunks:
                data = b"".join(conn.chunks) if len(conn.chunks) > 1 else conn.chunks[0]
                conn.chunks.clear()
                conn.buffered = 0
                return data
            if conn.complete:
                return b""
            if conn.error is not None:
                raise conn.error
            await conn.wait(deadline)

    async def read(self, deadline: float, limit: int = MAX_BODY) -> bytes:
        """The whole body (up to ``limit`` bytes: more is a :class:`ProtocolError`)."""
        conn = self._conn
        while not conn.complete:
            if conn.error is not None:
                raise conn.error
            if conn.buffered > limit:
                raise ProtocolError(f"upstream answered with a body over {limit} bytes")
            await conn.wait(deadline)
        data = b"".join(conn.chunks)
        conn.chunks.clear()
        conn.buffered = 0
        return data

    def release(self) -> None:
        if self._released:
            return
        self._released = True
        conn = self._conn
        conn.pool.release_slot()
        if conn.complete and not conn.closed:
            if conn.keep_alive and not conn.chunks:
                conn.pool.put(conn)
            else:
                conn._close()
        elif not conn.closed:
            conn.drain_or_close()


class _Pool:
    """Idle keep-alive connections to one origin, and the bound on connections in use."""

    def __init__(self, client: Client, scheme: str, host: str, port: int, limit: int) -> None:
        self.loop = client.loop
        self.client = client
        self.host = host
        self.port = port
        self.ssl: ssl.SSLContext | None = client.ssl_context() if scheme == "https" else None
        self.idle: list[_Connection] = []
        self.slots = asyncio.Semaphore(limit)

    def put(self, conn: _Connection) -> None:
        conn._reset()
        conn.reused = True
        conn.idle_since = self.loop.time()
        self.idle.append(conn)

    def forget(self, conn: _Connection) -> None:
        try:
            self.idle.remove(conn)
        except ValueError:
            pass

    def release_slot(self) -> None:
        self.slots.release()

    def take(self) -> _Connection | None:
        idle = self.idle
        oldest = self.loop.time() - KEEPALIVE_SECONDS
        while idle:
            conn = idle.pop()
            if conn.closed or conn.transport is None or conn.transport.is_closing():
                continue
            if conn.idle_since < oldest:
                conn._close()
                continue
            return conn
        return None

    async def connect(self, deadline: float) -> _Connection:
        loop = self.loop
        try:
            async with asyncio.timeout_at(deadline):
                _, conn = await loop.create_connection(
                    lambda: _Connection(self), self.host, self.port, ssl=self.ssl,
                    server_hostname=self.host if self.ssl is not None else None)
        except TimeoutError:
            raise ConnectTimeout(f"no connection to {self.host}:{self.port} in time") from None
        except ssl.SSLError as exc:
            raise ConnectError(f"TLS handshake with {self.host} failed ({exc.reason or exc})", exc) from None
        except OSError as exc:
            raise ConnectError(f"{exc.strerror or exc}", exc) from None
        return conn

    def close(self) -> None:
        for conn in self.idle:
            conn._close()
        self.idle.clear()


class Client:
    """Pools per origin; ``await client.request(...)`` gives a :class:`Response`."""

    def __init__(self, *, limit: int = 256, user_agent: str | None = None) -> None:
        self.limit = limit
        self.user_agent = user_agent
        self._pools: dict[tuple[str, str, int], _Pool] = {}
        self._urls: dict[str, tuple[_Pool, str, str]] = {}  # url -> what _resolve made of it
        self._ssl: ssl.SSLContext | None = None
        self._loop: asyncio.AbstractEventLoop | None = None

    @property
    def loop(self) -> asyncio.AbstractEventLoop:
        if self._loop is None:
            self._loop = asyncio.get_running_loop()
        return self._loop

    def ssl_context(self) -> ssl.SSLContext:
        if self._ssl is None:
            self._ssl = ssl.create_default_context()
        return self._ssl

    def _pool(self, url: str) -> tuple[_Pool, str, str]:
        found = self._urls.get(url)  # a provider calls the same few URLs again and again
        if found is not None:
            return found
        found = self._resolve(url)
        if len(self._urls) >= _URL_ENTRIES:
            self._urls.clear()
        self._urls[url] = found
        return found

    def _resolve(self, url: str) -> tuple[_Pool, str, str]:
        parts = urlsplit(url)
        scheme = parts.scheme.lower()
        if scheme not in ("http", "https") or not parts.hostname:
            raise ConnectError(f"cannot request {scheme or 'a relative'} URL")
        port = parts.port or (443 if scheme == "https" else 80)
        key = (scheme, parts.hostname, port)
        pool = self._pools.get(key)
        if pool is None:
            pool = self._pools[key] = _Pool(self, scheme, parts.hostname, port, self.limit)
        host = parts.hostname if parts.port is None else f"{parts.hostname}:{parts.port}"
        if ":" in parts.hostname and not host.startswith("["):
            host = f"[{parts.hostname}]" if parts.port is None else f"[{parts.hostname}]:{parts.port}"
        path = parts.path or "/"
        if parts.query:
            path = f"{path}?{parts.query}"
        return pool, host, path

    async def request(self, method: str, url: str, body: bytes | None, headers: Mapping[str, str], *,
                      connect_deadline: float, deadline: float) -> Response:
        """Send one request and wait for its head until ``deadline`` (loop time)."""
        pool, host, path = self._pool(url)
        head = self._head(method, path, host, body, headers)
        await pool.slots.acquire()
        try:
            for attempt in (0, 1):
                conn = pool.take()
                if conn is None:
                    conn = await pool.connect(min(connect_deadline, deadline))
                transport = conn.transport
                assert transport is not None
                transport.write(head + body if body else head)
                try:
                    while not conn.head_done:
                        if conn.error is not None:
                            raise conn.error
                        await conn.wait(deadline)
                except Disconnected:
                    # A pooled connection the server closed as we reused it: nothing of the answer
                    # came back, so the request is sent again once, on a new connection.
                    if attempt == 0 and conn.reused and not conn.received:
                        continue
                    raise
                except BaseException:
                    conn._close()
                    raise
                return Response(conn)
            raise AssertionError("unreachable")  # pragma: no cover
        except BaseException:
            pool.release_slot()
            raise

    def _head(self, method: str, path: str, host: str, body: bytes | None, headers: Mapping[str, str]) -> bytes:
        lines = [f"{method} {path} HTTP/1.1", f"Host: {host}"]
        if body is not None:
            lines.append(f"Content-Length: {len(body)}")
        seen = set()
        for name, value in headers.items():
            if "\r" in value or "\n" in value or "\r" in name or "\n" in name or ":" in name:
                raise ProtocolError(f"header {name!r} has a character HTTP does not allow")
            seen.add(name.lower())
            lines.append(f"{name}: {value}")
        if "accept-encoding" not in seen:
            lines.append("Accept-Encoding: gzip, deflate")
        if self.user_agent and "user-agent" not in seen:
            lines.append(f"User-Agent: {self.user_agent}")
        lines.append("\r\n")
        try:
            return "\r\n".join(lines).encode("latin-1")
        except UnicodeEncodeError:
            raise ProtocolError("a request header has a character HTTP/1.1 cannot carry") from None

    async def aclose(self) -> None:
        for pool in self._pools.values():
            pool.close()
        self._pools.clear()
        self._urls.clear()
