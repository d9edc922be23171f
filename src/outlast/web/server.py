"""uvicorn's httptools protocol, with the writes of one event-loop turn sent as one.

uvicorn writes a response's status line and headers to the socket as soon as the app
sends ``http.response.start``, and the body separately. On loopback in a virtual
machine every write that wakes another process costs far more than the bytes (measured
here: a whole JSON answer costs about as much as two such writes), so outlast coalesces
everything written during one turn of the event loop into a single write: headers and
body of a short answer leave together, and the events of a stream that arrived
together leave together. Nothing waits longer than the end of the current turn, and a
response's last write does not wait even for that: it is sent as soon as it is made.

It also holds clients to the limits in :class:`ServerLimits` (uvicorn's httptools protocol has no
header size limit and no deadline before a request's headers are complete):

- the request line and headers, as sent, may take at most ``max_header_bytes``: 431, then close;
- they must be complete ``header_timeout`` seconds after the connection opened, or after the first
  byte of a later request: 408 (or a plain close if nothing of the request arrived);
- a request body may not go silent for ``body_timeout`` seconds: 408 if no answer has begun, then
  close (time when the server itself stopped reading does not count);
- an idle keep-alive connection is closed after ``keep_alive`` seconds (uvicorn's timer).

The refusals carry a JSON body that both SDKs read as an error (Anthropic's shape, with OpenAI's
``param`` and ``code`` beside it), since the caller's dialect is not known before the path is.
"""

from __future__ import annotations

import asyncio
import gc
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

import orjson
from uvicorn.protocols.http.httptools_impl import STATUS_LINE, HttpToolsProtocol


@dataclass(frozen=True, slots=True)
class ServerLimits:
    """What the HTTP server allows a client (seconds and bytes); the gateway's come from its
    configuration (``governance.max_header_bytes`` and ``limits``), any other app gets these."""

    max_header_bytes: int = 64 * 1024
    header_timeout: float = 10.0
    body_timeout: float = 30.0
    keep_alive: float | None = None  # None: uvicorn's timeout_keep_alive


# The cycle collector's youngest generation is examined after this many new container objects.
# CPython's default (700) means, at a few hundred objects per request, a collection every couple of
# requests, and it promotes the objects of every request still in flight into the older generations,
# which then fill with the dead until a full collection walks the whole heap (measured here at 16
# connections: about 35 ms each, ~25 µs of CPU per request in all; see docs/benchmarks.md).
YOUNG_GENERATION = 10_000


def settle_heap(young: int = YOUNG_GENERATION) -> None:
    """Ready a long-running server's heap for traffic, once everything is loaded: collect, then
    freeze what survives (configuration, modules, pools: it lives as long as the process, so no
    collection need look at it again), and examine the youngest generation less often, so that
    a request's objects are mostly freed by reference counting before a collection can promote them.
    Cyclic garbage still goes, a few thousand allocations later."""
    gc.collect()
    gc.freeze()
    _, middle, oldest = gc.get_threshold()
    gc.set_threshold(young, middle, oldest)


def limits_of(app: Any) -> ServerLimits:
    """The ``server_limits`` of ``app``, or of the app it wraps (uvicorn wraps it in middleware)."""
    for _ in range(8):
        limits = getattr(app, "server_limits", None)
        if isinstance(limits, ServerLimits):
            return limits
        app = getattr(app, "app", None)
        if app is None:
            break
    return ServerLimits()


def refusal(status: int, message: str, code: str, default_headers: Iterable[tuple[bytes, bytes]] = ()) -> bytes:
    """A whole HTTP/1.1 response that closes the connection, with an error body both SDKs read."""
    body = orjson.dumps({"type": "error", "error": {"type": "invalid_request_error", "message": message,
                                                    "param": None, "code": code}})
    head = [STATUS_LINE[status]]
    for name, value in default_headers:
        head.append(name + b": " + value + b"\r\n")
    head.append(b"content-type: application/json\r\ncontent-length: " + str(len(body)).encode()
                + b"\r\nconnection: close\r\n\r\n")
    return b"".join(head) + body


class CoalescingTransport:
    """Wraps a transport: ``write`` buffers until the end of the loop turn, then writes once."""

    __slots__ = ("_loop", "_pending", "_transport")

    def __init__(self, transport: asyncio.Transport, loop: asyncio.AbstractEventLoop) -> None:
        self._transport = transport
        self._loop = loop
        self._pending: list[bytes] | None = None

    def write(self, data: bytes | bytearray | memoryview) -> None:
        if not data:
            return
        if self._pending is None:
            self._pending = [bytes(data)]
            self._loop.call_soon(self.flush)
        else:
            self._pending.append(bytes(data))

    def writelines(self, lines: Iterable[bytes | bytearray | memoryview]) -> None:
        for line in lines:
            self.write(line)

    def flush(self) -> None:
        pending, self._pending = self._pending, None
        if pending and not self._transport.is_closing():
            self._transport.write(pending[0] if len(pending) == 1 else b"".join(pending))

    def close(self) -> None:
        self.flush()
        self._transport.close()

    def abort(self) -> None:
        self.flush()
        self._transport.abort()

    def write_eof(self) -> None:
        self.flush()
        self._transport.write_eof()

    def __getattr__(self, name: str) -> Any:
        return getattr(self._transport, name)


