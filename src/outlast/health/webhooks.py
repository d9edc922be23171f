"""Webhooks on incident open, update and resolve: JSON (Statuspage's webhook shape) or
Slack-compatible (``{"text": ...}``), delivered in the background and retried with backoff."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Any

from outlast.health.incidents import CAUSES, Incident, Update, clock_text

log = logging.getLogger("outlast.health.webhooks")


@dataclass(frozen=True, slots=True)
class Hook:
    url: str
    format: str = "json"  # json | slack


def event_name(incident: Incident, update: Update) -> str:
    if len(incident.updates) == 1:
        return "incident.opened"
    return "incident.resolved" if update.status == "resolved" else "incident.updated"


def payload(hook: Hook, incident: Incident, update: Update, page: dict[str, Any]) -> dict[str, Any]:
    from outlast.web.statuspage import incident_document

    if hook.format == "slack":
        icon = {"investigating": ":rotating_light:", "identified": ":mag:", "monitoring": ":eyes:",
                "resolved": ":white_check_mark:"}.get(update.status, ":information_source:")
        return {"text": f"{icon} *{incident.title}* is {update.status} ({CAUSES.get(incident.cause, incident.cause)})"
                        f"\n{update.body}\n_{clock_text(update.at)}_"}
    return {"meta": {"event": event_name(incident, update), "generated_at": clock_text(update.at)},
            "page": {"id": page.get("id"), "status_indicator": page.get("indicator"),
                     "status_description": page.get("description")},
            "incident": incident_document(incident)}


Post = Callable[[str, dict[str, Any]], Awaitable[int]]


class Webhooks:
    """A queue and one worker; ``attempts`` tries per delivery, waiting ``backoff`` x 2^n between."""

    def __init__(self, hooks: Sequence[Hook], *, attempts: int = 5, backoff: float = 1.0,
                 post: Post | None = None, sleep: Callable[[float], Awaitable[Any]] = asyncio.sleep) -> None:
        self.hooks = list(hooks)
        self.attempts = attempts
        self.backoff = backoff
        self.sleep = sleep
        self._post = post
        self._session: Any = None
        self.queue: asyncio.Queue[tuple[Hook, dict[str, Any]]] = asyncio.Queue()
        self.delivered = 0
        self.dropped = 0

    def enqueue(self, incident: Incident, update: Update, page: dict[str, Any]) -> None:
        for hook in self.hooks:
            self.queue.put_nowait((hook, payload(hook, incident, update, page)))

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
