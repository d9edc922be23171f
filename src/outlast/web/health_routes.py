"""The health pages and API, as one raw-ASGI handler the gateway asks before its 404:

- public: ``/status``, ``/api/v2/*.json`` (Statuspage v2), ``/history.atom``
- dashboard: ``/ui/`` (overview, incidents, providers, conversations), ``/ui/login``, ``/ui/static/*``
- API: ``GET /outlast/v1/health``, ``GET /outlast/v1/incidents[/ID]``, ``POST /outlast/v1/reports``

With a master key configured, the dashboard and the API need it: the API as a bearer key (or the
dashboard's session), the dashboard through a login form that sets an HttpOnly, SameSite=Strict
session cookie derived from the key. Without one, they are open, like the proxy.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
from importlib import resources
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qs, unquote

import orjson

from outlast.web import pages, statuspage
from outlast.web.http import BodyTooLarge, ClientGone, Receive, Scope, Send, read_body, respond, respond_json

if TYPE_CHECKING:
    from outlast.health.service import HealthService

HTML = b"text/html; charset=utf-8"
COOKIE = "outlast_session"
SECURITY = [(b"content-security-policy", b"default-src 'self'; img-src 'self' data:; frame-ancestors 'none'"),
            (b"x-content-type-options", b"nosniff"), (b"referrer-policy", b"same-origin"),
            (b"cache-control", b"no-store")]
# The methods each /outlast/v1/ endpoint takes (for 405's Allow); "incidents/" stands for incidents/{id}.
_API_METHODS = {"health": "GET", "incidents": "GET", "incidents/": "GET", "reports": "GET, POST"}
STATIC = {"outlast.css": b"text/css; charset=utf-8", "outlast.js": b"text/javascript; charset=utf-8"}


def _static(name: str) -> bytes:
    return (resources.files("outlast.web") / "static" / name).read_bytes()


class HealthWeb:
    def __init__(self, health: HealthService, master_key: bytes | None) -> None:
        self.health = health
        self.master_key = master_key
        self.session = hmac.new(master_key, b"outlast-ui-session", hashlib.sha256).hexdigest() \
            if master_key else None
        self.static = {name: _static(name) for name in STATIC}

    # ------------------------------------------------------------------ auth

    def _cookie_ok(self, headers: dict[str, str]) -> bool:
        if self.session is None:
            return True
        for part in headers.get("cookie", "").split(";"):
            name, _, value = part.strip().partition("=")
            if name == COOKIE and hmac.compare_digest(value.encode(), self.session.encode()):
                return True
        return False

    def _key_ok(self, headers: dict[str, str]) -> bool:
        if self.master_key is None:
            return True
        presented = headers.get("x-api-key")
        if presented is None:
            scheme, _, token = headers.get("authorization", "").partition(" ")
            presented = token.strip() if scheme.lower() == "bearer" else ""
        return hmac.compare_digest(presented.encode(), self.master_key)

    # ------------------------------------------------------------------ dispatch

    async def handle(self, scope: Scope, receive: Receive, send: Send, headers: dict[str, str]) -> bool:
        """Serve ``scope`` if it is one of these paths; False leaves it to the gateway."""
        path: str = scope["path"]
        method: str = scope["method"]
        if path == "/status" or path == "/status/":
            await self._html(send, pages.status_page(self.health))
            return True
        if path.startswith("/api/v2/"):
            document = statuspage.document(self.health, path[len("/api/v2/"):], self._base(scope, headers))
            if document is None:
                await respond_json(send, 404, {"error": f"no such document: {path}"})
            else:
                await respond_json(send, 200, document, headers=[(b"access-control-allow-origin", b"*")])
            return True
        if path == "/history.atom":
            await respond(send, 200, statuspage.atom(self.health, self._base(scope, headers)).encode(),
                          content_type=b"application/atom+xml; charset=utf-8")
            return True
        if path.startswith("/ui/static/"):
            name = path[len("/ui/static/"):]
            if name in self.static:
                await respond(send, 200, self.static[name], content_type=STATIC[name],
                              headers=[(b"cache-control", b"max-age=300")])
            else:
                await respond(send, 404, b"not found", content_type=b"text/plain")
            return True
        if path == "/ui" or path.startswith("/ui/"):
            await self._ui(scope, receive, send, headers, path, method)
            return True
        if path.startswith("/outlast/v1/"):
            if not (self._key_ok(headers) or (self._cookie_ok(headers) and headers.get("x-outlast-ui") == "1")):
                await respond_json(send, 401, {"error": "missing or invalid key: send the master key as "
                                                        "'Authorization: Bearer' or 'x-api-key'"})
                return True
            await self._api(receive, send, headers, path[len("/outlast/v1/"):], method)
            return True
        return False

    @staticmethod
    def _base(scope: Scope, headers: dict[str, str]) -> str:
        host = headers.get("host") or "localhost"
        return f"{scope.get('scheme', 'http')}://{host}"

    async def _html(self, send: Send, body: str, status: int = 200, extra: list[tuple[bytes, bytes]] | None = None
                    ) -> None:
        await respond(send, status, body.encode(), content_type=HTML, headers=[*SECURITY, *(extra or [])])

    async def _redirect(self, send: Send, where: str, extra: list[tuple[bytes, bytes]] | None = None) -> None:
        await respond(send, 303, b"", content_type=b"text/plain", headers=[(b"location", where.encode()),
                                                                            *(extra or [])])

    # ------------------------------------------------------------------ dashboard

    async def _ui(self, scope: Scope, receive: Receive, send: Send, headers: dict[str, str], path: str,
                  method: str) -> None:
        if path == "/ui/login":
            if method == "POST":
                try:
                    raw = await read_body(receive, headers, 64 * 1024)
                except (BodyTooLarge, ClientGone):
                    return
                key = parse_qs(raw.decode("utf-8", "replace")).get("key", [""])[0]
                if self.master_key is not None and hmac.compare_digest(key.encode(), self.master_key):
                    cookie = f"{COOKIE}={self.session}; Path=/; HttpOnly; SameSite=Strict"
                    await self._redirect(send, "/ui/", [(b"set-cookie", cookie.encode())])
                else:
                    await self._html(send, pages.login_page("That is not the master key."), 401)
                return
            await self._html(send, pages.login_page())
            return
        if not self._cookie_ok(headers):
            await self._redirect(send, "/ui/login")
            return
        if path in ("/ui", "/ui/"):
            await self._html(send, pages.overview(self.health, self.live()))
        elif path == "/ui/incidents":
            await self._html(send, pages.incidents_page(self.health))
        elif path.startswith("/ui/incidents/"):
            incident = self._incident(unquote(path[len("/ui/incidents/"):]))
            if incident is None:
                await self._html(send, pages.layout("not found", "<h1>No such incident</h1>"), 404)
            else:
                await self._html(send, pages.incident_page(incident))
        elif path == "/ui/providers":
            await self._html(send, pages.providers_page(self.health))
        elif path == "/ui/conversations" or path.startswith("/ui/conversations/"):
            await self._conversations(scope, send, path)
        else:
            await self._html(send, pages.layout("not found", "<h1>Not found</h1>"), 404)

    async def _conversations(self, scope: Scope, send: Send, path: str) -> None:
        store = getattr(self.health.store, "sql", None) if self.health.store is not None else None
        if store is None:
            await self._html(send, pages.conversations_page([], "", None, "No store is configured."))
            return
        rest = unquote(path[len("/ui/conversations"):]).strip("/")
        if not rest:
            query = parse_qs(scope.get("query_string", b"").decode()).get("q", [""])[0].strip()
            try:
                if query:
                    hits = await asyncio.to_thread(store.search, query, limit=50)
                    await self._html(send, pages.conversations_page([], query, hits, None))
                else:
                    items = await asyncio.to_thread(store.list_conversations, limit=100)
                    await self._html(send, pages.conversations_page(items, "", None, None))
            except Exception as error:
                await self._html(send, pages.conversations_page([], query, None, f"The store cannot be read: {error}"),
                                 503)
            return
        cid, _, export = rest.partition("/export.")
        conversation = await asyncio.to_thread(store.get_conversation, cid)
        if conversation is None:
            await self._html(send, pages.layout("not found", "<h1>No such conversation</h1>"), 404)
            return
        if export in ("md", "json"):
            from outlast.memory.export import render

            body = render(conversation, export)
            kind = b"text/markdown; charset=utf-8" if export == "md" else b"application/json"
            disposition = f'attachment; filename="{conversation.id[:40]}.{export}"'.encode()
            await respond(send, 200, body, content_type=kind, headers=[(b"content-disposition", disposition)])
            return
        await self._html(send, pages.conversation_page(conversation))

    def _incident(self, incident_id: str) -> Any:
        for incident in self.health.detector.incidents:
            if incident.id == incident_id:
                return incident
        return None

    # ------------------------------------------------------------------ API

    def live(self) -> dict[str, Any]:
        health = self.health
        now = health.clock()
        requests, errors, failovers = health.signals.totals.window(now, 60.0)
        return {
            "time": now,
            "live": {"requests_per_minute": float(requests), "error_rate": errors / requests if requests else 0.0,
                     "failovers": health.signals.failovers, "failovers_last_minute": failovers,
                     "requests_total": health.signals.requests, "failed_total": health.signals.failed},
            "status": statuspage.page_status(health),
            "components": health.detector.snapshot(now),
            "probes": health.probes.snapshot() if health.probes is not None else [],  # active probes, per target
            "feeds": [f.describe() for f in health.feeds.states.values()],
            "incidents": [{"id": i.id, "title": i.title, "status": i.status, "cause": i.cause,
                           "opened_at": i.opened_at} for i in reversed(health.detector.incidents[-50:])],
        }

    async def _api(self, receive: Receive, send: Send, headers: dict[str, str], rest: str, method: str) -> None:
        if rest == "health" and method == "GET":
            await respond_json(send, 200, self.live())
        elif rest == "incidents" and method == "GET":
            incidents = [i.to_dict() for i in reversed(self.health.detector.incidents)]
            await respond_json(send, 200, {"incidents": incidents})
        elif rest.startswith("incidents/") and method == "GET":
            incident = self._incident(unquote(rest[len("incidents/"):]))
            if incident is None:
                await respond_json(send, 404, {"error": "no such incident"})
            else:
                await respond_json(send, 200, incident.to_dict())
        elif rest == "reports" and method == "POST":
            await self._report(receive, send, headers)
        elif rest == "reports" and method == "GET":
            await respond_json(send, 200, {"reports": [
                {"at": r.at, "component": r.component, "note": r.note} for r in self.health.reports.latest()]})
        else:
            allowed = _API_METHODS.get("incidents/" if rest.startswith("incidents/") else rest)
            if allowed is not None:  # a known endpoint, another method
                await respond_json(send, 405, {"error": f"/outlast/v1/{rest} takes {allowed}, not {method}"},
                                   headers=[(b"allow", allowed.encode())])
                return
            await respond_json(send, 404, {"error": f"no such endpoint: {method} /outlast/v1/{rest}"})

    async def _report(self, receive: Receive, send: Send, headers: dict[str, str]) -> None:
        from outlast.health.service import UnknownComponent

        try:
            raw = await read_body(receive, headers, 64 * 1024)
        except BodyTooLarge:
            await respond_json(send, 413, {"error": "a report is at most 64 KiB"})
            return
        except ClientGone:
            return
        try:
            body = orjson.loads(raw) if raw else {}
        except orjson.JSONDecodeError:
            body = None
        if (not isinstance(body, dict) or not isinstance(body.get("component"), str)
                or not isinstance(body.get("note"), str | None)):
            await respond_json(send, 400, {"error": 'send {"component": "provider or provider/model", '
                                                    '"note": "optional"}'})
            return
        note = body.get("note") or ""
        try:
            report = await self.health.report(body["component"], note or "", headers.get("x-outlast-reporter"))
        except UnknownComponent as error:
            await respond_json(send, 400, {"error": str(error)})
            return
        await respond_json(send, 201, {"component": report.component, "at": report.at, "note": report.note,
                                       "reports_in_window": self.health.reports.count(report.component, report.at)})
