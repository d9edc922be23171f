"""The router: one ``stream(request, exchange)`` over canonical events for every endpoint.

It knows candidates and failures, never wire formats, and it does not store anything:
recording and metrics hang off it as listeners.

For each request it walks the route's candidates, best first, skipping those the
allowed-target predicate excludes and those whose breaker is open (if every one is
open, the least recently failed is tried). Each failure is handled by its class:

- ``rate_limited``: the same target again after its ``retry-after`` when that is short
  (``max_retry_after``) and the retry budget allows; otherwise the next candidate, and
  the target is not tried again before its ``retry-after`` has passed.
- ``server_error``, ``connection_lost``, ``malformed``: once more on the same target
  after a jittered pause when it is cheap (it failed fast, it was healthy until now, the
  budget allows); otherwise the next candidate.
- ``overloaded``, ``timeout``, ``empty_response``, ``not_found``, ``auth_failed``: the
  next candidate at once (``auth_failed`` also marks the whole provider unhealthy).
- ``context_too_long``: only a candidate with a larger configured context window.
- ``bad_request``: back to the caller. ``content_filtered`` (a 400 content-policy error, or
  an answer that ends with a content-filter stop before any content): as the route says.

The route's total deadline (``RouteOptions.deadline``) bounds the wait before the answer
begins, measured from the request's start and retries included: no retry or next candidate
is started once it has passed, and each attempt's first-token deadline is capped at what is
left of it. When it runs out the caller gets a ``timeout`` (``total``) listing the attempts.

A candidate is *committed to* once it has produced the first piece of real answer
(non-empty text, reasoning or a complete tool call); until then the caller has seen
nothing. If a committed answer breaks, the next candidate is asked to continue it from
exactly where it stopped (see :mod:`outlast.routing.continuation`), and the caller
keeps one stream. If nothing can finish it, :class:`AllAttemptsFailed` (``committed``)
is raised and the endpoint ends the stream with an error, never a clean stop.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import time
from collections.abc import AsyncGenerator, AsyncIterator, Awaitable, Callable, Iterable, Mapping
from typing import Any, NoReturn

from outlast.dialects.canonical import Event, Request, Start, Stop, StopReason, TextDelta, ThinkingDelta, merge_usage
from outlast.providers.base import Provider
from outlast.providers.errors import FailureKind, RequestError, TimeoutPhase, UpstreamError
from outlast.routing.continuation import INSTRUCTION, PREFILL, Progress, Splicer, continuation
from outlast.routing.deadlines import RetryBudget, full_jitter
from outlast.routing.exchange import (
    AllAttemptsFailed,
    Attempt,
    Exchange,
    ExchangeSink,
    Notice,
    RouterListener,
    Splice,
)
from outlast.routing.plan import Route, RouteOptions, RouteTable, Target
from outlast.routing.state import HealthState, MemoryHealth

__all__ = ["AllAttemptsFailed", "Attempt", "Exchange", "ExchangeSink", "Notice", "Router", "RouterListener",
           "Splice", "TargetPredicate"]

# Governance supplies this: may ``request`` go to ``target``? (Data classes, approvals.)
TargetPredicate = Callable[[Request, Target], bool]

_TRANSIENT = frozenset({FailureKind.SERVER_ERROR, FailureKind.CONNECTION_LOST, FailureKind.MALFORMED})
_REFUSALS = frozenset({FailureKind.BAD_REQUEST, FailureKind.CONTEXT_TOO_LONG, FailureKind.CONTENT_FILTERED,
                       FailureKind.NOT_FOUND})
CHEAP_RETRY = 1.0  # a failure that came this fast (seconds) is worth one more try on the same target
# Less than this left of a route's total deadline (seconds) is too little to start an attempt in:
# it would only fail, and count against a healthy target.
MIN_ATTEMPT = 0.05

# What to do after a failure before the answer began.
NEXT, RETRY, STOP, LARGER = "next", "retry", "stop", "larger"


def _is_answer(event: Event) -> bool:
    cls = event.__class__
    if cls is TextDelta:
        return bool(event.text)  # type: ignore[union-attr]
    if cls is ThinkingDelta:
        return bool(event.thinking or event.redacted)  # type: ignore[union-attr]
    return cls is not Start and cls is not Stop


class _Committed:
    """An attempt that produced its first answer piece: the caller gets this one."""

    __slots__ = ("attempt", "buffered", "events", "target")

    def __init__(self, target: Target, attempt: Attempt, events: AsyncGenerator[Event, None],
                 buffered: list[Event]) -> None:
        self.target, self.attempt, self.events, self.buffered = target, attempt, events, buffered


class _Walk:
    """One request's way through its candidates."""

    __slots__ = ("attempted", "candidates", "deadline", "errors", "last_resort", "min_context", "pos", "retries",
                 "skipped", "started", "stopped")

    def __init__(self, candidates: tuple[Target, ...], retries: int, started: float, deadline: float | None,
                 skipped: list[Target]) -> None:
        self.candidates = candidates
        self.pos = 0
        self.errors: list[UpstreamError] = []
        self.retries = retries
        self.attempted = 0  # attempts since the walk (or the continuation) began
        self.last_resort = False
        self.min_context: int | None = None
        self.stopped: UpstreamError | None = None  # the failure that ended the walk early
        self.started = started  # the request's start (router clock)
        self.deadline = deadline  # the route's total deadline; None once the answer has begun
        self.skipped = skipped  # the exchange's: candidates passed over while unhealthy

    def left(self, now: float) -> float | None:
        """Seconds left of the total deadline (``None``: no deadline applies)."""
        return None if self.deadline is None else self.started + self.deadline - now

    def out_of_time(self, now: float) -> bool:
        left = self.left(now)
        return left is not None and left < MIN_ATTEMPT

    def time_out(self) -> None:
        """End the walk: the total deadline has passed."""
        self.stopped = UpstreamError(FailureKind.TIMEOUT, f"no answer within the route's total deadline of "
                                     f"{self.deadline:g} s", phase=TimeoutPhase.TOTAL)


