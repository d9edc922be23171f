"""The inventory on the web: ``GET /outlast/v1/usage`` (JSON) and the dashboard's ``/ui/usage`` page.

Both read :func:`outlast.governance.inventory.report`, the rows ``outlast report usage`` prints:
which teams use which providers and models, with requests, tokens, errors and data classes, over
a window given by ``since`` and ``until`` (epoch seconds, ISO 8601, or an age such as ``7d``;
default: the last 30 days).

They need the admin credential: the master key (``Authorization: Bearer`` or ``x-api-key``) for
the API, the dashboard's session (outlast.web.session, opened at ``/ui/login``) for the page. A
virtual key is a team's key, not an admin's, and is refused. Without a master key they are open,
like the rest.
"""

from __future__ import annotations

import asyncio
import hmac
import logging
from html import escape
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qs

from outlast.governance.inventory import parse_when, report
from outlast.health.incidents import clock_text
from outlast.web import pages
from outlast.web.http import Receive, Scope, Send, respond, respond_json
from outlast.web.session import Session, Sessions, https

if TYPE_CHECKING:
    import sqlalchemy as sa

log = logging.getLogger("outlast.governance")

API = "/outlast/v1/usage"
PAGE = "/ui/usage"
HTML = b"text/html; charset=utf-8"
SECURITY = [(b"content-security-policy", b"default-src 'self'; img-src 'self' data:; frame-ancestors 'none'"),
            (b"x-content-type-options", b"nosniff"), (b"referrer-policy", b"same-origin"),
            (b"cache-control", b"no-store")]
DEFAULT_WINDOW = "30d"


class UsageWeb:
    def __init__(self, engine: sa.Engine, master_key: bytes | None, sessions: Sessions | None = None) -> None:
        self.engine = engine
        self.master_key = master_key
        self.sessions = sessions if sessions is not None else Sessions(master_key)

    # ------------------------------------------------------------------ auth

    def _key_ok(self, headers: dict[str, str]) -> bool:
        if self.master_key is None:
            return True
        presented = headers.get("x-api-key")
        if presented is None:
            scheme, _, token = headers.get("authorization", "").partition(" ")
            presented = token.strip() if scheme.lower() == "bearer" else ""
        return hmac.compare_digest(presented.encode(), self.master_key)

    def _visitor(self, scope: Scope, headers: dict[str, str]) -> tuple[Session | None, list[tuple[bytes, bytes]]]:
        session = self.sessions.get(headers)
        if session is not None or not self.sessions.open_access:
            return session, []
        session = self.sessions.open(signed_in=False)  # no master key: for the forms' tokens
        return session, [self.sessions.cookie(session, https(scope, headers))]

    # ------------------------------------------------------------------ dispatch

    async def handle(self, scope: Scope, receive: Receive, send: Send, headers: dict[str, str]) -> bool:
        """Serve ``scope`` if it is the usage API or page; False leaves it to the others."""
        path: str = scope["path"].rstrip("/")
        if path not in (API, PAGE):
            return False
        method: str = scope["method"]
        page = path == PAGE
        if method not in ("GET", "HEAD"):
            await respond_json(send, 405, {"error": f"{path} takes GET, not {method}"},
                               headers=[(b"allow", b"GET, HEAD")])
            return True
        session, cookies = self._visitor(scope, headers) if page else (None, [])
        if page and session is None:
            await respond(send, 303, b"", content_type=b"text/plain", headers=[(b"location", b"/ui/login")])
            return True
        if not page and not (self._key_ok(headers) or self.sessions.get(headers) is not None):  # GET only
            await respond_json(send, 401, {"error": "missing or invalid key: the usage inventory needs the master "
                                                    "key, as 'Authorization: Bearer' or 'x-api-key'"})
            return True
        query = {k: v[-1] for k, v in parse_qs(scope.get("query_string", b"").decode("latin-1")).items()}
        try:
            since = parse_when(query.get("since") or DEFAULT_WINDOW)
            until = parse_when(query["until"]) if query.get("until") else None
        except ValueError as error:
            if page:
                await self._page(send, pages.layout("outlast — usage", f"<h1>Usage</h1>{_form(query)}"
                                                    f'<p role="alert">{escape(str(error))}</p>', current=PAGE,
                                                    session=session), 400, cookies)
            else:
                await respond_json(send, 400, {"error": str(error)})
            return True
        try:
            found = await asyncio.to_thread(report, self.engine, since=since, until=until)
        except Exception as error:  # the store is down: say so, without its URL or credentials
            log.warning("usage: the store cannot be read (%s)", type(error).__name__)
            message = f"the store cannot be read ({type(error).__name__})"
            if page:
                await self._page(send, pages.layout("outlast — usage", f"<h1>Usage</h1><p>{escape(message)}</p>",
                                                    current=PAGE, session=session), 503, cookies)
            else:
                await respond_json(send, 503, {"error": message})
            return True
        if page:
            await self._page(send, usage_page(found, query, session=session), extra=cookies)
        else:
            await respond_json(send, 200, found)
        return True

    @staticmethod
    async def _page(send: Send, body: str, status: int = 200, extra: list[tuple[bytes, bytes]] | None = None) -> None:
        await respond(send, status, body.encode(), content_type=HTML, headers=[*SECURITY, *(extra or [])])


