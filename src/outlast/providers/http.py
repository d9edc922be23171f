"""The HTTP seam shared by every adapter: one pooled keep-alive client per provider,
deadlines, and the mapping of transport failures onto the failure taxonomy.

An adapter calls :meth:`Upstream.events` with a rendered body and a ``classify``
function that turns the vendor's error responses into :class:`UpstreamError`;
it gets back the upstream's SSE events, a list per read (or, when the upstream
answered a stream request with plain JSON, a single :class:`JSONBody`), and never
sees a transport exception: everything becomes an :class:`UpstreamError`. The HTTP
itself is :mod:`outlast.providers.client`, a lean keep-alive client chosen by measurement.
"""

from __future__ import annotations

from collections.abc import AsyncGenerator, Callable, Mapping
from contextlib import aclosing
from dataclasses import dataclass
from typing import Protocol

import orjson

from outlast.dialects.canonical import Event, Response, coalesce, events_of
from outlast.providers import client as http
from outlast.providers.base import Timeouts
from outlast.providers.errors import FailureKind, TimeoutPhase, UpstreamError
from outlast.providers.sse import SSEBuffer, SSEEvent

Classify = Callable[[int, bytes, Mapping[str, str]], UpstreamError]


class StreamParser(Protocol):
    """What each wire family's ``StreamParser`` offers (see ``outlast.dialects``)."""

    @property
    def done(self) -> bool: ...

    def feed(self, event_name: str | None, data: str) -> list[Event]: ...

    def finish(self) -> list[Event]: ...

# Bodies of error responses are read to classify them, but never without bound.
_MAX_ERROR_BODY = 64 * 1024


@dataclass(frozen=True, slots=True)
class JSONBody:
    """The upstream answered with a whole JSON document instead of an event stream."""

    value: object


