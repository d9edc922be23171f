"""The gateway as one ASGI application: assembly, dispatch, authentication, lifespan.

``build_gateway(config)`` wires providers, routes, the router and its listeners;
``Gateway`` is the ASGI callable ``outlast serve`` runs under uvicorn.
"""

from __future__ import annotations

import hmac
import logging
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import orjson

from outlast import __version__
from outlast.config import Config
from outlast.governance.service import Governance, Refusal, StampSink
from outlast.health.service import HealthService
from outlast.metrics import Metrics
from outlast.providers.base import Provider
from outlast.providers.registry import build_provider
from outlast.routing.assemble import build_router
from outlast.routing.router import ExchangeSink, Router, RouterListener, TargetPredicate
from outlast.web import openapi
from outlast.web.health_routes import HealthWeb
from outlast.web.http import (
    BodyTooLarge,
    ClientGone,
    Receive,
    Scope,
    Send,
    header_map,
    read_body,
    respond,
    respond_json,
)
from outlast.web.proxy import ANTHROPIC, OPENAI, Inbound, InFlight, ModelEndpoint, count_tokens, models_body
from outlast.web.server import ServerLimits
from outlast.web.session import Sessions
from outlast.web.usage import UsageWeb

if TYPE_CHECKING:
    from outlast.store.recorder import Recorder

log = logging.getLogger("outlast")

# Paths served to GET (and HEAD) only; /openapi.json describes the whole HTTP API (outlast.web.openapi).
_READ_ONLY = frozenset({"/healthz", "/metrics", "/openapi.json", "/v1/models"})

JSONHandler = Callable[[Any, dict[str, str], Receive, Send], Awaitable[None]]


