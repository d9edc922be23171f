"""Vendors' own status pages: Atlassian Statuspage v2 JSON (summary, incidents, status, a webhook
payload) and Atom/RSS incident history (read with feedparser), polled in the background.

A reader takes what is there and requires nothing optional: incident.io's Statuspage-compatible
summary has no ``incidents``, no ``scheduled_maintenances`` and no ``group``. A feed that cannot be
fetched or read is recorded as a signal (``down`` or ``malformed``, with why), never raised.

Which of a vendor's incidents concern a provider: a vendor's page covers more than its API
(claude.ai, a console, a coding tool), so an incident counts only when it names one of the
components that stand for the provider (:meth:`FeedState.watched`); an incident that names no
component at all (an Atom history, a page-wide incident) counts, since nothing says otherwise.
"""

from __future__ import annotations

import asyncio
import logging
import re
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import orjson

log = logging.getLogger("outlast.health.feeds")

INCIDENT_STATUSES = ("investigating", "identified", "monitoring", "resolved", "postmortem")
_STRONG = re.compile(r"<strong>\s*([A-Za-z ]+?)\s*</strong>\s*-?\s*(.*?)</p>", re.S)
_TAGS = re.compile(r"<[^>]+>")
_API = re.compile(r"\bAPIs?\b")  # the word that marks a page's API components, when none are configured


class FeedError(ValueError):
    """The document is not a status page this reader understands."""


def parse_time(value: Any) -> float | None:
    """Epoch seconds from an ISO 8601 time (``Z`` or an offset), or None."""
    if not value or not isinstance(value, str):
        return None
    try:
        return datetime.fromisoformat(value.replace("Z", "+00:00")).timestamp()
    except ValueError:
        return None


@dataclass(frozen=True, slots=True)
class VendorUpdate:
    status: str
    body: str
    at: float | None


@dataclass(frozen=True, slots=True)
class VendorIncident:
    id: str
    name: str
    status: str
    impact: str | None
    created_at: float | None
    updated_at: float | None
    resolved_at: float | None = None
    url: str | None = None
    components: tuple[str, ...] = ()  # names, as its ``components`` list gives them
    # (id, name) of every component it names: its ``components`` and its updates' ``affected_components``
    # (which may use a shorter name, "Claude API" for "Claude API (api.anthropic.com)", but the same id).
    affected: tuple[tuple[str, str], ...] = ()
    updates: tuple[VendorUpdate, ...] = ()  # newest first, as the vendors list them

    @property
    def resolved(self) -> bool:
        return self.status in ("resolved", "postmortem")

    @property
    def acknowledged_at(self) -> float | None:
        """When the vendor first said so: its earliest update, else the incident's creation."""
        times = [u.at for u in self.updates if u.at is not None]
        if times:
            return min(times)
        return self.created_at


@dataclass(frozen=True, slots=True)
class VendorStatus:
    page: str | None = None
    indicator: str | None = None  # none | minor | major | critical | maintenance
    description: str | None = None
    components: Mapping[str, str] = field(default_factory=dict)  # name -> status
    incidents: tuple[VendorIncident, ...] = ()
    component_ids: Mapping[str, str] = field(default_factory=dict)  # name -> id, where the page gives one


def _incident(doc: Mapping[str, Any]) -> VendorIncident:
    if not isinstance(doc, Mapping) or "id" not in doc or "status" not in doc:
        raise FeedError("an incident needs at least an id and a status")
    updates = []
    affected: dict[tuple[str, str], None] = {}  # ordered, without repeats
    listed = [c for c in doc.get("components") or [] if isinstance(c, Mapping)]
    for c in listed:
        affected[(str(c.get("id") or ""), str(c.get("name") or ""))] = None
    for u in doc.get("incident_updates") or []:
        if isinstance(u, Mapping):
            updates.append(VendorUpdate(str(u.get("status", "")), str(u.get("body") or ""),
                                        parse_time(u.get("created_at") or u.get("display_at"))))
            for c in u.get("affected_components") or []:
                if isinstance(c, Mapping):
                    affected[(str(c.get("code") or c.get("id") or ""), str(c.get("name") or ""))] = None
    return VendorIncident(
        id=str(doc["id"]), name=str(doc.get("name") or ""), status=str(doc["status"]),
        impact=doc.get("impact"), created_at=parse_time(doc.get("created_at") or doc.get("started_at")),
        updated_at=parse_time(doc.get("updated_at")), resolved_at=parse_time(doc.get("resolved_at")),
        url=doc.get("shortlink"), components=tuple(str(c.get("name", "")) for c in listed),
        affected=tuple(k for k in affected if k != ("", "")), updates=tuple(updates))


