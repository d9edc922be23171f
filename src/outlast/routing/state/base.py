"""The health-state interface the router speaks. Every method is synchronous and O(1):
the router calls them on the hot path, so an implementation never waits on the network
here (a shared implementation syncs in the background)."""

from __future__ import annotations

from typing import Any, Protocol

from outlast.providers.errors import FailureKind, TimeoutPhase
from outlast.routing.plan import Target


class HealthState(Protocol):
    def ready(self, target: Target, now: float) -> bool:
        """May a request go to ``target`` now? (breakers closed or admitting a trial, no
        rate-limit wait pending). Open targets are skipped without spending a request."""

    def succeeded(self, target: Target, now: float, first_token: float | None) -> None: ...

    def failed(self, target: Target, kind: FailureKind, now: float, *, retry_after: float | None = None,
               phase: TimeoutPhase | None = None) -> None: ...

    def consecutive_failures(self, target: Target) -> int: ...

    def last_failure(self, target: Target) -> float:
        """When ``target`` last failed (-inf if never): the least recently failed is tried
        when every candidate is open."""

    def wait(self, target: Target, now: float) -> float:
        """Seconds until ``target`` may be tried again (0 when it may be tried now)."""

    def first_token_deadline(self, target: Target, floor: float, ceiling: float, multiplier: float) -> float: ...

    def prefill(self, target: Target) -> bool | None:
        """What was learned about assistant prefill at ``target`` (None: nothing yet)."""

    def learn_prefill(self, target: Target, supported: bool) -> None: ...

    def snapshot(self, now: float) -> dict[str, Any]: ...

    def reset(self) -> None: ...

    async def start(self) -> None: ...

    async def aclose(self) -> None: ...