class Gateway:
    def __init__(self, config: Config, providers: Mapping[str, Provider], router: Router,
                 metrics: Metrics, sinks: Sequence[ExchangeSink] = (), health: HealthService | None = None,
                 governance: Governance | None = None, journal: Recorder | None = None) -> None:
        self.config = config
        self.providers = providers
        self.router = router
        self.metrics = metrics
        self.started = time.time()
        master = config.master_key.get_secret_value() if config.master_key is not None else None
        self._master_key = master.encode() if master else None
        self._max_body = config.max_body_bytes
        self.sinks = list(sinks)
        # With `record: false`, a recorder that journals only audit records (nothing of the exchanges):
        # the gateway writes them the way a recording one does, without a thread of its own.
        self.journal = journal
        self.health_service = health  # outage detection, status page, dashboard (outlast.health, outlast.web)
        self.sessions = Sessions(self._master_key)  # the dashboard's sign-ins (outlast.web.session)
        self._health_web = HealthWeb(health, self._master_key, self.sessions) if health is not None else None
        self.governance = governance  # virtual keys, data classes, audit (outlast.governance)
        self._usage_web = UsageWeb(governance.engine, self._master_key, self.sessions) \
            if governance is not None and governance.engine is not None else None  # the inventory
        self._max_headers = config.governance.max_header_bytes
        self._openapi = openapi.render(list(providers), router.routes.names())  # GET /openapi.json
        # Read by outlast's HTTP protocol (outlast.web.server) for each connection.
        self.server_limits = ServerLimits(self._max_headers, config.limits.header_timeout,
                                          config.limits.body_timeout, config.limits.keep_alive)
        endpoint_sinks = [StampSink(governance), *self.sinks] if governance is not None and self.sinks else self.sinks
        self._redact = governance.redactor if governance is not None else None  # secrets to placeholders
        self.in_flight = InFlight()  # exchanges being answered; the recorder's group commit reads it
        for sink in self.sinks:
            if hasattr(sink, "siblings"):
                sink.siblings = self.in_flight
        chat = ModelEndpoint(OPENAI, router, sinks=endpoint_sinks, redact=self._redact, in_flight=self.in_flight)
        messages = ModelEndpoint(ANTHROPIC, router, sinks=endpoint_sinks, redact=self._redact,
                                 in_flight=self.in_flight)
        # POST endpoints that take a JSON body, by path, with the dialect their errors speak.
        self._json_routes: dict[str, tuple[Inbound, JSONHandler]] = {
            "/v1/chat/completions": (OPENAI, chat),
            "/v1/messages": (ANTHROPIC, messages),
            "/v1/messages/count_tokens": (ANTHROPIC, self._count_tokens),
        }

    # ------------------------------------------------------------------ ASGI

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        kind = scope["type"]
        if kind == "http":
            await self._http(scope, receive, send)
        elif kind == "lifespan":
            await self._lifespan(receive, send)
        elif kind == "websocket":
            await self._websocket(scope, send)

    async def _http(self, scope: Scope, receive: Receive, send: Send) -> None:
        path: str = scope["path"]
        method: str = scope["method"]
        route = self._json_routes.get(path)
        if route is None and "/v1/" in path and not path.startswith("/v1/"):
            # Clients keep their base URL's path prefix (e.g. /gw/anthropic/v1/messages).
            path = path[path.index("/v1/"):]
            route = self._json_routes.get(path)
        headers = header_map(scope)
        if route is not None:
            dialect, handler = route
            if method != "POST":
                await self._error(send, dialect, 405, "invalid_request_error",
                                  f"{path} takes POST, not {method}", headers=[(b"allow", b"POST")])
                return
            if sum(len(n) + len(v) for n, v in scope["headers"]) > self._max_headers:
                await self._error(send, dialect, 431, "invalid_request_error",
                                  f"the request headers exceed {self._max_headers} bytes")
                return
            refused = await self._admit(headers)
            if refused is not None:
                await self._refuse(send, dialect, refused)
                return
            try:
                raw = await read_body(receive, headers, self._max_body)
            except BodyTooLarge as error:
                await self._error(send, dialect, 413, "request_too_large",
                                  f"{error}; raise max_body_bytes in the configuration if this is intended")
                return
            except ClientGone:
                return
            body = self._decode(raw)
            if isinstance(body, str):
                await self._error(send, dialect, 400, "invalid_request_error", body)
                return
            if not isinstance(body, dict):
                await self._error(send, dialect, 400, "invalid_request_error",
                                  f"the request body must be a JSON object, not {type(body).__name__}")
                return
            await handler(body, headers, receive, send)
            return
        if self._usage_web is not None and await self._usage_web.handle(scope, receive, send, headers):
            return
        if self._health_web is not None and await self._health_web.handle(scope, receive, send, headers):
            return
        await self._other(scope, method, path, headers, send)

    @staticmethod
    def _decode(raw: bytes) -> object:
        """The parsed body, or a message (``str``) saying why it cannot be read."""
        if not raw:
            return "the request body is empty; send a JSON object"
        try:
            return orjson.loads(raw)
        except orjson.JSONDecodeError as error:
            try:
                raw.decode("utf-8")
            except UnicodeDecodeError as bad:
                return f"the request body is not valid UTF-8 (byte {bad.start})"
            return f"the request body is not valid JSON: {error.msg} at line {error.lineno} column {error.colno}"

    async def _other(self, scope: Scope, method: str, path: str, headers: dict[str, str], send: Send) -> None:
        if path in ("/", "") and method in ("HEAD", "GET"):
            # Claude Code sends HEAD to its base URL first; any status will do.
            await respond_json(send, 200, {"name": "outlast", "version": __version__})
            return
        dialect = ANTHROPIC if "anthropic-version" in headers else OPENAI
        read_only = path in _READ_ONLY or path.endswith("/v1/models")
        if read_only and method not in ("GET", "HEAD"):
            await self._error(send, dialect, 405, "invalid_request_error", f"{path} takes GET, not {method}",
                              headers=[(b"allow", b"GET, HEAD")])
            return
        if path == "/healthz":
            await respond_json(send, 200, self.health())
            return
        if path == "/openapi.json":
            await respond(send, 200, self._openapi)
            return
        if path == "/metrics":
            text = self.metrics.render()
            for part in (*self.sinks, self.journal, self.governance):
                lines = getattr(part, "metric_lines", None)
                if lines is not None:
                    text += "\n".join(lines()) + "\n"
            await respond(send, 200, text.encode(),
                          content_type=b"text/plain; version=0.0.4; charset=utf-8")
            return
        if read_only:  # /v1/models, under any base-URL prefix
            refused = await self._admit(headers)
            if refused is not None:
                await self._refuse(send, dialect, refused)
                return
            await respond(send, 200, models_body(self.router.routes.names(), int(self.started)))
            return
        if path.endswith("/v1/responses"):
            await self._error(send, OPENAI, 404, "not_found_error",
                              "the OpenAI Responses API is not served by this gateway yet; "
                              "use /v1/chat/completions or /v1/messages")
            return
        await self._error(send, dialect, 404, "not_found_error",
                          f"no such endpoint: {method} {path}. outlast serves POST /v1/chat/completions, "
                          "POST /v1/messages, POST /v1/messages/count_tokens and GET /v1/models "
                          "(GET /openapi.json describes them all)")

    async def _websocket(self, scope: Scope, send: Send) -> None:
        # Codex CLI tries a WebSocket on /v1/responses first; 426 makes it fall back to
        # HTTP at once, where a bare close costs it several retries.
        if "websocket.http.response" in scope.get("extensions", {}):
            body = (b'{"error":{"message":"WebSocket transport is not supported; use HTTP",'
                    b'"type":"invalid_request_error"}}')
            await send({"type": "websocket.http.response.start", "status": 426,
                        "headers": [(b"content-type", b"application/json")]})
            await send({"type": "websocket.http.response.body", "body": body})
        else:
            await send({"type": "websocket.close", "code": 1008})

    async def _lifespan(self, receive: Receive, send: Send) -> None:
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                await self.router.health.start()  # background sync of a shared health state
                if self.governance is not None:
                    await self.governance.start()  # virtual keys, audit writer
                if self.health_service is not None:
                    await self.health_service.start()  # detector tick, vendor feeds, webhooks
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                await self.aclose()
                await send({"type": "lifespan.shutdown.complete"})
                return

    # ------------------------------------------------------------------ pieces

    async def _admit(self, headers: dict[str, str]) -> Refusal | None:
        """Authentication by the master key or a virtual key, and the key's rate limit."""
        if self.governance is None:
            return None if self._authorized(headers) else Refusal(401, "authentication_error", "")
        admitted = await self.governance.admit(headers)
        return admitted if isinstance(admitted, Refusal) else None

    async def _refuse(self, send: Send, dialect: Inbound, refused: Refusal) -> None:
        if refused.status == 401 and not refused.message:
            await self._unauthorized(send, dialect)
            return
        status, body = dialect.error(refused.status, refused.kind, refused.message)
        extra = [(b"retry-after", str(max(1, round(refused.retry_after))).encode())] \
            if refused.retry_after is not None else []
        await respond_json(send, status, body, headers=extra)

    def _authorized(self, headers: dict[str, str]) -> bool:
        if self._master_key is None:
            return True
        presented = headers.get("x-api-key")
        if presented is None:
            authorization = headers.get("authorization", "")
            scheme, _, token = authorization.partition(" ")
            if scheme.lower() != "bearer":
                return False
            presented = token.strip()
        return hmac.compare_digest(presented.encode(), self._master_key)

    async def _unauthorized(self, send: Send, dialect: Inbound) -> None:
        await self._error(send, dialect, 401, "authentication_error",
                          "missing or invalid API key: send an outlast key as 'x-api-key' or "
                          "'Authorization: Bearer'")

    @staticmethod
    async def _error(send: Send, dialect: Inbound, status: int, kind: str, message: str,
                     headers: list[tuple[bytes, bytes]] | None = None) -> None:
        status, body = dialect.error(status, kind, message)
        await respond_json(send, status, body, headers=headers)

    async def _count_tokens(self, body: Any, headers: dict[str, str], receive: Receive, send: Send) -> None:
        await count_tokens(self.router, body, headers, send, redact=self._redact)

    def health(self) -> dict[str, Any]:
        return {
            "status": "ok",
            "version": __version__,
            "uptime_seconds": round(time.time() - self.started, 1),
            "providers": {name: {"kind": p.kind} for name, p in self.providers.items()},
            "routes": self.router.routes.names(),
            "health": self.router.health.snapshot(self.router.clock()),
        }

    async def aclose(self) -> None:
        await self.router.health.aclose()
        if self.governance is not None:
            await self.governance.aclose()
        if self.health_service is not None:
            await self.health_service.aclose()
        for provider in self.providers.values():
            try:
                await provider.aclose()
            except Exception:  # closing must go on for the others
                log.exception("closing provider %s failed", provider.name)
        for sink in self.sinks:  # the recorder writes what is queued and stops its thread
            close = getattr(sink, "aclose", None)
            if close is not None:
                try:
                    await close()
                except Exception:
                    log.exception("closing %s failed", type(sink).__name__)
        if self.journal is not None:  # after governance: its last audit records are in the journal
            try:
                await self.journal.aclose()
            except Exception:
                log.exception("closing the audit journal failed")