def _form(query: dict[str, str]) -> str:
    since = escape(query.get("since", DEFAULT_WINDOW))
    until = escape(query.get("until", ""))
    return (f'<form method="get" action="{PAGE}" class="report"><label>Since <input name="since" value="{since}" '
            f'size="22" aria-describedby="when-help"></label> <label>Until <input name="until" value="{until}" '
            f'size="22"></label> <button>Show</button><div id="when-help" class="muted">An age (12h, 7d), a date '
            f"(2026-11-01) or a time in UTC (2026-11-01T08:00:00Z).</div></form>")


def _counts(counts: dict[str, int]) -> str:
    return ", ".join(f"{escape(name)} ({n})" for name, n in counts.items())


def usage_page(found: dict[str, Any], query: dict[str, str], *, session: Session | None = None) -> str:
    until = clock_text(found["until"]) if found["until"] is not None else "now"
    window = f"{clock_text(found['since'])} to {until}"
    teams = "".join(
        f"<tr><th scope=row>{escape(t['team'])}</th><td>{t['requests']}</td><td>{t['input_tokens']}</td>"
        f"<td>{t['output_tokens']}</td><td>{t['errors']}</td><td>{_counts(t['models'])}</td>"
        f"<td>{_counts(t['data_classes'])}</td></tr>" for t in found["teams"])
    rows = "".join(
        f"<tr><td>{escape(r['team'])}</td><td>{escape(r['provider'])}</td><td>{escape(r['model'])}</td>"
        f"<td>{escape(r['data_class'])}</td><td>{r['requests']}</td><td>{r['input_tokens']}</td>"
        f"<td>{r['output_tokens']}</td><td>{r['errors']}</td></tr>" for r in found["usage"])
    empty = '<tr><td colspan="{n}">No requests in this window.</td></tr>'
    body = (
        f"<h1>Usage</h1>{_form(query)}"
        f'<p class="muted">Which teams use which providers and models, from {escape(window)}. '
        f'Also as JSON: <a href="{API}">{API}</a> and <code>outlast report usage</code>.</p>'
        f'<table id="usage-teams"><caption>By team</caption><thead><tr><th scope="col">Team</th>'
        f'<th scope="col">Requests</th><th scope="col">Tokens in</th><th scope="col">Tokens out</th>'
        f'<th scope="col">Errors</th><th scope="col">Providers and models</th><th scope="col">Data classes</th>'
        f"</tr></thead><tbody>{teams or empty.format(n=7)}</tbody></table>"
        f'<table id="usage-detail"><caption>By team, provider, model and data class</caption><thead><tr>'
        f'<th scope="col">Team</th><th scope="col">Provider</th><th scope="col">Model</th>'
        f'<th scope="col">Data class</th><th scope="col">Requests</th><th scope="col">Tokens in</th>'
        f'<th scope="col">Tokens out</th><th scope="col">Errors</th></tr></thead>'
        f"<tbody>{rows or empty.format(n=8)}</tbody></table>")
    return pages.layout("outlast — usage", body, current=PAGE, session=session)
