"""Health state: breakers, recent outcomes, latency estimates and learned capabilities of
every target, behind one interface (:class:`HealthState`) with two implementations:

- :class:`MemoryHealth` (default): in this process only.
- :class:`RedisHealth` (``state: redis://...``): the same state, kept in memory for the hot
  path and shared with the other replicas through Redis pub/sub in the background.

``build_health(url, ...)`` picks one from the configuration's ``state`` value.
"""

from __future__ import annotations

from collections.abc import Callable

from outlast.routing.breaker import BreakerPolicy
from outlast.routing.state.base import HealthState
from outlast.routing.state.memory import MemoryHealth

__all__ = ["HealthState", "MemoryHealth", "build_health"]


def build_health(url: str, policy: BreakerPolicy | None = None, *, auth_cooldown: float = 60.0,
                 clock: Callable[[], float] | None = None) -> HealthState:
    kwargs = {"policy": policy or BreakerPolicy(), "auth_cooldown": auth_cooldown}
    if clock is not None:
        kwargs["clock"] = clock
    if url in ("", "memory"):
        return MemoryHealth(**kwargs)  # type: ignore[arg-type]
    if url.startswith(("redis://", "rediss://", "unix://")):
        from outlast.routing.state.redis import RedisHealth

        return RedisHealth(url, **kwargs)  # type: ignore[arg-type]
    raise ValueError(f"state: expected 'memory' or a redis:// URL, got {url!r}")
