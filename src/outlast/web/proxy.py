"""The model endpoints: a caller's dialect in, the router, the caller's dialect out.

Both ``POST /v1/chat/completions`` and ``POST /v1/messages`` are the same function
with a different :class:`Inbound` dialect; neither knows which provider answers.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, replace
from types import ModuleType
from typing import Any, Protocol, runtime_checkable

import orjson

from outlast.dialects import anthropic_messages, openai_chat
from outlast.dialects.canonical import (
    Event,
    Image,
    Request,
    Stop,
    Text,
    Thinking,
    ToolResult,
    ToolUse,
    collect,
    dumps,
)
from outlast.ids import time_ordered
from outlast.policy.redact import RequestFilter
from outlast.providers.base import TokenCounter
from outlast.providers.errors import FailureKind, RequestError, UpstreamError
from outlast.routing.router import AllAttemptsFailed, Exchange, ExchangeSink, Notice, Router
from outlast.web.http import SSE_HEADERS, Headers, Receive, Send, respond_json

log = logging.getLogger("outlast.gateway")


@dataclass(frozen=True, slots=True)
class Inbound:
    """A wire dialect callers speak, with the few facts that differ between them."""

    name: str
    module: ModuleType
    id_prefix: str
    unavailable_status: int  # what "no provider could answer" looks like to this dialect's clients

    def parse(self, body: object, headers: dict[str, str]) -> Request:
        request: Request = self.module.parse_request(body, headers)
        return request

    def error(self, status: int, kind: str, message: str, *, param: str | None = None,
              code: str | None = None) -> tuple[int, dict[str, Any]]:
        return status, self.module.error_body(status, kind, message, param, code)

    def renderer(self, message_id: str, body: dict[str, Any]) -> Any:
        if self is OPENAI:
            options = body.get("stream_options")
            include_usage = isinstance(options, dict) and bool(options.get("include_usage"))
            return self.module.StreamRenderer(message_id=message_id, include_usage=include_usage)
        return self.module.StreamRenderer(message_id=message_id)


OPENAI = Inbound("openai", openai_chat, "chatcmpl-", 503)
ANTHROPIC = Inbound("anthropic", anthropic_messages, "msg_", 529)


def new_exchange_id() -> str:
    """Time-ordered and unique: 48 bits of milliseconds, then 80 random bits, as hex."""
    return time_ordered(10)


def _kind_for(kind: FailureKind) -> str:
    """The Anthropic-style error type a failure class is reported as."""
    return {
        FailureKind.RATE_LIMITED: "rate_limit_error",
        FailureKind.AUTH_FAILED: "api_error",  # the provider's key failed, not the caller's
        FailureKind.BAD_REQUEST: "invalid_request_error",
        FailureKind.CONTEXT_TOO_LONG: "invalid_request_error",
        FailureKind.CONTENT_FILTERED: "invalid_request_error",
        FailureKind.NOT_FOUND: "not_found_error",
    }.get(kind, "overloaded_error")


def failure_response(dialect: Inbound, failed: AllAttemptsFailed) -> tuple[int, dict[str, Any], Headers]:
    """The caller-dialect error for "no candidate could serve", listing every attempt; with
    ``retry-after`` when a provider said when, or a breaker knows when it will try again."""
    kinds = {e.kind for e in failed.errors}
    stopped = failed.stopped.kind if failed.stopped is not None else None
    headers: Headers = []
    code = None
    if failed.caller_fault:
        status, kind = 400, "invalid_request_error"
    elif failed.policy:  # the approved candidates failed and policy allowed no other: the policy error
        status, kind, code = 403, "permission_error", "no_allowed_target"
    elif kinds == {FailureKind.CONTEXT_TOO_LONG} or stopped is FailureKind.CONTEXT_TOO_LONG:
        status, kind, code = 400, "invalid_request_error", "context_length_exceeded"
    elif kinds == {FailureKind.CONTENT_FILTERED} or stopped is FailureKind.CONTENT_FILTERED:
        status, kind, code = 400, "invalid_request_error", "content_filter"
    elif kinds == {FailureKind.RATE_LIMITED}:
        status, kind = 429, "rate_limit_error"
    else:
        status, kind = dialect.unavailable_status, "overloaded_error" if dialect is ANTHROPIC else "api_error"
    retry_after = failed.retry_after
    if retry_after is not None and status != 400:
        headers.append((b"retry-after", str(max(1, round(retry_after))).encode()))
    status, body = dialect.error(status, kind, failed.describe(), code=code)
    return status, body, headers


def _outlast_headers(exchange: Exchange) -> Headers:
    headers: Headers = [(b"x-outlast-exchange-id", exchange.id.encode())]
    if exchange.served_by is not None:
        headers.append((b"x-outlast-served-by", str(exchange.served_by).encode()))
        headers.append((b"x-outlast-fallback", b"true" if exchange.fallback else b"false"))
        if exchange.downgraded:
            headers.append((b"x-outlast-downgrade", b"true"))
    headers.append((b"x-outlast-attempts", str(len(exchange.attempts)).encode()))
    if exchange.conversation_id:  # memory: named by the client, or by the recorder before the answer
        headers.append((b"x-outlast-conversation-id", exchange.conversation_id.encode()))
    return headers


@runtime_checkable
class ConversationNamer(Protocol):
    """A sink that knows, before the answer, which conversation an exchange belongs to (the
    recorder): the response says it in ``x-outlast-conversation-id``."""

    async def conversation_for(self, exchange: Exchange) -> str | None: ...


class InFlight:
    """How many exchanges the gateway's endpoints are answering right now. The recorder reads it
    to tell whether a commit is worth a moment's wait for others to share its fsync."""

    __slots__ = ("count",)

    def __init__(self) -> None:
        self.count = 0

    def __call__(self) -> int:
        return self.count