def build_gateway(config: Config, allowed: TargetPredicate | None = None, *,
                  data_directory: Path | None = None, health_clock: Callable[[], float] | None = None) -> Gateway:
    """The gateway for ``config``. ``allowed`` is the policy layer's predicate of the targets a
    request may go to; the router never tries any other (default: all). ``data_directory``
    overrides the data directory (store and spool), as the demo does."""
    providers = {name: build_provider(name, pc) for name, pc in config.providers.items()}
    metrics = Metrics()
    health = None
    if config.health.enabled:  # health_clock: the demo runs detection on its simulated time
        health = HealthService.from_config(config, data_directory=data_directory, clock=health_clock or time.time)
    listeners: list[RouterListener] = [metrics] if health is None else [metrics, health.signals]
    governance = Governance.from_config(config, data_directory)
    listeners.append(governance.listener)
    if allowed is None:
        allowed = governance.policy  # data classes against each provider's approved_for
    router = build_router(config, providers, listeners=listeners, allowed=allowed)
    routes = router.routes
    # Keys limited to routes are checked against the route a model resolves to (gpt-* for gpt-5.1-mini).
    governance.use_routes(lambda model: route.name if (route := routes.route(model)) is not None else None)
    if health is not None:  # active probes, of the targets configured for them (none by default)
        health.attach_probes(config, providers, router)
    if config.master_key is None:
        log.warning("no master_key configured: any client may use this gateway until a virtual key is created")
    sinks: list[ExchangeSink] = []
    journal = None
    if config.record or governance.audit is not None:
        from outlast.store.recorder import open_recorder

        recorder = open_recorder(config, data_directory)
        if config.record:
            sinks.append(recorder)
        else:
            journal = recorder  # `record: false`: it journals the audit records, and nothing else
        # Audit records go into the journal (with the exchanges, when recording); the ingester
        # appends them to the chain.
        governance.journal_audit(recorder.note, recorder.wait_stored)
    return Gateway(config, providers, router, metrics, sinks=sinks, health=health, governance=governance,
                   journal=journal)
