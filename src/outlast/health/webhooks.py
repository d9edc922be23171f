"""Webhooks on incident open, update and resolve: JSON (Statuspage's webhook shape) or
Slack-compatible (``{"text": ...}``), delivered in the background and retried with backoff.

The JSON payload follows a Statuspage ``incident.created`` webhook (``shared/fixtures/status/``):
ISO 8601 times, the affected components with their old and new status, and an absolute
``shortlink`` built from ``base_url`` (where outlast is reached), when one is known."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from outlast.health.incidents import CAUSES, Incident, Update, clock_text, stamp

log = logging.getLogger("outlast.health.webhooks")


@dataclass(frozen=True, slots=True)
class Hook:
    url: str
    format: str = "json"  # json | slack


def event_name(incident: Incident, update: Update) -> str:
    if len(incident.updates) == 1:
        return "incident.opened"
    return "incident.resolved" if update.status == "resolved" else "incident.updated"


def payload(hook: Hook, incident: Incident, update: Update, page: dict[str, Any], *, base_url: str = "",
            states: Sequence[tuple[str, str]] = (), told: Mapping[str, str] | None = None) -> dict[str, Any]:
    """What ``hook`` is sent for ``update``. ``states`` is every component's (name, status) now;
    ``told`` what this incident's components were last reported as (nothing yet: operational)."""
    from outlast.web.statuspage import webhook_incident

    if hook.format == "slack":
        icon = {"investigating": ":rotating_light:", "identified": ":mag:", "monitoring": ":eyes:",
                "resolved": ":white_check_mark:"}.get(update.status, ":information_source:")
        return {"text": f"{icon} *{incident.title}* is {update.status} ({CAUSES.get(incident.cause, incident.cause)})"
                        f"\n{update.body}\n_{clock_text(update.at)}_"}
    return {"meta": {"event": event_name(incident, update), "generated_at": stamp(update.at)},
            "page": {"id": page.get("id"), "status_indicator": page.get("indicator"),
                     "status_description": page.get("description")},
            "incident": webhook_incident(incident, str(page.get("id") or ""), states, base_url, told or {})}


Post = Callable[[str, dict[str, Any]], Awaitable[int]]


class Webhooks:
    """A queue and one worker; ``attempts`` tries per delivery, waiting ``backoff`` x 2^n between."""

    def __init__(self, hooks: Sequence[Hook], *, attempts: int = 5, backoff: float = 1.0,
                 post: Post | None = None, sleep: Callable[[float], Awaitable[Any]] = asyncio.sleep,
                 base_url: str | None = None) -> None:
        self.hooks = list(hooks)
        # Where receivers reach outlast (for the absolute shortlink): set by whoever knows it,
        # the configuration or the server that serves the gateway.
        self.base_url = base_url
        self._told: dict[str, dict[str, str]] = {}  # incident id -> component -> status last sent
        self.attempts = attempts
        self.backoff = backoff
        self.sleep = sleep
        self._post = post
        self._session: Any = None
        self.queue: asyncio.Queue[tuple[Hook, dict[str, Any]]] = asyncio.Queue()
        self.delivered = 0
        self.dropped = 0

    def enqueue(self, incident: Incident, update: Update, page: dict[str, Any],
                states: Sequence[tuple[str, str]] = ()) -> None:
        """Queue ``update`` for every hook; ``states`` is every component's (name, status) now, in page order."""
        told = self._told.setdefault(incident.id, {})
        base = (self.base_url or "").rstrip("/")
        bodies = [(hook, payload(hook, incident, update, page, base_url=base, states=states, told=told))
                  for hook in self.hooks]
        now = dict(states)
        for name in incident.components:
            told[name] = "operational" if incident.resolved else now.get(name, "operational")
        if incident.resolved:
            del self._told[incident.id]
        for hook, body in bodies:
            self.queue.put_nowait((hook, body))

    async def post(self, url: str, body: dict[str, Any]) -> int:
        if self._post is not None:
            return await self._post(url, body)
        import aiohttp

        if self._session is None:
            self._session = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=10))
        async with self._session.post(url, json=body) as response:
            return response.status

    async def deliver(self, hook: Hook, body: dict[str, Any]) -> bool:
        for attempt in range(self.attempts):
            try:
                status = await self.post(hook.url, body)
                if status < 300:
                    self.delivered += 1
                    return True
                if 400 <= status < 500 and status not in (408, 429):
                    break  # the receiver refuses this payload; retrying will not change that
            except Exception as error:  # a receiver that is down is retried, never fatal
                log.info("webhook %s failed: %s", hook.url, error)
            if attempt + 1 < self.attempts:
                await self.sleep(self.backoff * 2 ** attempt)
        self.dropped += 1
        log.warning("webhook %s: giving up after %d attempts", hook.url, self.attempts)
        return False

    async def run(self) -> None:
        while True:
            hook, body = await self.queue.get()
            await self.deliver(hook, body)

    async def drain(self) -> None:
        while not self.queue.empty():
            hook, body = self.queue.get_nowait()
            await self.deliver(hook, body)

    async def aclose(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None
