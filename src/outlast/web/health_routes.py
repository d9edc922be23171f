"""The health pages and API, as one raw-ASGI handler the gateway asks before its 404:

- public: ``/status``, ``/api/v2/*.json`` (Statuspage v2), ``/history.atom``
- dashboard: ``/ui/`` (overview, incidents, providers, conversations), ``/ui/login``, ``/ui/static/*``
- API: ``GET /outlast/v1/health``, ``GET /outlast/v1/incidents[/ID]``, ``POST /outlast/v1/reports``

With a master key configured, the dashboard and the API need it: the API as a bearer key (or the
dashboard's session), the dashboard through a sign-in form that opens a session (outlast.web.session:
a random id with expiry, in an HttpOnly, SameSite=Strict cookie; ``/ui/logout`` ends it). Without
one, they are open, like the proxy.

A request the session authenticates may read the API when the dashboard's script marks it
(``x-outlast-ui: 1``); it may change something (``POST /outlast/v1/reports``) only with the
session's CSRF token, in the form's ``csrf`` field or the script's ``x-outlast-csrf`` header, and
from this gateway's own origin: anything else is 403. The report form works without the script:
posted form-encoded, it files the report and redirects back to the overview, which says so.
"""

from __future__ import annotations

import asyncio
import hmac
from html import escape
from importlib import resources
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qs, quote, unquote

import orjson

from outlast.web import pages, statuspage
from outlast.web.http import BodyTooLarge, ClientGone, Receive, Scope, Send, read_body, respond, respond_json
from outlast.web.session import FIELD, HEADER, Session, Sessions, https, same_origin

DELETE = "/delete"  # POST /ui/conversations/<id>/delete

if TYPE_CHECKING:
    from outlast.health.service import HealthService

HTML = b"text/html; charset=utf-8"
FORM = "application/x-www-form-urlencoded"
# What the overview says after the report form (posted without the script) redirected back to it.
REPORT_RESULTS = {"invalid": "Not filed: choose what is wrong (and, if you like, add a note).",
                  "unknown": "Not filed: outlast does not know that component.",
                  "too-large": "Not filed: a report is at most 64 KiB."}
SECURITY = [(b"content-security-policy", b"default-src 'self'; img-src 'self' data:; frame-ancestors 'none'"),
            (b"x-content-type-options", b"nosniff"), (b"referrer-policy", b"same-origin"),
            (b"cache-control", b"no-store")]
# The methods each /outlast/v1/ endpoint takes (for 405's Allow); "incidents/" stands for incidents/{id}.
_API_METHODS = {"health": "GET", "incidents": "GET", "incidents/": "GET", "reports": "GET, POST"}
STATIC = {"outlast.css": b"text/css; charset=utf-8", "outlast.js": b"text/javascript; charset=utf-8"}


def _static(name: str) -> bytes:
    return (resources.files("outlast.web") / "static" / name).read_bytes()


