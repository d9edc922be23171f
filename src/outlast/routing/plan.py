"""Route table: the model name a caller uses -> ordered candidates (provider, model) and options.

Exact names win over patterns; patterns are tried in the order they were declared.
A caller may also name a target directly as ``provider/model``. Fallbacks are data:
a :class:`Route` is its candidates, their tiers and its :class:`RouteOptions`, and
nothing here knows a wire format.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from fnmatch import fnmatchcase
from typing import Literal


@dataclass(frozen=True, slots=True)
class Target:
    provider: str
    model: str

    def __str__(self) -> str:
        return f"{self.provider}/{self.model}"


@dataclass(frozen=True, slots=True)
class Capabilities:
    """What a target can do, as configured. ``None`` means not known."""

    prefill: bool | None = None  # may a conversation end with an assistant turn to be continued?
    context_window: int | None = None  # tokens


@dataclass(frozen=True, slots=True)
class RouteOptions:
    """Per-route failover behaviour.

    ``RouteOptions()`` is the default; ``RouteOptions(hedge_after=2.0)`` starts the next
    candidate when the first has said nothing for two seconds; ``RouteOptions(retry_budget=0)``
    never retries the same target within a request.
    """

    retry_budget: int = 1  # same-target retries one request may spend (transient 5xx/reset, 429)
    max_retry_after: float = 2.0  # wait for a 429's retry-after up to this long, else fail over
    deadline: float | None = None  # seconds a request may spend before its answer begins, retries included
    first_token_floor: float = 1.0  # the adaptive first-token deadline stays within floor..ceiling
    first_token_ceiling: float | None = None  # None: the provider's own first_token timeout
    first_token_multiplier: float = 3.0  # deadline = multiplier x recent p99 first-token latency
    hedge_after: float | None = None  # opt-in: start the next candidate after this many silent seconds
    allow_downgrade: bool = True  # False: never use a candidate of a lower tier than the first
    on_content_filtered: Literal["return", "failover"] = "return"
    continue_streams: bool = True  # continue an answer that broke mid-way on the next candidate


DEFAULT_OPTIONS = RouteOptions()


@dataclass(frozen=True, slots=True)
class Route:
    name: str  # the route key that matched: an exact name, a pattern, or ``provider/*`` for a target named directly
    targets: tuple[Target, ...]
    tiers: tuple[int, ...] = ()  # one per target; higher is a lower tier; empty: all the same tier
    options: RouteOptions = DEFAULT_OPTIONS

    def tier(self, index: int) -> int:
        return self.tiers[index] if self.tiers else 0


@dataclass(frozen=True, slots=True)
class RouteSpec:
    """A route as configured: candidate strings (``provider/model``, ``{model}`` replaced by
    the name the caller used), their tiers and options."""

    candidates: tuple[str, ...]
    tiers: tuple[int, ...] = ()
    options: RouteOptions = field(default_factory=RouteOptions)


RouteEntry = Iterable[str] | RouteSpec


class RouteTable:
    def __init__(self, routes: Iterable[tuple[str, RouteEntry]], providers: Iterable[str],
                 capabilities: Mapping[Target, Capabilities] | None = None,
                 provider_capabilities: Mapping[str, Capabilities] | None = None) -> None:
        self._exact: dict[str, RouteSpec] = {}
        self._patterns: list[tuple[str, RouteSpec]] = []
        self._providers = frozenset(providers)
        self._capabilities = dict(capabilities or {})
        self._provider_capabilities = dict(provider_capabilities or {})
        for name, entry in routes:
            spec = entry if isinstance(entry, RouteSpec) else RouteSpec(tuple(entry))
            if any(c in name for c in "*?["):
                self._patterns.append((name, spec))
            else:
                self._exact[name] = spec
        self._cache: dict[str, Route | None] = {}

    def names(self) -> list[str]:
        """The exact route names, for ``GET /v1/models``."""
        return list(self._exact)

    def plan(self, model: str) -> tuple[Target, ...]:
        """Candidates for ``model``, best first; empty when nothing routes it."""
        route = self.route(model)
        return route.targets if route is not None else ()

    def route(self, model: str) -> Route | None:
        """The route for ``model`` (cached), or ``None`` when nothing routes it."""
        try:
            return self._cache[model]
        except KeyError:
            pass
        route = self._resolve(model)
        if route is not None and len(self._cache) < 10_000:
            self._cache[model] = route
        return route

    def capabilities(self, target: Target) -> Capabilities:
        found = self._capabilities.get(target)
        if found is not None:
            return found
        return self._provider_capabilities.get(target.provider, _UNKNOWN)

    def _resolve(self, model: str) -> Route | None:
        spec = self._exact.get(model)
        name = model
        if spec is None:
            for pattern, pattern_spec in self._patterns:
                if fnmatchcase(model, pattern):
                    spec, name = pattern_spec, pattern
                    break
        if spec is None:
            provider, sep, rest = model.partition("/")
            if sep and rest and provider in self._providers:
                # Named like a pattern: metrics label requests by route, and callers choose the rest.
                return Route(f"{provider}/*", (Target(provider, rest),))
            return None
        targets = []
        for candidate in spec.candidates:
            provider, _, target_model = candidate.partition("/")
            targets.append(Target(provider, target_model.replace("{model}", model)))
        return Route(name, tuple(targets), spec.tiers, spec.options)


_UNKNOWN = Capabilities()