class ModelEndpoint:
    """``POST /v1/chat/completions`` or ``POST /v1/messages``."""

    def __init__(self, dialect: Inbound, router: Router, clock: Callable[[], float] = time.monotonic,
                 sinks: Sequence[ExchangeSink] = (), redact: RequestFilter | None = None,
                 in_flight: InFlight | None = None) -> None:
        self.dialect = dialect
        self.router = router
        self.clock = clock
        self.sinks = sinks
        self.redact = redact  # governance.redact: secrets to placeholders and back (outlast.policy.redact)
        self.in_flight = in_flight if in_flight is not None else InFlight()
        # memory: the recorder names an answer's conversation before the response starts
        self._name_conversation: Callable[[Exchange], Awaitable[str | None]] | None = next(
            (s.conversation_for for s in sinks if isinstance(s, ConversationNamer)), None)

    async def _commit(self, exchange: Exchange, received: list[Event] | None = None) -> None:
        """Hand the finished exchange to every sink; called before the last byte goes out."""
        if not self.sinks:
            return
        if received and exchange.response is None:
            try:
                exchange.response = collect(received)
            except ValueError:  # no start event: nothing was answered
                pass
        for sink in self.sinks:
            try:
                await sink.commit(exchange)
            except Exception:  # a sink must never cost the client its answer
                log.exception("exchange %s: sink %s failed", exchange.id, type(sink).__name__)

    async def __call__(self, body: dict[str, Any], headers: dict[str, str], receive: Receive, send: Send) -> None:
        in_flight = self.in_flight
        in_flight.count += 1
        try:
            await self._answer(body, headers, receive, send)
        finally:
            in_flight.count -= 1

    async def _answer(self, body: dict[str, Any], headers: dict[str, str], receive: Receive, send: Send) -> None:
        dialect = self.dialect
        exchange = Exchange(new_exchange_id(), dialect.name, str(body.get("model", "")), self.clock())
        try:
            request = dialect.parse(body, headers)
        except RequestError as error:
            await self._error(send, exchange, error.status, error.kind, error.message, error.param, error.code)
            return
        exchange.requested_model = request.model
        restore = None
        if self.redact is not None:
            request, restore = self.redact(request)
        exchange.request = request
        # memory: a conversation the client names (docs/memory.md); the recorder threads by it
        exchange.conversation_id = headers.get("x-outlast-conversation-id") or None
        message_id = dialect.id_prefix + exchange.id
        no_downgrade = headers.get("x-outlast-no-downgrade", "").lower() in ("true", "1", "yes")
        events = self.router.stream(request, exchange, no_downgrade=no_downgrade)
        if restore is not None:
            events = restore(events)
        try:
            first = await anext(events)
        except RequestError as error:
            await self._error(send, exchange, error.status, error.kind, error.message, error.param, error.code)
            return
        except AllAttemptsFailed as failed:
            log.warning("exchange %s: %s", exchange.id, failed.describe())
            await self._commit(exchange)
            status, error_body, extra = failure_response(dialect, failed)
            await respond_json(send, status, error_body, headers=_outlast_headers(exchange) + extra)
            return
        assert not isinstance(first, Notice)  # a notice only ever follows a splice
        if exchange.conversation_id is None and self._name_conversation is not None:
            exchange.conversation_id = await self._name_conversation(exchange)  # memory: docs/memory.md
        if request.stream:
            await self._stream(first, events, body, message_id, exchange, receive, send)
        else:
            await self._collect(first, events, message_id, exchange, send)

    async def _error(self, send: Send, exchange: Exchange, status: int, kind: str, message: str,
                     param: str | None = None, code: str | None = None) -> None:
        status, error_body = self.dialect.error(status, kind, message, param=param, code=code)
        await respond_json(send, status, error_body, headers=_outlast_headers(exchange))

    async def _collect(self, first: Event, events: Any, message_id: str, exchange: Exchange, send: Send) -> None:
        received = [first]
        try:
            async for event in events:
                if event.__class__ is not Notice:
                    received.append(event)
        except (UpstreamError, AllAttemptsFailed) as error:
            log.warning("exchange %s: answer broke off: %s", exchange.id, _describe(error))
            await self._commit(exchange, received)
            await self._error(send, exchange, self.dialect.unavailable_status,
                              _kind_for(error.kind), f"the answer broke off: {_describe(error)}")
            return
        response = collect(received)
        if exchange.splices and exchange.served_model:
            response = replace(response, model=exchange.served_model)  # the model that finished it
        exchange.response = response
        await self._commit(exchange)
        rendered = self.dialect.module.render_response(response, message_id=message_id)
        await respond_json(send, 200, rendered, headers=_outlast_headers(exchange))

    async def _stream(self, first: Event, events: Any, body: dict[str, Any], message_id: str,
                      exchange: Exchange, receive: Receive, send: Send) -> None:
        renderer = self.dialect.renderer(message_id, body)
        await send({"type": "http.response.start", "status": 200,
                    "headers": SSE_HEADERS + _outlast_headers(exchange)})
        task = asyncio.current_task()
        assert task is not None
        watcher = asyncio.create_task(_cancel_on_disconnect(receive, task))
        # Kept only when a sink wants the answer; the last event waits for the commit.
        received: list[Event] | None = [first] if self.sinks else None
        committed = abandoned = False
        try:
            chunk = renderer.render(first)
            if chunk:
                await send({"type": "http.response.body", "body": chunk, "more_body": True})
            try:
                async for event in events:
                    if event.__class__ is Notice:
                        # The answer continues on another target: say so where clients ignore it.
                        await send({"type": "http.response.body", "body": renderer.comment(event.text),
                                    "more_body": True})
                        continue
                    if received is not None:
                        received.append(event)
                        if isinstance(event, Stop):
                            committed = True
                            await self._commit(exchange, received)
                    chunk = renderer.render(event)
                    if chunk:
                        await send({"type": "http.response.body", "body": chunk, "more_body": True})
            except (UpstreamError, AllAttemptsFailed) as error:
                log.warning("exchange %s: stream broke off: %s", exchange.id, _describe(error))
                committed = True
                await self._commit(exchange, received)
                chunk = renderer.error(_kind_for(error.kind), f"the answer broke off: {_describe(error)}")
                await send({"type": "http.response.body", "body": chunk, "more_body": True})
            await send({"type": "http.response.body", "body": b"", "more_body": False})
        except asyncio.CancelledError:
            if not watcher.done() or watcher.cancelled():
                raise
            # The client went away: the router's generator is closed below, which
            # closes the upstream connection too.
            task.uncancel()
            exchange.client_disconnected = abandoned = True
        finally:
            watcher.cancel()
            await events.aclose()
        if abandoned and not committed:
            # Recorded as far as it got, once the router has closed the attempt (after aclose);
            # the client is gone, so the journal's fsync holds nobody up.
            await self._commit(exchange, received)