def parse_statuspage(document: Any) -> VendorStatus:
    """A Statuspage v2 document: summary, status, components, incidents (or unresolved), or a
    webhook payload. Raises :class:`FeedError` when it is none of these."""
    if not isinstance(document, Mapping):
        raise FeedError(f"expected a JSON object, got {type(document).__name__}")
    page = document.get("page")
    if not isinstance(page, Mapping) and "incident" not in document:
        raise FeedError("no 'page' object: not a Statuspage v2 document")
    status = document.get("status")
    indicator = description = None
    if isinstance(status, Mapping):
        indicator, description = status.get("indicator"), status.get("description")
    elif isinstance(page, Mapping) and "status_indicator" in page:  # webhook payloads
        indicator, description = page.get("status_indicator"), page.get("status_description")
    components: dict[str, str] = {}
    ids: dict[str, str] = {}
    for c in document.get("components") or []:
        if isinstance(c, Mapping) and "name" in c and "status" in c and not c.get("group"):
            components[str(c["name"])] = str(c["status"])
            if c.get("id"):
                ids[str(c["name"])] = str(c["id"])
    raw = list(document.get("incidents") or [])
    if isinstance(document.get("incident"), Mapping):
        raw.append(document["incident"])
    incidents = tuple(_incident(i) for i in raw)
    if indicator is None and not components and not incidents and "incidents" not in document:
        raise FeedError("neither a status, components nor incidents")
    return VendorStatus(page=str(page.get("name")) if isinstance(page, Mapping) and page.get("name") else None,
                        indicator=indicator, description=description, components=components, incidents=incidents,
                        component_ids=ids)


def _atom_updates(html: str, updated: float | None) -> tuple[VendorUpdate, ...]:
    """Statuspage's history content: one ``<p>`` per update, newest first, each with a ``<strong>``
    status word and a date without a year. Only the newest has a trustworthy time: ``<updated>``."""
    out = []
    for i, match in enumerate(_STRONG.finditer(html)):
        body = _TAGS.sub("", match.group(2)).strip()
        out.append(VendorUpdate(match.group(1).strip().lower(), body, updated if i == 0 else None))
    return tuple(out)


def parse_atom(text: str | bytes) -> VendorStatus:
    """An Atom or RSS incident history: one entry per incident, revised in place."""
    import feedparser

    parsed = feedparser.parse(text)
    if parsed.get("bozo") and not parsed.entries:
        raise FeedError(f"not a readable feed: {parsed.get('bozo_exception')!r}")
    if not parsed.get("feed") and not parsed.entries:
        raise FeedError("not an Atom or RSS feed")
    incidents = []
    for entry in parsed.entries:
        published = _struct(entry.get("published_parsed"))
        updated = _struct(entry.get("updated_parsed")) or published
        html = ""
        if entry.get("content"):
            html = entry["content"][0].get("value", "")
        elif entry.get("summary"):
            html = entry["summary"]
        updates = _atom_updates(html, updated)
        status = updates[0].status if updates else "investigating"
        if status not in INCIDENT_STATUSES:
            status = "investigating"
        # The oldest update's time is not given with a year; the entry's publication is that time.
        if updates and published is not None:
            updates = (*updates[:-1], VendorUpdate(updates[-1].status, updates[-1].body, published)) \
                if len(updates) > 1 else (VendorUpdate(updates[0].status, updates[0].body, published),)
        incidents.append(VendorIncident(
            id=str(entry.get("id") or entry.get("link") or entry.get("title")), name=str(entry.get("title") or ""),
            status=status, impact=None, created_at=published, updated_at=updated,
            resolved_at=updated if status in ("resolved", "postmortem") else None, url=entry.get("link"),
            updates=updates))
    title = parsed.feed.get("title") if parsed.get("feed") else None
    return VendorStatus(page=title, incidents=tuple(incidents))


def _struct(value: Any) -> float | None:
    if value is None:
        return None
    import calendar

    return float(calendar.timegm(value))


def parse_feed(body: bytes, content_type: str = "", url: str = "") -> VendorStatus:
    """JSON or XML, by content type, then by the URL, then by the first byte."""
    text = body.lstrip()
    xml = "xml" in content_type or "atom" in content_type or "rss" in content_type \
        or url.endswith((".atom", ".rss", ".xml")) or text[:1] == b"<"
    if xml:
        return parse_atom(body)
    try:
        document = orjson.loads(body)
    except orjson.JSONDecodeError as error:
        raise FeedError(f"not valid JSON: {error}") from None
    return parse_statuspage(document)


def _same(entry: str, cid: str, name: str) -> bool:
    """A configured or listed component ``entry`` (an id or a name) is the component (``cid``, ``name``):
    the same id, the same name, or ``name`` is ``entry`` with more after a space (incident updates
    call "Claude API (api.anthropic.com)" "Claude API"; so may a configuration)."""
    if not entry:
        return False
    if entry == cid:
        return True
    e, n = entry.strip().casefold(), name.strip().casefold()
    return bool(e and n) and (e == n or n.startswith(e + " "))


