"""From the configuration to a router: route specs, capabilities, health state, retry budget."""

from __future__ import annotations

from collections.abc import Iterable, Mapping

from outlast.config import Config, RouteOptionsConfig
from outlast.providers.base import Provider
from outlast.routing.breaker import BreakerPolicy
from outlast.routing.deadlines import RetryBudget
from outlast.routing.plan import Capabilities, RouteOptions, RouteSpec, RouteTable, Target
from outlast.routing.router import Router, RouterListener, TargetPredicate
from outlast.routing.state import HealthState, build_health


def route_options(config: RouteOptionsConfig) -> RouteOptions:
    d = config.deadlines
    return RouteOptions(
        retry_budget=config.retry_budget, max_retry_after=config.max_retry_after, deadline=d.total,
        first_token_floor=d.first_token_floor, first_token_ceiling=d.first_token_ceiling,
        first_token_multiplier=d.first_token_multiplier, hedge_after=config.hedge_after,
        allow_downgrade=config.allow_downgrade, on_content_filtered=config.on_content_filtered,
        continue_streams=config.continue_streams)


def route_table(config: Config, providers: Iterable[str]) -> RouteTable:
    routes: list[tuple[str, RouteSpec]] = []
    for name, candidates in config.routes.items():
        options = config.route_options.get(name)
        if options is None:
            routes.append((name, RouteSpec(tuple(candidates))))
        else:
            routes.append((name, RouteSpec(tuple(candidates), tuple(options.tiers), route_options(options))))
    capabilities: dict[Target, Capabilities] = {}
    provider_capabilities: dict[str, Capabilities] = {}
    for name, provider in config.providers.items():
        provider_capabilities[name] = Capabilities(provider.prefill, provider.context_window)
        for model, caps in provider.models.items():
            capabilities[Target(name, model)] = Capabilities(
                caps.prefill if caps.prefill is not None else provider.prefill,
                caps.context_window if caps.context_window is not None else provider.context_window)
    return RouteTable(routes, providers, capabilities, provider_capabilities)


def health_state(config: Config) -> HealthState:
    b = config.failover.breaker
    policy = BreakerPolicy(consecutive=b.consecutive, failure_rate=b.failure_rate, min_requests=b.min_requests,
                           window=b.window, cooldown=b.cooldown, max_cooldown=b.max_cooldown,
                           half_open_trials=b.half_open_trials)
    return build_health(config.state, policy, auth_cooldown=b.auth_cooldown)


def build_router(config: Config, providers: Mapping[str, Provider], *, listeners: Iterable[RouterListener] = (),
                 allowed: TargetPredicate | None = None) -> Router:
    """The router for ``config``. ``allowed`` is the policy layer's hook: a predicate of the
    targets a request may go to (default: every target)."""
    budget = config.failover.retry_budget
    return Router(
        providers, route_table(config, providers), listeners=listeners, health=health_state(config),
        budget=RetryBudget(ratio=budget.ratio, min_per_second=budget.min_per_second), allowed=allowed,
        first_token_ceilings={name: p.timeouts.first_token for name, p in config.providers.items()})