def _describe(error: UpstreamError | AllAttemptsFailed) -> str:
    return error.describe()


async def _cancel_on_disconnect(receive: Receive, task: asyncio.Task[Any]) -> None:
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            task.cancel()
            return


# --------------------------------------------------------------------------- count_tokens and models


def approximate_tokens(request: Request) -> int:
    """About four characters a token over everything the model would read; an image
    counts as about 1,600 tokens (a typical 1-megapixel image on current models)."""
    chars = sum(len(t.text) for t in request.system)
    for message in request.messages:
        for part in message.content:
            if isinstance(part, Text):
                chars += len(part.text)
            elif isinstance(part, ToolUse):
                chars += len(part.name) + len(dumps(part.input))
            elif isinstance(part, ToolResult):
                chars += sum(len(c.text) if isinstance(c, Text) else 6400 for c in part.content)
            elif isinstance(part, Thinking):
                chars += len(part.thinking)
            elif isinstance(part, Image):
                chars += 6400
    for tool in request.tools:
        chars += len(tool.name) + len(tool.description or "") + len(dumps(tool.input_schema))
    return max(1, chars // 4)


async def count_tokens(router: Router, body: dict[str, Any], headers: dict[str, str], send: Send,
                       redact: RequestFilter | None = None) -> None:
    """``POST /v1/messages/count_tokens``: exact from the first candidate that can count,
    approximate otherwise; ``x-outlast-token-count`` says which."""
    dialect = ANTHROPIC
    if isinstance(body, dict) and "max_tokens" not in body:
        body = {**body, "max_tokens": 1}
    try:
        request = dialect.parse(body, headers)
        if redact is not None:  # counting sends the text too
            request = redact(request)[0]
        plan = router.plan(request.model)
    except RequestError as error:
        status, error_body = dialect.error(error.status, error.kind, error.message, param=error.param)
        await respond_json(send, status, error_body)
        return
    for target in plan:
        if router.allowed is not None and not router.allowed(request, target):
            continue  # counting sends the text too: only to providers approved for it
        provider = router.providers[target.provider]
        if isinstance(provider, TokenCounter):
            try:
                tokens = await provider.count_tokens(request, target.model)
            except UpstreamError as error:
                log.info("count_tokens at %s failed (%s); trying the next candidate", target, error.kind.value)
                continue
            await respond_json(send, 200, {"input_tokens": tokens}, headers=[
                (b"x-outlast-token-count", b"exact"), (b"x-outlast-served-by", str(target).encode())])
            return
    await respond_json(send, 200, {"input_tokens": approximate_tokens(request)},
                       headers=[(b"x-outlast-token-count", b"approximate")])


def models_body(names: list[str], created: int) -> bytes:
    """One list that satisfies both the OpenAI and the Anthropic SDKs."""
    stamp = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(created))
    data = [{"id": name, "object": "model", "type": "model", "created": created, "owned_by": "outlast",
             "display_name": name, "created_at": stamp} for name in names]
    return orjson.dumps({"object": "list", "data": data, "has_more": False,
                         "first_id": names[0] if names else None, "last_id": names[-1] if names else None})