@dataclass(slots=True)
class FeedState:
    """One provider's feed as last polled. ``state``: ``unknown`` (not polled yet), ``ok``,
    ``down`` (no answer, or an HTTP error) or ``malformed`` (an answer that is not a status page).
    ``components``: the vendor's components that stand for this provider (``status_components`` in
    its configuration, names or ids); empty: the page's components whose name has the word API."""

    provider: str
    url: str
    state: str = "unknown"
    error: str | None = None
    checked: float | None = None
    since: float | None = None  # when ``state`` began
    status: VendorStatus | None = None
    first_seen: dict[str, float] = field(default_factory=dict)  # vendor incident id -> when outlast saw it
    components: tuple[str, ...] = ()
    read_at: float | None = None  # the last time the feed was read (``status`` is from then)

    def record(self, now: float, state: str, error: str | None = None, status: VendorStatus | None = None) -> None:
        if state != self.state:
            self.since = now
        self.state, self.error, self.checked = state, error, now
        if status is not None:
            self.status = status
            self.read_at = now
            for incident in status.incidents:
                self.first_seen.setdefault(incident.id, now)

    def open_incidents(self) -> list[VendorIncident]:
        return [i for i in self.status.incidents if not i.resolved] if self.status else []

    def watched(self) -> list[tuple[str, str]] | None:
        """(id, name) of the vendor's components that stand for this provider: the configured ones
        (as the page names them, when it lists them), else the page's components whose name has the
        word API. None when neither gives any: then every component counts."""
        page = self.status.components if self.status is not None else {}
        ids = self.status.component_ids if self.status is not None else {}
        if self.components:
            out = []
            for entry in self.components:
                found = [(ids.get(name, ""), name) for name in page if _same(entry, ids.get(name, ""), name)]
                out += found or [(entry, entry)]  # not on the page (yet): matched by what was configured
            return out
        out = [(ids.get(name, ""), name) for name in page if _API.search(name)]
        return out or None

    def concerns(self, incident: VendorIncident) -> bool:
        """Whether the vendor's ``incident`` is about this provider (see the module's docstring)."""
        if not incident.affected:
            return True  # the feed names no components: any incident of this vendor
        watched = self.watched()
        if watched is None:
            return True
        return any(_same(cid, wid, wname) or _same(name, wid, wname)
                   for cid, name in incident.affected for wid, wname in watched)

    def concerning(self) -> list[VendorIncident]:
        """The vendor's incidents (open or not) that concern this provider, as last read."""
        return [i for i in self.status.incidents if self.concerns(i)] if self.status else []

    def describe(self) -> dict[str, Any]:
        status = self.status
        return {"provider": self.provider, "url": self.url, "state": self.state, "error": self.error,
                "checked": self.checked, "since": self.since,
                "indicator": status.indicator if status else None,
                "description": status.description if status else None,
                "incidents": [{"id": i.id, "name": i.name, "status": i.status, "created_at": i.created_at,
                               "acknowledged_at": i.acknowledged_at, "concerns": self.concerns(i)}
                              for i in (status.incidents if status else ())]}


class FeedPoller:
    """Polls each provider's ``status_feed`` every ``interval`` seconds with aiohttp. ``components``:
    per provider, the vendor's components that stand for it (``status_components``)."""

    def __init__(self, feeds: Mapping[str, str], *, components: Mapping[str, Sequence[str]] | None = None,
                 interval: float = 60.0, timeout: float = 10.0, clock: Callable[[], float] = time.time) -> None:
        components = components or {}
        self.states = {provider: FeedState(provider, url, components=tuple(components.get(provider, ())))
                       for provider, url in feeds.items()}
        self.interval = interval
        self.timeout = timeout
        self.clock = clock
        self._session: Any = None

    async def _fetch(self, url: str) -> tuple[int, str, bytes]:
        import aiohttp

        if self._session is None:
            self._session = aiohttp.ClientSession(
                timeout=aiohttp.ClientTimeout(total=self.timeout),
                headers={"accept": "application/json, application/atom+xml;q=0.9, */*;q=0.5",
                         "user-agent": "outlast-health"})
        async with self._session.get(url) as response:
            return response.status, response.headers.get("content-type", ""), await response.read()

    async def poll_one(self, state: FeedState) -> FeedState:
        now = self.clock()
        try:
            status, content_type, body = await self._fetch(state.url)
        except Exception as error:  # any failure to fetch is the signal, not a crash
            state.record(now, "down", f"{type(error).__name__}: {error}".rstrip(": "))
            return state
        if status >= 400:
            state.record(now, "down", f"HTTP {status}")
            return state
        try:
            parsed = parse_feed(body, content_type, state.url)
        except (FeedError, ValueError) as error:
            state.record(now, "malformed", str(error)[:300])
            return state
        state.record(now, "ok", None, parsed)
        return state

    async def poll(self) -> list[FeedState]:
        return list(await asyncio.gather(*(self.poll_one(s) for s in self.states.values())))

    async def run(self) -> None:
        while True:
            try:
                await self.poll()
            except Exception:  # pragma: no cover - poll_one already catches everything it expects
                log.exception("status feed poll failed")
            await asyncio.sleep(self.interval)

    async def aclose(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None
