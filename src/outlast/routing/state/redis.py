"""Health state shared by replicas through Redis.

The hot path never touches Redis: every question is answered from the in-memory state
this class inherits. What one replica learns (a counted failure, a breaker that opened or
closed, a rate-limit wait, a latency estimate, a refused prefill) goes into a bounded
outbox that a background task publishes on one pub/sub channel; another background task
applies what the other replicas publish. Open breakers are also kept in a hash with
wall-clock expiry, so a replica that starts (or reconnects) late learns them at once.

If Redis becomes unreachable, both tasks keep retrying with backoff while this replica
serves from its own state; nothing on the request path waits for them.

``state: redis://host:6379/0?channel=outlast-health`` names the channel (and the hash,
``<channel>:open``); the default is ``outlast:health``.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import time
from collections import deque
from collections.abc import Callable
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

import orjson

from outlast.providers.errors import FailureKind, TimeoutPhase
from outlast.routing.breaker import BreakerPolicy, BreakerState
from outlast.routing.plan import Target
from outlast.routing.state.memory import MemoryHealth

log = logging.getLogger("outlast.health")

OUTBOX_LIMIT = 10_000
RECONNECT_MIN, RECONNECT_MAX = 0.2, 2.0
CLOSE_SECONDS = 2.0  # closing a connection to a Redis that is gone


def split_url(url: str) -> tuple[str, str]:
    """(the URL for redis-py, the channel named by ``?channel=``)."""
    parts = urlsplit(url)
    query = parse_qsl(parts.query, keep_blank_values=True)
    channel = next((v for k, v in query if k == "channel"), "outlast:health")
    rest = urlencode([(k, v) for k, v in query if k != "channel"])
    return urlunsplit(parts._replace(query=rest)), channel


class RedisHealth(MemoryHealth):
    def __init__(self, url: str, policy: BreakerPolicy | None = None, *, auth_cooldown: float = 60.0,
                 clock: Callable[[], float] = time.monotonic, wall: Callable[[], float] = time.time) -> None:
        super().__init__(policy, auth_cooldown=auth_cooldown, clock=clock)
        self.url, self.channel = split_url(url)
        self.open_key = f"{self.channel}:open"
        self.replica = os.urandom(6).hex()
        self.wall = wall
        self._outbox: deque[dict[str, Any]] = deque(maxlen=OUTBOX_LIMIT)
        self._wake = asyncio.Event()
        self._tasks: list[asyncio.Task[None]] = []
        self.connected = False  # both directions working, as far as we know
        self.received = 0  # messages applied from other replicas

    # ------------------------------------------------------------------ hooks: queue, never wait

    def _send(self, message: dict[str, Any]) -> None:
        message["r"] = self.replica
        self._outbox.append(message)
        self._wake.set()

    def _failure(self, target: Target, kind: FailureKind, now: float, retry_after: float | None,
                 phase: TimeoutPhase | None, opened: bool, provider_opened: bool) -> None:
        health = self._targets[target]
        message: dict[str, Any] = {"e": "fail", "p": target.provider, "m": target.model, "k": kind.value}
        if phase is not None:
            message["ph"] = phase.value
        if health.not_before > now:
            message["nb"] = health.not_before - now
        if health.breaker.state is BreakerState.OPEN:
            message["o"] = health.breaker.remaining(now)
        provider = self._providers.get(target.provider)
        if provider is not None and provider.state is BreakerState.OPEN:
            message["po"] = provider.remaining(now)
        self._send(message)

    def _closed(self, target: Target, provider: bool) -> None:
        self._send({"e": "close", "p": target.provider, "m": target.model, "pc": provider})

    def _latency_changed(self, target: Target, p99: float) -> None:
        self._send({"e": "lat", "p": target.provider, "m": target.model, "v": p99})

    def _learned(self, target: Target, prefill: bool) -> None:
        self._send({"e": "prefill", "p": target.provider, "m": target.model, "v": prefill})

    # ------------------------------------------------------------------ applying other replicas' news

    def apply(self, message: dict[str, Any]) -> None:
        if message.get("r") == self.replica:
            return
        now = self.clock()
        target = Target(str(message["p"]), str(message["m"]))
        event = message.get("e")
        health = self._target(target)
        if event == "fail":
            FailureKind(message["k"])  # a kind this version knows, or ValueError
            breaker = health.breaker
            breaker.consecutive += 1
            breaker.last_failure = now
            if "nb" in message:
                health.not_before = max(health.not_before, now + float(message["nb"]))
            if "o" in message:
                breaker.open_for(now, float(message["o"]))
            elif breaker.state is BreakerState.CLOSED and breaker.consecutive >= breaker.policy.consecutive:
                breaker.open_for(now, breaker.cooldown)
            if "po" in message:
                self._provider(target.provider).open_for(now, float(message["po"]))
        elif event == "close":
            health.breaker.close()
            if message.get("pc"):
                self._provider(target.provider).close()
        elif event == "lat":
            health.latency.merge(float(message["v"]))
        elif event == "prefill":
            health.prefill = bool(message["v"])
        self.received += 1

    # ------------------------------------------------------------------ background sync

    async def start(self) -> None:
        if not self._tasks:
            self._tasks = [asyncio.create_task(self._publisher(), name="outlast-health-publish"),
                           asyncio.create_task(self._subscriber(), name="outlast-health-subscribe")]

    async def aclose(self) -> None:
        for task in self._tasks:
            task.cancel()
        if self._tasks:
            # Bounded: closing a connection to a Redis that went half-open can wait on a socket forever.
            _, stuck = await asyncio.wait(self._tasks, timeout=CLOSE_SECONDS)
            if stuck:
                log.warning("health state: %d Redis task(s) did not stop within %.0f s; left behind",
                            len(stuck), CLOSE_SECONDS)
        self._tasks = []

    def _client(self) -> Any:
        import redis.asyncio as aioredis

        return aioredis.Redis.from_url(self.url, socket_timeout=1.0, socket_connect_timeout=1.0,
                                       retry_on_timeout=False)

    async def _publisher(self) -> None:
        delay = RECONNECT_MIN
        while True:
            client = self._client()
            try:
                while True:
                    while not self.connected:  # the subscriber says when Redis is back
                        self._wake.clear()
                        await self._wake.wait()
                    while self._outbox:
                        message = self._outbox[0]
                        await client.publish(self.channel, orjson.dumps(message))
                        if "o" in message or "po" in message:
                            await self._remember_open(client, message)
                        self._outbox.popleft()
                    delay = RECONNECT_MIN
                    self._wake.clear()
                    await self._wake.wait()
            except asyncio.CancelledError:
                raise
            except Exception as error:  # Redis down or unreachable: keep serving, retry later
                log.warning("health state: publishing to Redis failed (%s); retrying in %.1f s", error, delay)
            finally:
                await _quietly(client.aclose())
            await asyncio.sleep(delay)
            delay = min(RECONNECT_MAX, delay * 2)

    async def _remember_open(self, client: Any, message: dict[str, Any]) -> None:
        wall = self.wall()
        fields = {}
        if "o" in message:
            fields[f"{message['p']}/{message['m']}"] = wall + float(message["o"])
        if "po" in message:
            fields[f"{message['p']}/*"] = wall + float(message["po"])
        await client.hset(self.open_key, mapping=fields)
        await client.expire(self.open_key, int(self.policy.max_cooldown + 60))

    async def _load_open(self, client: Any) -> None:
        now, wall = self.clock(), self.wall()
        stored = await client.hgetall(self.open_key)
        for raw_key, raw_until in stored.items():
            remaining = float(raw_until) - wall
            if remaining <= 0:
                continue
            provider, _, model = raw_key.decode().partition("/")
            if model == "*":
                self._provider(provider).open_for(now, remaining)
            else:
                self._target(Target(provider, model)).breaker.open_for(now, remaining)

    async def _subscriber(self) -> None:
        delay = RECONNECT_MIN
        while True:
            client = self._client()
            pubsub = client.pubsub()
            try:
                await pubsub.subscribe(self.channel)
                await self._load_open(client)
                self.connected = True
                delay = RECONNECT_MIN
                self._wake.set()
                log.info("health state: sharing through Redis channel %s", self.channel)
                while True:
                    message = await pubsub.get_message(ignore_subscribe_messages=True, timeout=1.0)
                    if message is None:
                        await pubsub.ping()  # notices a dead connection within a second or two
                        continue
                    if message.get("type") == "message":
                        try:
                            self.apply(orjson.loads(message["data"]))
                        except (ValueError, KeyError, TypeError):
                            log.warning("health state: ignoring a malformed message on %s", self.channel)
            except asyncio.CancelledError:
                raise
            except Exception as error:
                if self.connected:
                    log.warning("health state: lost Redis (%s); using local state until it is back", error)
                self.connected = False
            finally:
                await _quietly(pubsub.aclose())
                await _quietly(client.aclose())
            await asyncio.sleep(delay)
            delay = min(RECONNECT_MAX, delay * 2)

    def snapshot(self, now: float) -> dict[str, Any]:
        result = super().snapshot(now)
        result["shared"] = {"backend": "redis", "channel": self.channel, "connected": self.connected,
                            "received": self.received, "queued": len(self._outbox)}
        return result


async def _quietly(closing: Any) -> None:
    """Close a Redis client or pub/sub without letting a dead connection hang or fail the caller."""
    with contextlib.suppress(Exception):
        await asyncio.wait_for(closing, CLOSE_SECONDS)