class HealthWeb:
    def __init__(self, health: HealthService, master_key: bytes | None, sessions: Sessions | None = None) -> None:
        self.health = health
        self.master_key = master_key
        self.sessions = sessions if sessions is not None else Sessions(master_key)
        self.static = {name: _static(name) for name in STATIC}

    # ------------------------------------------------------------------ auth

    def _key_ok(self, headers: dict[str, str]) -> bool:
        """The master key presented, or none configured."""
        if self.master_key is None:
            return True
        presented = headers.get("x-api-key")
        if presented is None:
            scheme, _, token = headers.get("authorization", "").partition(" ")
            presented = token.strip() if scheme.lower() == "bearer" else ""
        return hmac.compare_digest(presented.encode(), self.master_key)

    def _visitor(self, scope: Scope, headers: dict[str, str]) -> tuple[Session | None, list[tuple[bytes, bytes]]]:
        """The dashboard visitor's session, and the cookie to set when one was opened for them (a
        dashboard without a master key opens anonymous ones, for its forms' tokens)."""
        session = self.sessions.get(headers)
        if session is not None or not self.sessions.open_access:
            return session, []
        session = self.sessions.open(signed_in=False)
        return session, [self.sessions.cookie(session, https(scope, headers))]

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
            await self._api_call(scope, receive, send, headers, path[len("/outlast/v1/"):], method)
            return True
        return False

    async def _api_call(self, scope: Scope, receive: Receive, send: Send, headers: dict[str, str], rest: str,
                        method: str) -> None:
        if self._key_ok(headers):  # the master key (or none configured): an API client
            await self._api(scope, receive, send, headers, rest, method, None)
            return
        session = self.sessions.get(headers)
        if session is not None:
            if method in ("GET", "HEAD") and (headers.get("x-outlast-ui") == "1"
                                              or self.sessions.token_ok(session, headers.get(HEADER))):
                await self._api(scope, receive, send, headers, rest, method, None)
                return
            if method == "POST":  # checked with its token once the body is read
                await self._api(scope, receive, send, headers, rest, method, session)
                return
        await respond_json(send, 401, {"error": "missing or invalid key: send the master key as "
                                                "'Authorization: Bearer' or 'x-api-key'"})

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

    @staticmethod
    async def _form(receive: Receive, headers: dict[str, str]) -> dict[str, list[str]] | None:
        """A dashboard form's fields (URL-encoded, 64 KiB at most); ``None`` when the body was too
        large or the client left, and nothing is to be answered."""
        try:
            raw = await read_body(receive, headers, 64 * 1024)
        except (BodyTooLarge, ClientGone):
            return None
        return parse_qs(raw.decode("utf-8", "replace"))

    # ------------------------------------------------------------------ dashboard

    async def _ui(self, scope: Scope, receive: Receive, send: Send, headers: dict[str, str], path: str,
                  method: str) -> None:
        if path == "/ui/login":
            await self._login(scope, receive, send, headers, method)
            return
        if path == "/ui/logout":
            await self._logout(scope, receive, send, headers, method)
            return
        session, cookies = self._visitor(scope, headers)
        if session is None:
            await self._redirect(send, "/ui/login")
            return
        if method == "POST" and path.startswith("/ui/conversations/") and path.endswith(DELETE):
            await self._delete_conversation(scope, receive, send, headers, path, session, cookies)
            return
        if method not in ("GET", "HEAD"):
            await self._html(send, pages.layout("not allowed", f"<h1>{escape(path)} takes GET</h1>",
                                                session=session), 405, [(b"allow", b"GET, HEAD"), *cookies])
            return
        query = {k: v[-1] for k, v in parse_qs(scope.get("query_string", b"").decode("latin-1")).items()}
        if path in ("/ui", "/ui/"):
            await self._html(send, pages.overview(self.health, self.live(), session=session,
                                                  result=self._report_result(query)), extra=cookies)
        elif path == "/ui/incidents":
            await self._html(send, pages.incidents_page(self.health, session=session), extra=cookies)
        elif path.startswith("/ui/incidents/"):
            incident = self._incident(unquote(path[len("/ui/incidents/"):]))
            if incident is None:
                await self._html(send, pages.layout("not found", "<h1>No such incident</h1>", session=session), 404,
                                 cookies)
            else:
                await self._html(send, pages.incident_page(incident, session=session), extra=cookies)
        elif path == "/ui/providers":
            await self._html(send, pages.providers_page(self.health, session=session), extra=cookies)
        elif path == "/ui/conversations" or path.startswith("/ui/conversations/"):
            await self._conversations(scope, send, path, session, cookies)
        else:
            await self._html(send, pages.layout("not found", "<h1>Not found</h1>", session=session), 404, cookies)

    def _report_result(self, query: dict[str, str]) -> str:
        component = query.get("reported")
        if component is not None and component in self.health.components():
            return f"Report filed for {component}. Thank you."
        return REPORT_RESULTS.get(query.get("report_error", ""), "")

    async def _login(self, scope: Scope, receive: Receive, send: Send, headers: dict[str, str], method: str) -> None:
        if method != "POST":
            if self.sessions.get(headers) is not None or self.sessions.open_access:  # nothing to sign in to
                await self._redirect(send, "/ui/")
                return
            await self._html(send, pages.login_page())
            return
        fields = await self._form(receive, headers)
        if fields is None:
            return
        if not same_origin(scope, headers):  # a page elsewhere posting to our sign-in
            await self._html(send, pages.login_page("Sign in from this gateway's own page."), 403)
            return
        key = fields.get("key", [""])[0]
        if not self.sessions.key_ok(key):
            await self._html(send, pages.login_page("That is not the master key."), 401)
            return
        old = self.sessions.get(headers)
        if old is not None:  # a new session id at sign-in, never one chosen before it
            self.sessions.close(old)
        session = self.sessions.open()
        await self._redirect(send, "/ui/", [self.sessions.cookie(session, https(scope, headers))])

    async def _logout(self, scope: Scope, receive: Receive, send: Send, headers: dict[str, str], method: str) -> None:
        session = self.sessions.get(headers)
        if method != "POST":
            if session is None:
                await self._redirect(send, "/ui/login")
            else:
                await self._html(send, pages.logout_page(session))
            return
        fields = await self._form(receive, headers)
        if fields is None:
            return
        token = fields.get(FIELD, [None])[-1]
        if session is not None and not self.sessions.allows(session, scope, headers, token):
            await self._html(send, pages.refused_page("The sign-out did not come from this dashboard's own page."),
                             403)
            return
        if session is not None:
            self.sessions.close(session)
        where = "/ui/" if self.sessions.open_access else "/ui/login"
        await self._redirect(send, where, [self.sessions.clearing(https(scope, headers))])

    def _store(self) -> Any:
        return getattr(self.health.store, "sql", None) if self.health.store is not None else None

    async def _delete_conversation(self, scope: Scope, receive: Receive, send: Send, headers: dict[str, str],
                                   path: str, session: Session, cookies: list[tuple[bytes, bytes]]) -> None:
        """``POST /ui/conversations/<id>/delete`` from the conversation's page (its CSRF token, this
        gateway's origin): the conversation, its messages and its exchanges go (``Store.delete_conversation``)."""
        fields = await self._form(receive, headers)
        if fields is None:
            return
        token = fields.get(FIELD, [None])[-1]
        if not self.sessions.allows(session, scope, headers, token):
            await self._html(send, pages.refused_page("The deletion did not come from this dashboard's own page."),
                             403, cookies)
            return
        store = self._store()
        cid = unquote(path[len("/ui/conversations/"):-len(DELETE)])
        conversation = await asyncio.to_thread(store.get_conversation, cid) if store is not None else None
        if conversation is None or conversation.id != cid:  # the page names it in full: never by prefix here
            await self._html(send, pages.layout("not found", "<h1>No such conversation</h1>", session=session), 404,
                             cookies)
            return
        await asyncio.to_thread(store.delete_conversation, cid)
        await self._redirect(send, "/ui/conversations?deleted=1", cookies)

    async def _conversations(self, scope: Scope, send: Send, path: str, session: Session,
                             cookies: list[tuple[bytes, bytes]]) -> None:
        store = self._store()
        if store is None:
            await self._html(send, pages.conversations_page([], "", None, "No store is configured.", session=session),
                             extra=cookies)
            return
        rest = unquote(path[len("/ui/conversations"):]).strip("/")
        if not rest:
            asked = parse_qs(scope.get("query_string", b"").decode())
            query = asked.get("q", [""])[0].strip()
            notice = "The conversation was deleted." if asked.get("deleted") else ""
            try:
                if query:
                    hits = await asyncio.to_thread(store.search, query, limit=50)
                    await self._html(send, pages.conversations_page([], query, hits, None, session=session),
                                     extra=cookies)
                else:
                    items = await asyncio.to_thread(store.list_conversations, limit=100)
                    await self._html(send, pages.conversations_page(items, "", None, None, session=session,
                                                                    notice=notice), extra=cookies)
            except Exception as error:
                await self._html(send, pages.conversations_page([], query, None, f"The store cannot be read: {error}",
                                                                session=session), 503, cookies)
            return
        cid, _, export = rest.partition("/export.")
        conversation = await asyncio.to_thread(store.get_conversation, cid)
        if conversation is None:
            await self._html(send, pages.layout("not found", "<h1>No such conversation</h1>", session=session), 404,
                             cookies)
            return
        if export in ("md", "json"):
            from outlast.memory.export import render

            body = render(conversation, export)
            kind = b"text/markdown; charset=utf-8" if export == "md" else b"application/json"
            disposition = f'attachment; filename="{conversation.id[:40]}.{export}"'.encode()
            await respond(send, 200, body, content_type=kind, headers=[(b"content-disposition", disposition)])
            return
        await self._html(send, pages.conversation_page(conversation, session=session), extra=cookies)

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

    async def _api(self, scope: Scope, receive: Receive, send: Send, headers: dict[str, str], rest: str,
                   method: str, session: Session | None) -> None:
        """``session``: a POST the dashboard's session authenticates, to be checked with its token."""
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
            await self._report(scope, receive, send, headers, session)
        elif rest == "reports" and method == "GET":
            await respond_json(send, 200, {"reports": [
                {"at": r.at, "component": r.component, "note": r.note} for r in self.health.reports.latest()]})
        elif session is not None:  # no other POST takes the session
            await respond_json(send, 403, {"error": f"{method} /outlast/v1/{rest} needs the master key"})
        else:
            allowed = _API_METHODS.get("incidents/" if rest.startswith("incidents/") else rest)
            if allowed is not None:  # a known endpoint, another method
                await respond_json(send, 405, {"error": f"/outlast/v1/{rest} takes {allowed}, not {method}"},
                                   headers=[(b"allow", allowed.encode())])
                return
            await respond_json(send, 404, {"error": f"no such endpoint: {method} /outlast/v1/{rest}"})

    async def _report(self, scope: Scope, receive: Receive, send: Send, headers: dict[str, str],
                      session: Session | None) -> None:
        """A user's problem report: JSON (API clients, the dashboard's script) answered with 201 and
        JSON; or the dashboard's form, posted form-encoded without the script, answered with a
        redirect back to the overview. ``session``: authenticated by the dashboard's session, so
        its token and origin are checked. An API client with the key gets JSON answers only."""
        from outlast.health.service import UnknownComponent

        encoded = headers.get("content-type", "").split(";")[0].strip().lower() == FORM
        # The dashboard: its session, or (no master key) its anonymous session's form.
        dashboard = session is not None or (encoded and self.sessions.open_access)
        form = encoded and dashboard
        try:
            raw = await read_body(receive, headers, 64 * 1024)
        except BodyTooLarge:
            await self._report_refused(send, form, 413, "a report is at most 64 KiB", "too-large")
            return
        except ClientGone:
            return
        body: Any
        if form:
            fields = {k: v[-1] for k, v in parse_qs(raw.decode("utf-8", "replace"), keep_blank_values=True).items()}
            token = fields.pop(FIELD, None)
            body = fields
        else:
            token = headers.get(HEADER)
            try:
                body = orjson.loads(raw) if raw else {}
            except orjson.JSONDecodeError:
                body = None
        if dashboard and not self.sessions.allows(session or self.sessions.get(headers), scope, headers, token):
            # Cookies go with any request a browser makes, even one another site started: only
            # the token (and the origin) say the dashboard's own page asked.
            await respond_json(send, 403, {"error": "refused: a report from the dashboard needs its CSRF token "
                                                    f"('{FIELD}' field or '{HEADER}' header) and must come from "
                                                    "this gateway's own page; reload the dashboard and try again"})
            return
        if (not isinstance(body, dict) or not isinstance(body.get("component"), str)
                or not isinstance(body.get("note"), str | None)):
            await self._report_refused(send, form, 400, 'send {"component": "provider or provider/model", '
                                                        '"note": "optional"}', "invalid")
            return
        note = body.get("note") or ""
        try:
            report = await self.health.report(body["component"], note or "", headers.get("x-outlast-reporter"))
        except UnknownComponent as error:
            await self._report_refused(send, form, 400, str(error), "unknown")
            return
        if form:
            await self._redirect(send, f"/ui/?reported={quote(report.component, safe='')}#report-form")
            return
        await respond_json(send, 201, {"component": report.component, "at": report.at, "note": report.note,
                                       "reports_in_window": self.health.reports.count(report.component, report.at)})

    async def _report_refused(self, send: Send, form: bool, status: int, message: str, code: str) -> None:
        if form:  # back to the form, which says why
            await self._redirect(send, f"/ui/?report_error={code}#report-form")
        else:
            await respond_json(send, status, {"error": message})
