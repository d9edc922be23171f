"""The dashboard's sessions, and what keeps other sites from acting through them.

Signing in with the master key (``/ui/login``) opens a session: a random id (256 bits) held in
this process, with an idle expiry and a lifetime, sent as an ``HttpOnly; SameSite=Strict`` cookie
(``Secure`` when the request came over https, directly or as ``X-Forwarded-Proto: https``).
``/ui/logout`` ends it. Nothing about it derives from the master key, so a cookie never reveals
or outlives it. Sessions live in this process: a restart signs everyone out, and behind a load
balancer each replica has its own (sign in again, or make sessions sticky).

Each session has a CSRF token, random too. Every form the dashboard posts carries it in a hidden
``csrf`` field, and the dashboard's script sends it as ``x-outlast-csrf``; a state-changing
request the session authenticates must carry it and, when the browser says where it came from
(``Origin``, else ``Referer``), come from this gateway's own host. The sign-in form has no
session yet and checks the origin only: signing someone in needs the master key itself.

Without a master key the dashboard is open, but its forms still get a token: the first page
opens an anonymous session for it.

    sessions = Sessions(master_key)
    session = sessions.open()                   # after the key was checked
    sessions.get(headers)                       # the cookie's session, if it is valid
    sessions.allows(session, scope, headers, token)   # a POST it may make
"""

from __future__ import annotations

import hmac
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass
from urllib.parse import urlsplit

from outlast.web.http import Scope

COOKIE = "outlast_session"
FIELD = "csrf"  # the hidden form field
HEADER = "x-outlast-csrf"  # the header the dashboard's script sends
IDLE = 8 * 3600.0  # a session unused this long ends
LIFETIME = 24 * 3600.0  # and every session ends this long after sign-in
LIMIT = 10_000  # sessions kept at most; the oldest go first


@dataclass(slots=True)
class Session:
    id: str
    csrf: str
    created: float
    seen: float
    signed_in: bool  # False: an anonymous session of a dashboard without a master key


def https(scope: Scope, headers: dict[str, str]) -> bool:
    """Whether the browser reached us over https (directly, or through a proxy that says so)."""
    forwarded = headers.get("x-forwarded-proto", "").split(",")[0].strip().lower()
    return scope.get("scheme") == "https" or forwarded == "https"


def _host_port(netloc: str) -> tuple[str, int | None]:
    host, sep, port = netloc.lower().rpartition(":")
    if not sep or "]" in port:  # no port (an IPv6 literal's colons are inside brackets)
        return netloc.lower(), None
    return host, int(port) if port.isdigit() else -1


def same_origin(scope: Scope, headers: dict[str, str]) -> bool:
    """Whether the browser says the request came from a page of this gateway. ``Origin``, else
    ``Referer``; a request with neither (some privacy tools strip both) is left to the token."""
    claimed = headers.get("origin") or headers.get("referer")
    if not claimed:
        return True
    if claimed == "null":  # a sandboxed frame, a data: URL, a redirect across sites
        return False
    parts = urlsplit(claimed)
    if not parts.netloc:
        return False
    ours = (headers.get("x-forwarded-host") or headers.get("host") or "").split(",")[0].strip()
    if not ours:
        return False
    their_host, their_port = _host_port(parts.netloc)
    our_host, our_port = _host_port(ours)
    if their_host != our_host:
        return False
    if our_port is None:  # the Host header names no port: the host is what can be compared
        return True
    default = {"http": 80, "https": 443}.get(parts.scheme)
    return (their_port if their_port is not None else default) == our_port


class Sessions:
    def __init__(self, master_key: bytes | None, *, clock: Callable[[], float] = time.time, idle: float = IDLE,
                 lifetime: float = LIFETIME, limit: int = LIMIT) -> None:
        self.master_key = master_key
        self.clock = clock
        self.idle, self.lifetime, self.limit = idle, lifetime, limit
        self._sessions: dict[str, Session] = {}

    @property
    def open_access(self) -> bool:
        """No master key: the dashboard and its API are open to anyone who can reach them."""
        return self.master_key is None

    def key_ok(self, key: str) -> bool:
        return self.master_key is not None and hmac.compare_digest(key.encode(), self.master_key)

    def open(self, *, signed_in: bool = True) -> Session:
        now = self.clock()
        self._sweep(now)
        while len(self._sessions) >= self.limit:
            del self._sessions[next(iter(self._sessions))]  # the oldest
        session = Session(secrets.token_urlsafe(32), secrets.token_urlsafe(32), now, now, signed_in)
        self._sessions[session.id] = session
        return session

    def close(self, session: Session) -> None:
        self._sessions.pop(session.id, None)

    def get(self, headers: dict[str, str]) -> Session | None:
        """The session the request's cookie names, if it is valid (and now used: its idle time restarts)."""
        for part in headers.get("cookie", "").split(";"):
            name, _, value = part.strip().partition("=")
            if name != COOKIE or not value:
                continue
            session = self._sessions.get(value)
            if session is None:
                continue
            now = self.clock()
            if now - session.seen > self.idle or now - session.created > self.lifetime:
                del self._sessions[session.id]
                continue
            session.seen = now
            return session
        return None

    def _sweep(self, now: float) -> None:
        expired = [s.id for s in self._sessions.values()
                   if now - s.seen > self.idle or now - s.created > self.lifetime]
        for sid in expired:
            del self._sessions[sid]

    @staticmethod
    def token_ok(session: Session, token: str | None) -> bool:
        return token is not None and hmac.compare_digest(token.encode(), session.csrf.encode())

    def allows(self, session: Session | None, scope: Scope, headers: dict[str, str], token: str | None) -> bool:
        """Whether ``session`` may make this state-changing request: its token, from this gateway."""
        return session is not None and self.token_ok(session, token) and same_origin(scope, headers)

    def cookie(self, session: Session, secure: bool) -> tuple[bytes, bytes]:
        """The ``Set-Cookie`` header for ``session``."""
        max_age = int(self.lifetime)
        value = f"{COOKIE}={session.id}; Path=/; Max-Age={max_age}; HttpOnly; SameSite=Strict"
        return b"set-cookie", (value + ("; Secure" if secure else "")).encode()

    @staticmethod
    def clearing(secure: bool) -> tuple[bytes, bytes]:
        value = f"{COOKIE}=; Path=/; Max-Age=0; HttpOnly; SameSite=Strict"
        return b"set-cookie", (value + ("; Secure" if secure else "")).encode()