class Upstream:
    """One provider's pooled HTTP client, created lazily inside the running event loop.
    ``limit`` bounds concurrent connections to each origin."""

    def __init__(self, provider: str, timeouts: Timeouts, *, limit: int = 256) -> None:
        self.provider = provider
        self.timeouts = timeouts
        self._limit = limit
        self._client: http.Client | None = None

    def client(self) -> http.Client:
        if self._client is None:
            self._client = http.Client(limit=self._limit)
        return self._client

    async def aclose(self) -> None:
        if self._client is not None:
            await self._client.aclose()
            self._client = None

    def _error(self, kind: FailureKind, message: str, model: str, **kw: object) -> UpstreamError:
        return UpstreamError(kind, message, provider=self.provider, model=model, **kw)  # type: ignore[arg-type]

    async def answer(
        self,
        url: str,
        body: bytes,
        headers: Mapping[str, str],
        *,
        model: str,
        classify: Classify,
        parser: StreamParser,
        parse_response: Callable[[object], Response],
    ) -> AsyncGenerator[Event, None]:
        """One upstream answer as canonical events: each read's SSE events fed to ``parser``
        and their deltas coalesced, or a whole JSON answer turned into events. Returns as soon
        as the parser has seen the terminator, without waiting for the socket to close."""
        try:
            # aclosing: leaving early (the terminator, an error, the caller going away)
            # releases the upstream response now, not whenever it is garbage-collected.
            async with aclosing(self.events("POST", url, body, headers, model=model, classify=classify)) as items:
                async for item in items:
                    if isinstance(item, JSONBody):
                        for event in events_of(parse_response(item.value)):
                            yield event
                        return
                    events: list[Event] = []
                    for sse in item:
                        events += parser.feed(sse.event, sse.data)
                        if parser.done:
                            break
                    for event in coalesce(events):
                        yield event
                    if parser.done:
                        return
            for event in parser.finish():
                yield event
        except UpstreamError as error:
            error.provider = self.provider
            error.model = error.model or model
            raise

    async def events(
        self,
        method: str,
        url: str,
        body: bytes | None,
        headers: Mapping[str, str],
        *,
        model: str,
        classify: Classify,
    ) -> AsyncGenerator[list[SSEEvent] | JSONBody, None]:
        """Send one request and yield what comes back: the events of each read from the
        socket as one list (a short answer often arrives whole), or one :class:`JSONBody`.

        Deadlines: ``connect`` bounds the connection; ``first_token`` covers sending, the
        response head and the first event; after that ``idle`` bounds each silence and
        ``total`` the attempt. Raises :class:`UpstreamError` for every failure; an HTTP error
        status is handed to ``classify``.
        """
        client = self.client()
        t = self.timeouts
        now = client.loop.time()
        total = now + t.total if t.total is not None else float("inf")
        first_deadline = min(now + t.first_token, total)
        response: http.Response | None = None
        buffer = SSEBuffer()
        first: list[SSEEvent] | JSONBody | None = None
        try:
            try:
                response = await client.request(method, url, body, headers, connect_deadline=now + t.connect,
                                                 deadline=first_deadline)
                if response.status >= 400:
                    raw = await self._read_error(response, first_deadline)
                    error = classify(response.status, raw, response.headers)
                    error.provider, error.model = self.provider, model
                    raise error
                if response.content_type != "text/event-stream":
                    first = JSONBody(await self._read_json(response, model, first_deadline))
                else:
                    first = await self._next(response, buffer, model, first_deadline, during_stream=False)
            except http.ConnectTimeout:
                raise self._timeout(TimeoutPhase.CONNECT, model, during_stream=False) from None
            except http.ReadTimeout:
                # The deadline that was armed says which one passed; the clock read now may not: uvloop's
                # timers count whole milliseconds, so one can fire while loop.time() is a hair short of it.
                phase = TimeoutPhase.TOTAL if first_deadline >= total else TimeoutPhase.FIRST_TOKEN
                raise self._timeout(phase, model, during_stream=False) from None
            except http.HTTPClientError as exc:
                raise self._transport(exc, model, during_stream=False) from None
            if first is None:
                raise self._error(FailureKind.CONNECTION_LOST, "upstream closed the stream before any event",
                                  model)
            yield first
            if isinstance(first, JSONBody):
                return
            idle = t.idle
            while True:
                deadline = client.loop.time() + idle
                if deadline > total:
                    deadline = total
                try:
                    batch = await self._next(response, buffer, model, deadline, during_stream=True)
                except http.ReadTimeout:
                    phase = TimeoutPhase.TOTAL if deadline >= total else TimeoutPhase.IDLE
                    raise self._timeout(phase, model, during_stream=True) from None
                except http.HTTPClientError as exc:
                    raise self._transport(exc, model, during_stream=True) from None
                if batch is None:
                    return
                yield batch
        finally:
            if response is not None:
                response.release()

    async def _next(self, response: http.Response, buffer: SSEBuffer, model: str, deadline: float, *,
                    during_stream: bool) -> list[SSEEvent] | None:
        """The events in the next chunk(s) of the body (whatever arrived: one read for a whole
        short answer, rather than one per line); ``None`` at the end of the body."""
        try:
            while True:
                chunk = await response.read_chunk(deadline)
                if not chunk:
                    tail = buffer.flush()
                    return [tail] if tail is not None else None
                events = buffer.feed(chunk)
                if events:
                    return events
        except UnicodeDecodeError:
            raise self._error(FailureKind.MALFORMED, "upstream sent a stream that is not UTF-8", model,
                              during_stream=during_stream) from None

    async def _read_error(self, response: http.Response, deadline: float) -> bytes:
        """An error answer's body, for classifying it: never more than ``_MAX_ERROR_BODY``, and
        whatever arrived if the upstream breaks off (the status alone still classifies it)."""
        try:
            return await response.read(deadline, limit=_MAX_ERROR_BODY)
        except http.HTTPClientError:
            return b""

    async def _read_json(self, response: http.Response, model: str, deadline: float) -> object:
        raw = await response.read(deadline)
        try:
            return orjson.loads(raw)
        except orjson.JSONDecodeError:
            raise self._error(FailureKind.MALFORMED, "upstream answered with a body that is not valid JSON",
                              model, status=response.status) from None

    def _timeout(self, phase: TimeoutPhase, model: str, *, during_stream: bool) -> UpstreamError:
        limits = {
            TimeoutPhase.CONNECT: self.timeouts.connect,
            TimeoutPhase.FIRST_TOKEN: self.timeouts.first_token,
            TimeoutPhase.IDLE: self.timeouts.idle,
            TimeoutPhase.TOTAL: self.timeouts.total,
        }
        return self._error(
            FailureKind.TIMEOUT,
            f"no {'connection' if phase is TimeoutPhase.CONNECT else 'answer'} within the "
            f"{phase.value.replace('_', '-')} deadline of {limits[phase]} s",
            model,
            phase=phase,
            during_stream=during_stream,
        )

    def _transport(self, exc: http.HTTPClientError, model: str, *, during_stream: bool) -> UpstreamError:
        # The client's messages carry host and port at most, never credentials.
        if isinstance(exc, http.ConnectError):
            message = f"could not connect: {exc}"
        elif isinstance(exc, http.Disconnected):
            if exc.head_received:
                message = "upstream response was cut off" + (" mid-stream" if during_stream else "")
            else:
                message = "upstream closed the connection" + (" mid-stream" if during_stream else "")
        else:
            message = str(exc)
        return self._error(FailureKind.CONNECTION_LOST, message, model, during_stream=during_stream)
