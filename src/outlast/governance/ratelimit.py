"""Per-key rate limits (requests per minute): in process, or in Redis so replicas share them.

Both count requests in the current minute window and answer how long to wait when a key is
over its limit. Redis: one pipelined ``INCR`` + ``EXPIRE`` per request on a key named by the
virtual key's id and the minute.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import Any, Protocol

log = logging.getLogger("outlast.governance")


class RateLimiter(Protocol):
    async def hit(self, key_id: str, rpm: int) -> float | None:
        """Count one request; ``None`` if allowed, else seconds until the key may try again."""
        ...

    async def aclose(self) -> None: ...


class MemoryLimiter:
    def __init__(self, clock: Callable[[], float] = time.time) -> None:
        self.clock = clock
        self.windows: dict[str, tuple[int, int]] = {}

    async def hit(self, key_id: str, rpm: int) -> float | None:
        now = self.clock()
        minute = int(now // 60)
        window, count = self.windows.get(key_id, (minute, 0))
        if window != minute:
            count = 0
        count += 1
        self.windows[key_id] = (minute, count)
        if count > rpm:
            return (minute + 1) * 60 - now
        return None

    async def aclose(self) -> None:
        return None


class RedisLimiter:
    def __init__(self, url: str, clock: Callable[[], float] = time.time) -> None:
        import redis.asyncio as redis

        from outlast.routing.state.redis import split_url

        # ``?channel=`` names the health channel; redis-py would refuse it on every connection
        # (and every request would then be counted in process only).
        self.client: Any = redis.from_url(split_url(url)[0], socket_timeout=1.0, socket_connect_timeout=1.0)
        self.clock = clock
        self.fallback = MemoryLimiter(clock)

    async def hit(self, key_id: str, rpm: int) -> float | None:
        now = self.clock()
        minute = int(now // 60)
        name = f"outlast:ratelimit:{key_id}:{minute}"
        try:
            async with self.client.pipeline(transaction=False) as pipe:
                pipe.incr(name)
                pipe.expire(name, 120)
                count, _ = await pipe.execute()
        except Exception as error:  # Redis away: limit this replica on its own rather than not at all
            log.warning("rate limits: Redis unavailable (%s); counting in process", type(error).__name__)
            return await self.fallback.hit(key_id, rpm)
        if int(count) > rpm:
            return (minute + 1) * 60 - now
        return None

    async def aclose(self) -> None:
        await self.client.aclose()


def limiter_for(state: str) -> RateLimiter:
    return RedisLimiter(state) if state.startswith(("redis://", "rediss://", "unix://")) else MemoryLimiter()