class Router:
    def __init__(
        self,
        providers: Mapping[str, Provider],
        routes: RouteTable,
        *,
        clock: Callable[[], float] = time.monotonic,
        listeners: Iterable[RouterListener] = (),
        health: HealthState | None = None,
        budget: RetryBudget | None = None,
        allowed: TargetPredicate | None = None,
        first_token_ceilings: Mapping[str, float] | None = None,
        sleep: Callable[[float], Awaitable[Any]] = asyncio.sleep,
        rand: Callable[[], float] = random.random,
    ) -> None:
        self.providers = providers
        self.routes = routes
        self.clock = clock
        self.listeners = list(listeners)
        self.health: HealthState = health if health is not None else MemoryHealth(clock=clock)
        self.budget = budget if budget is not None else RetryBudget()
        self.allowed = allowed
        self.ceilings = dict(first_token_ceilings or {})
        self.sleep = sleep
        self.rand = rand

    # ------------------------------------------------------------------ plans

    def route(self, model: str) -> Route:
        route = self.routes.route(model)
        if route is None or not route.targets:
            known = ", ".join(self.routes.names()[:20]) or "none configured"
            raise RequestError(
                404,
                f"model {model!r} is not routed by this gateway (routes: {known}); "
                "add it under 'routes' in the configuration or call a route name",
                kind="not_found_error",
                param="model",
                code="model_not_found",
            )
        return route

    def plan(self, model: str) -> tuple[Target, ...]:
        return self.route(model).targets

    def candidates(self, route: Route, request: Request, allowed: TargetPredicate | None = None,
                   no_downgrade: bool = False) -> tuple[Target, ...]:
        """The route's targets this request may use: allowed by the predicate, and of the first
        tier when the caller or the route refuses a downgrade."""
        allowed = allowed or self.allowed
        restrict = bool(route.tiers) and (no_downgrade or not route.options.allow_downgrade)
        if allowed is None and not restrict:
            return route.targets
        top = route.tier(0)
        kept = tuple(t for i, t in enumerate(route.targets)
                     if (allowed is None or allowed(request, t)) and (not restrict or route.tier(i) <= top))
        if not kept:
            why = "of the first tier (downgrade refused)" if restrict else "approved for this request"
            message = f"no candidate for model {request.model!r} is {why}"
            explain = getattr(allowed, "explain", None)  # the policy says which data class and why
            if explain is not None and allowed is not None and not any(allowed(request, t) for t in route.targets):
                message = explain(request, route.targets)
            raise RequestError(403, message, kind="permission_error", code="no_allowed_target")
        return kept

    # ------------------------------------------------------------------ the stream

    async def stream(self, request: Request, exchange: Exchange, *, allowed: TargetPredicate | None = None,
                     no_downgrade: bool = False) -> AsyncIterator[Event | Notice]:
        """Serve ``request`` from the first candidate that can, yielding its events (and, when
        an answer was continued elsewhere, a :class:`Notice` before the rest).

        Raises :class:`RequestError` for an unrouted or disallowed model and
        :class:`AllAttemptsFailed` when no candidate could produce (or finish) an answer.
        """
        try:
            route = self.route(request.model)
            exchange.route = route.name
            allowed = allowed or self.allowed
            exchange.plan = candidates = self.candidates(route, request, allowed, no_downgrade)
            self.budget.deposit()
            options = route.options
            walk = _Walk(candidates, options.retry_budget, self.clock(), options.deadline, exchange.skipped)
            progress: Progress | None = None
            splicer: Splicer | None = None
            target = self._next(walk)
            purpose, mode = "first", None
            while target is not None:
                if progress is not None:
                    mode = self._mode(target)
                    asked = continuation(request, progress, mode)
                elif walk.out_of_time(self.clock()):
                    walk.time_out()
                    break
                else:
                    asked = request
                opened = await self._open(route, walk, target, asked, exchange, purpose, mode,
                                          hedge=progress is None)
                if not isinstance(opened, _Committed):
                    target, purpose = opened
                    if target is None:
                        break
                    continue
                target, attempt, events, buffered = opened.target, opened.attempt, opened.events, opened.buffered
                # ---- committed: the caller gets this target's answer
                walk.deadline = None  # the total deadline bounds the wait before the answer begins
                exchange.served_by = target
                if route.tiers:
                    exchange.downgraded = route.tier(route.targets.index(target)) > route.tier(0)
                fresh = progress is None
                if progress is None:
                    progress = Progress()
                try:
                    if fresh:
                        observe = progress.observe
                        for event in buffered:
                            observe(event)
                            yield event
                        async for event in events:
                            observe(event)
                            yield event
                    else:
                        assert splicer is not None
                        splice = exchange.splices[-1]
                        splice.continued, splice.mode = target, mode
                        yield Notice(f"outlast: continued on {target} after {splice.broken} failed "
                                     f"({splice.failure.value})")
                        for event in buffered:
                            mapped = splicer.map(event)
                            if mapped is not None:
                                progress.observe(mapped)
                                yield mapped
                        async for event in events:
                            mapped = splicer.map(event)
                            if mapped is not None:
                                progress.observe(mapped)
                                yield mapped
                        exchange.served_model = splicer.model or exchange.served_model
                except UpstreamError as error:
                    self._finish(exchange, attempt, error)
                    walk.errors.append(error)
                    if progress.stop is not None:  # it broke after the end: the answer is whole
                        break
                    if progress.tool_calls:
                        # The caller holds complete tool calls: end the turn there (they run the
                        # tools, and the next turn carries on) rather than splicing after a call.
                        stop = Stop(StopReason.TOOL_USE, progress.usage_so_far())
                        progress.observe(stop)
                        yield stop
                        break
                    if not options.continue_streams:
                        raise AllAttemptsFailed(request.model, walk.errors, committed=True) from None
                    exchange.splices.append(Splice(self.clock(), progress.chars, target, error.kind))
                    splicer = Splicer(progress, splicer.carried() if splicer is not None else None)
                    walk.attempted = 0
                    walk.last_resort = False
                    target, purpose = self._next(walk), "continuation"
                    continue
                finally:
                    await events.aclose()
                self._finish(exchange, attempt, None)
                break
            if progress is None or progress.stop is None:
                self._give_up(request, walk, progress, route, allowed)
            self._settle(exchange, progress)
        except GeneratorExit:
            exchange.client_disconnected = True
            raise
        except BaseException as error:
            exchange.error = error
            raise
        finally:
            exchange.ended = self.clock()
            for listener in self.listeners:
                listener.exchange_finished(exchange)

    def _give_up(self, request: Request, walk: _Walk, progress: Progress | None, route: Route,
                 allowed: TargetPredicate | None) -> NoReturn:
        now = self.clock()
        waits = [w for w in (self.health.wait(t, now) for t in walk.candidates) if w > 0]
        # Candidates the policy (this request's predicate) kept out: the caller learns that
        # failover was not allowed, and why.
        explain = getattr(allowed, "explain", None)
        excluded = [t for t in route.targets if allowed is not None and not allowed(request, t)] if explain else []
        policy = explain(request, excluded) if explain is not None and excluded else None
        raise AllAttemptsFailed(request.model, walk.errors, stopped=walk.stopped,
                                cooldown=min(waits) if waits else None, committed=progress is not None,
                                skipped=walk.skipped, policy=policy)

    @staticmethod
    def _settle(exchange: Exchange, progress: Progress) -> None:
        stop = progress.stop
        if exchange.served_model is None:
            exchange.served_model = progress.model
        if stop is not None:
            exchange.stop_reason = stop.stop_reason
            exchange.usage = stop.usage if exchange.splices else merge_usage(progress.start_usage, stop.usage)

    # ------------------------------------------------------------------ choosing targets

    def _next(self, walk: _Walk) -> Target | None:
        """The next candidate to try, skipping open ones; the least recently failed of them
        when every candidate left is open and nothing has been tried yet."""
        candidates = walk.candidates
        health = self.health
        now = self.clock()
        skipped: list[Target] | None = None
        while walk.pos < len(candidates):
            target = candidates[walk.pos]
            walk.pos += 1
            if walk.min_context is not None and not self._larger(target, walk.min_context):
                continue
            if health.ready(target, now):
                return target
            if skipped is None:
                skipped = []
            skipped.append(target)
            if target not in walk.skipped:
                walk.skipped.append(target)
        if skipped and walk.attempted == 0 and not walk.last_resort:
            walk.last_resort = True
            chosen = min(skipped, key=health.last_failure)
            walk.skipped.remove(chosen)  # tried after all: it is among the attempts
            return chosen
        return None

    def _larger(self, target: Target, window: int) -> bool:
        size = self.routes.capabilities(target).context_window
        return size is not None and size > window

    def _mode(self, target: Target) -> str:
        prefill = self.routes.capabilities(target).prefill
        if prefill is None or prefill:
            learned = self.health.prefill(target)
            if learned is not None:
                prefill = learned
        return PREFILL if prefill else INSTRUCTION

    def _deadline(self, route: Route, target: Target, walk: _Walk) -> tuple[float, bool]:
        """The attempt's first-token deadline, and whether it is what was left of the route's
        total deadline (shorter than the target's own)."""
        options = route.options
        ceiling = options.first_token_ceiling or self.ceilings.get(target.provider, 60.0)
        own = self.health.first_token_deadline(target, min(options.first_token_floor, ceiling), ceiling,
                                               options.first_token_multiplier)
        left = walk.left(self.clock())
        if left is not None and left < own:
            return max(left, 0.0), True
        return own, False

    # ------------------------------------------------------------------ one attempt (or a hedged pair)

    async def _open(
        self, route: Route, walk: _Walk, target: Target, request: Request, exchange: Exchange, purpose: str,
        mode: str | None, *, hedge: bool,
    ) -> _Committed | tuple[Target | None, str]:
        """Start ``target`` (and, when the route hedges, the next candidate after ``hedge_after``)
        and wait for the first answer piece. Returns the committed attempt, or the next target
        to try and why."""
        options = route.options
        attempt = self._attempt(exchange, walk, route, target, purpose, mode)
        hedge_after = options.hedge_after if hedge else None
        if hedge_after is None:
            try:
                events, buffered = await self._first(target, request, attempt)
            except UpstreamError as error:
                return await self._failed(route, walk, exchange, attempt, error, mode)
            return _Committed(target, attempt, events, buffered)
        return await self._hedged(route, walk, exchange, attempt, request, hedge_after)

    def _attempt(self, exchange: Exchange, walk: _Walk, route: Route, target: Target, purpose: str,
                 mode: str | None) -> Attempt:
        deadline, total_bound = self._deadline(route, target, walk)
        attempt = Attempt(target, self.clock(), purpose=purpose, mode=mode, deadline=deadline,
                          total_bound=total_bound)
        exchange.attempts.append(attempt)
        walk.attempted += 1
        return attempt

    async def _first(self, target: Target, request: Request,
                     attempt: Attempt) -> tuple[AsyncGenerator[Event, None], list[Event]]:
        """The target's stream, read up to its first answer piece within the attempt's deadline."""
        provider = self.providers[target.provider]
        events = provider.stream(request, target.model)
        buffered: list[Event] = []
        deadline = attempt.deadline
        try:
            async with asyncio.timeout(deadline):
                async for event in events:
                    buffered.append(event)
                    if _is_answer(event):
                        attempt.first_event = self.clock()
                        return events, buffered
                    if event.__class__ is Stop:
                        if event.stop_reason is StopReason.CONTENT_FILTER:
                            # OpenAI's finish_reason content_filter, Gemini's SAFETY, Anthropic's
                            # refusal: withheld, not blank, so the route's on_content_filtered applies.
                            raise UpstreamError(FailureKind.CONTENT_FILTERED, "the provider's content filter "
                                                "stopped the answer before it began", provider=target.provider,
                                                model=target.model, vendor_code="content_filter")
                        raise UpstreamError(FailureKind.EMPTY_RESPONSE, "the answer was empty",
                                            provider=target.provider, model=target.model)
            raise UpstreamError(FailureKind.CONNECTION_LOST, "the stream ended before any answer",
                                provider=target.provider, model=target.model)
        except TimeoutError:
            await events.aclose()
            if attempt.total_bound:  # cut short by the route's deadline, not its own: no proof of silence
                raise UpstreamError(FailureKind.TIMEOUT, f"no answer in the {deadline:.3g} s left of the "
                                    "route's total deadline", phase=TimeoutPhase.TOTAL, provider=target.provider,
                                    model=target.model) from None
            raise UpstreamError(FailureKind.TIMEOUT, f"no answer within the adaptive first-token deadline of "
                                f"{deadline:.3g} s", phase=TimeoutPhase.FIRST_TOKEN, provider=target.provider,
                                model=target.model) from None
        except BaseException:
            await events.aclose()
            raise

    async def _failed(self, route: Route, walk: _Walk, exchange: Exchange, attempt: Attempt, error: UpstreamError,
                      mode: str | None) -> tuple[Target | None, str]:
        """Record a failure before the answer began and decide where to go next."""
        self._finish(exchange, attempt, error)
        walk.errors.append(error)
        target = attempt.target
        action, delay = self._decide(route.options, walk, attempt, error, mode)
        if action == RETRY:
            if delay:
                await self.sleep(delay)
            return target, "retry" if mode is None else "continuation"
        window = self.routes.capabilities(target).context_window if action == LARGER else None
        if action == STOP or (action == LARGER and window is None):
            walk.stopped = error
            return None, "stop"
        if window is not None:
            walk.min_context = window
            walk.pos = 0  # a larger window may be listed before this one
            walk.last_resort = True
        nxt = self._next(walk)
        if nxt is None and window is not None:
            walk.stopped = error
        return nxt, "failover" if mode is None else "continuation"

    def _decide(self, options: RouteOptions, walk: _Walk, attempt: Attempt, error: UpstreamError,
                mode: str | None) -> tuple[str, float]:
        kind = error.kind
        target = attempt.target
        if attempt.purpose == "continuation" or mode is not None:
            if kind in _REFUSALS:
                if mode == PREFILL and kind is FailureKind.BAD_REQUEST:
                    self.health.learn_prefill(target, False)
                    return RETRY, 0.0  # at once, with the instruction instead
                return NEXT, 0.0  # a refused continuation never reaches the caller
        elif kind is FailureKind.BAD_REQUEST:
            return STOP, 0.0
        elif kind is FailureKind.CONTENT_FILTERED:
            return (STOP if options.on_content_filtered == "return" else NEXT), 0.0
        elif kind is FailureKind.CONTEXT_TOO_LONG:
            return LARGER, 0.0
        if walk.retries <= 0 or attempt.purpose == "hedge":
            return NEXT, 0.0
        now = self.clock()
        if kind is FailureKind.RATE_LIMITED:
            wait = error.retry_after
            if wait is None or wait > options.max_retry_after:
                return NEXT, 0.0
        elif kind in _TRANSIENT:
            if (attempt.ended or now) - attempt.started > CHEAP_RETRY or error.during_stream:
                return NEXT, 0.0
            if self.health.consecutive_failures(target) > 1:  # not a blip: it was failing already
                return NEXT, 0.0
            wait = full_jitter(attempt.purpose == "retry", rand=self.rand)
        else:
            return NEXT, 0.0
        left = walk.left(now)
        if left is not None and wait + MIN_ATTEMPT > left:  # the wait would leave no time to answer
            return NEXT, 0.0
        if not self.budget.withdraw(now):
            return NEXT, 0.0
        walk.retries -= 1
        return RETRY, wait

    async def _hedged(self, route: Route, walk: _Walk, exchange: Exchange, first: Attempt, request: Request,
                      hedge_after: float) -> _Committed | tuple[Target | None, str]:
        """Race the first candidate against the next one started ``hedge_after`` later; keep
        whichever answers first, cancel the other (closing its connection)."""
        tasks: dict[asyncio.Task[tuple[AsyncGenerator[Event, None], list[Event]]], Attempt] = {
            asyncio.ensure_future(self._first(first.target, request, first)): first}
        done, _ = await asyncio.wait(tasks, timeout=hedge_after)
        if not done and not walk.out_of_time(self.clock()):
            second = self._next(walk)
            if second is not None:
                attempt = self._attempt(exchange, walk, route, second, "hedge", None)
                tasks[asyncio.ensure_future(self._first(second, request, attempt))] = attempt
        pending = set(tasks)
        winner: _Committed | None = None
        failures: list[tuple[Attempt, UpstreamError]] = []
        try:
            while pending and winner is None:
                done, pending = await asyncio.wait(pending, return_when=asyncio.FIRST_COMPLETED)
                for task in done:
                    attempt = tasks[task]
                    error = task.exception()
                    if error is None:
                        if winner is None:
                            events, buffered = task.result()
                            winner = _Committed(attempt.target, attempt, events, buffered)
                        else:  # both answered at once: keep the first, close the other
                            await task.result()[0].aclose()
                            attempt.cancelled = True
                            self._finish(exchange, attempt, None)
                    elif isinstance(error, UpstreamError):
                        failures.append((attempt, error))
                    else:
                        raise error
        finally:
            for task in pending:
                task.cancel()
                tasks[task].cancelled = True
            for task in pending:
                with contextlib.suppress(asyncio.CancelledError, UpstreamError):
                    await task
                self._finish(exchange, tasks[task], None)
        if winner is not None or len(failures) > 1:
            for attempt, error in failures[: None if winner is not None else -1]:
                self._finish(exchange, attempt, error)
                walk.errors.append(error)
        if winner is not None:
            return winner
        attempt, error = failures[-1]
        return await self._failed(route, walk, exchange, attempt, error, None)

    def _finish(self, exchange: Exchange, attempt: Attempt, error: UpstreamError | None) -> None:
        now = attempt.ended = self.clock()
        attempt.error = error
        if error is not None:
            self.health.failed(attempt.target, error.kind, now, retry_after=error.retry_after, phase=error.phase)
        elif attempt.first_event is not None and not attempt.cancelled:
            # A success is an answer that completed: one that breaks mid-way counts only as a failure,
            # so a target that keeps cutting its streams opens its breaker like any other.
            self.health.succeeded(attempt.target, now, attempt.first_event - attempt.started)
        for listener in self.listeners:
            listener.attempt_finished(exchange, attempt)