class CoalescingHttpToolsProtocol(HttpToolsProtocol):
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.limits = limits_of(self.app)
        if self.limits.keep_alive is not None:
            self.timeout_keep_alive = self.limits.keep_alive  # type: ignore[assignment]  # a float works
        self._timer: asyncio.TimerHandle | None = None
        self._in_head = True  # between a request's first byte (or the connection) and its end of headers
        self._began = False  # a byte of the current request has arrived
        self._head_bytes = 0  # bytes of the current head received so far (whole reads only)
        self._parsed = 0  # heads and messages completed: a read that completed one is not all head
        self._body_at = 0.0  # when the body last made progress
        self._refused = False

    # ------------------------------------------------------------------ connection

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(CoalescingTransport(transport, self.loop))  # type: ignore[arg-type]
        self._arm(self.limits.header_timeout, self._head_timed_out)

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm()
        super().connection_lost(exc)

    def data_received(self, data: bytes) -> None:
        if self._refused:
            return
        parsed = self._parsed
        super().data_received(data)
        if self._in_head and self._parsed == parsed and not self._refused:
            self._head_bytes += len(data)
            if self._head_bytes > self.limits.max_header_bytes:
                self._refuse(431, f"the request headers exceed {self.limits.max_header_bytes} bytes",
                             "request_header_fields_too_large")

    def on_response_complete(self) -> None:
        # The response's last byte has been written: it leaves now rather than at the end of the loop
        # turn, which comes only after everything the request's task still does once its answer is out
        # (the endpoint's, the app's and uvicorn's bookkeeping: ~0.1 ms at one connection here).
        self.transport.flush()  # type: ignore[attr-defined]  # a CoalescingTransport (connection_made)
        super().on_response_complete()

    def handle_websocket_upgrade(self) -> None:
        self._disarm()
        super().handle_websocket_upgrade()

    # ------------------------------------------------------------------ parser callbacks

    def on_message_begin(self) -> None:
        super().on_message_begin()
        self._in_head = self._began = True
        self._head_bytes = 0
        if self._timer is None:  # a later request on a kept-alive connection: its own deadline
            self._arm(self.limits.header_timeout, self._head_timed_out)

    def on_headers_complete(self) -> None:
        self._in_head = self._began = False
        self._parsed += 1
        self._disarm()
        size = len(self.url) + sum(len(name) + len(value) + 4 for name, value in self.headers) + 16
        if size > self.limits.max_header_bytes:
            self._refuse(431, f"the request headers exceed {self.limits.max_header_bytes} bytes",
                         "request_header_fields_too_large")
            return
        super().on_headers_complete()
        if self.parser.should_upgrade() and self._should_upgrade():
            return  # a WebSocket: handle_websocket_upgrade hands the connection over
        self._body_at = self.loop.time()
        self._arm(self.limits.body_timeout, self._body_timed_out)  # disarmed at the end of the message

    def on_body(self, body: bytes) -> None:
        if self._refused:
            return
        self._body_at = self.loop.time()
        super().on_body(body)

    def on_message_complete(self) -> None:
        if self._refused:
            return
        self._parsed += 1
        self._disarm()
        super().on_message_complete()

    # ------------------------------------------------------------------ deadlines

    def _arm(self, delay: float, callback: Callable[[], None]) -> None:
        self._disarm()
        self._timer = self.loop.call_later(delay, callback)

    def _disarm(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    def _head_timed_out(self) -> None:
        self._timer = None
        if self.transport.is_closing():
            return
        if self._in_head and (self._began or self._head_bytes):
            self._refuse(408, f"the request headers did not arrive within {self.limits.header_timeout:g} s",
                         "request_timeout")
        else:  # nothing of a request arrived: no one to answer
            self.transport.close()

    def _body_timed_out(self) -> None:
        self._timer = None
        if self.transport.is_closing():
            return
        cycle = self.cycle
        waited = self.loop.time() - self._body_at
        if self.flow.read_paused or (cycle is not None and cycle.waiting_for_100_continue):
            waited = 0.0  # the server is not reading yet: the client cannot be blamed
            self._body_at = self.loop.time()
        if waited < self.limits.body_timeout:
            self._arm(self.limits.body_timeout - waited, self._body_timed_out)
            return
        if cycle is not None and not cycle.response_started:
            cycle.disconnected = True  # the app's next receive() says so; its sends go nowhere
            cycle.message_event.set()
            self._refuse(408, f"the request body stopped arriving for {self.limits.body_timeout:g} s",
                         "request_timeout")
        else:
            self.transport.close()

    def _refuse(self, status: int, message: str, code: str) -> None:
        self._refused = True
        self._disarm()
        self.transport.write(refusal(status, message, code, self.server_state.default_headers))
        self.transport.close()
