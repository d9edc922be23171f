"""Active probes: a cheap scheduled request to each chosen target, so outlast knows a provider's
health when nobody is using it, and so a caller's request is never the one that finds out
whether a failing target is back.

A probe is one user message (:data:`PROMPT`) with ``max_tokens: 1``, sent through the provider's
own adapter like any request. Its outcome goes to the same places an attempt's does, marked as a
probe:

- the passive signals (:meth:`SignalListener.probe_finished`): outcome, failure class, latency;
  counted apart from callers' requests, never as a request, a failover or a request saved;
- the health state's breakers: failures count toward opening, and while a probed target is open
  its half-open trial is a probe (:meth:`MemoryHealth.reserve`): a success closes it, a failure
  keeps it open for twice as long.

It never reaches the router's listeners (metrics, audit) or its sinks (the recorder): a probe is
not a conversation and not anybody's request. It carries no user data, so it goes only to
targets the governance policy allows for the lowest data class (``public``).

Each target is probed every ``interval`` seconds (stretched or shrunk at random by up to
``jitter``), at most one probe in flight, each given ``timeout`` seconds.

    prober = Prober.from_config(config, providers, router, signals)   # build_gateway does this
    task = asyncio.create_task(prober.run()); ...; await prober.aclose()
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol, runtime_checkable

from outlast.config import Config
from outlast.dialects.canonical import Message, Request, Start, Stop, Text
from outlast.health.signals import SignalListener
from outlast.providers.base import Provider
from outlast.providers.errors import FailureKind, TimeoutPhase, UpstreamError
from outlast.routing.plan import Target
from outlast.routing.state import HealthState

log = logging.getLogger("outlast.health.probes")

# The fixed prompt: one short word, so a probe costs a handful of input tokens and one output token.
PROMPT = "Hi"
POLL = 1.0  # at most this many seconds between two looks at the schedule
# Failures that are the probe's own fault, not the target's.
REFUSED = frozenset({FailureKind.BAD_REQUEST, FailureKind.CONTEXT_TOO_LONG, FailureKind.CONTENT_FILTERED})


@runtime_checkable
class ProbeHooks(Protocol):
    """What a health state offers active probes (:class:`~outlast.routing.state.MemoryHealth` does)."""

    def reserve(self, target: Target, reserved: bool = True) -> None: ...

    def probe_state(self, target: Target, now: float) -> str: ...

    def begin_probe(self, target: Target, now: float) -> bool: ...


@dataclass(frozen=True, slots=True)
class ProbeTarget:
    target: Target
    interval: float
    timeout: float


def probe_targets(config: Config) -> list[ProbeTarget]:
    """The targets to probe: each ``provider/model`` named in a route (not a pattern) or under
    ``providers.<name>.models``, whose model (else provider) says ``probe: true``."""
    probes = config.health.probes
    names: dict[Target, None] = {}
    for candidates in config.routes.values():
        for candidate in candidates:
            provider, _, model = candidate.partition("/")
            if "{" not in model and "*" not in model:
                names[Target(provider, model)] = None
    for provider, pc in config.providers.items():
        for model in pc.models:
            names[Target(provider, model)] = None
    out = []
    for target in names:
        pc = config.providers[target.provider]
        mc = pc.models.get(target.model)
        on = mc.probe if mc is not None and mc.probe is not None else pc.probe
        if not on:
            continue
        interval = (mc.probe_interval if mc is not None else None) or pc.probe_interval or probes.interval
        out.append(ProbeTarget(target, interval, probes.timeout))
    return out


@dataclass(slots=True)
class _Slot:
    """One probed target's schedule and what its probes found."""

    spec: ProbeTarget
    next_at: float
    task: asyncio.Task[None] | None = None
    sent: int = 0
    failed: int = 0
    trials: int = 0  # probes that were a half-open breaker's trial
    input_tokens: int = 0
    output_tokens: int = 0
    last_at: float | None = None  # wall clock
    last_outcome: str | None = None  # "ok" or the failure class
    last_latency: float | None = None
    last_error: str | None = None
    excluded: str | None = None  # why it is not probed: governance, or the provider refused the probe
    history: list[str] = field(default_factory=list)


class Prober:
    def __init__(self, providers: Mapping[str, Provider], targets: Sequence[ProbeTarget], *, health: HealthState,
                 signals: SignalListener | None = None, allowed: Callable[[Request, Target], bool] | None = None,
                 clock: Callable[[], float] = time.monotonic, wall: Callable[[], float] = time.time,
                 jitter: float = 0.1, rand: Callable[[], float] = random.random) -> None:
        self.providers = providers
        self.health = health
        self.hooks = health if isinstance(health, ProbeHooks) else None
        self.signals = signals
        self.clock = clock  # the router's clock: the breakers' time
        self.wall = wall
        self.jitter = jitter
        self.rand = rand
        # One request for every probe: nothing in it comes from a user, so it is the lowest class.
        self.request = Request("outlast-probe", (Message("user", (Text(PROMPT),)),), max_tokens=1, stream=True)
        now = clock()
        self.slots: dict[Target, _Slot] = {}
        for spec in targets:
            if spec.target.provider not in providers:
                continue
            # The first probes are spread over the first interval, so they do not all go at once.
            slot = _Slot(spec, now + spec.interval * rand())
            if allowed is not None and not allowed(self.request, spec.target):
                slot.excluded = "not approved for the lowest data class"
                log.warning("not probing %s: governance does not allow it even a request with no user data",
                            spec.target)
            self.slots[spec.target] = slot
        self._wake: asyncio.Event | None = None  # set when a probe finishes (run() waits on it)

    @classmethod
    def from_config(cls, config: Config, providers: Mapping[str, Provider], router: Any,
                    signals: SignalListener | None, wall: Callable[[], float] = time.time) -> Prober:
        return cls(providers, probe_targets(config), health=router.health, signals=signals, allowed=router.allowed,
                   clock=router.clock, wall=wall, jitter=config.health.probes.jitter)

    @property
    def targets(self) -> list[Target]:
        return [t for t, slot in self.slots.items() if slot.excluded is None]

    # ------------------------------------------------------------------ the schedule

    def step(self) -> list[Target]:
        """Start every probe that is due: a target's scheduled one, or the half-open trial of a
        target whose breaker's cool-down has passed. Returns the targets probed."""
        now = self.clock()
        started = []
        for target, slot in self.slots.items():
            if slot.excluded is not None or slot.task is not None:
                continue  # at most one probe in flight per target
            hooks = self.hooks
            state = "closed"
            if hooks is not None:
                hooks.reserve(target)  # again every time: the health state may have been reset
                state = hooks.probe_state(target, now)
            if state == "cooling" or self.health.wait(target, now) > 0:
                continue  # a breaker's cool-down or a rate limit's retry-after has not passed
            trial = state == "due"
            if trial:
                assert hooks is not None
                if not hooks.begin_probe(target, now):
                    continue
            elif now < slot.next_at:
                continue
            interval = slot.spec.interval
            slot.next_at = now + interval * (1 + self.jitter * (2 * self.rand() - 1))
            slot.task = asyncio.create_task(self._probe(slot, trial), name=f"outlast-probe-{target}")
            started.append(target)
        return started

    def _sleep_for(self) -> float:
        """Until the next probe is due (a finished probe wakes the loop sooner), at most :data:`POLL`."""
        now = self.clock()
        soonest = POLL
        for target, slot in self.slots.items():
            if slot.excluded is None and slot.task is None:
                soonest = min(soonest, max(slot.next_at - now, self.health.wait(target, now)))
        return max(0.01, soonest)

    async def run(self) -> None:
        self._wake = asyncio.Event()
        try:
            while True:
                try:
                    self.step()
                except Exception:
                    log.exception("probe scheduling failed")
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._wake.wait(), self._sleep_for())
                self._wake.clear()
        finally:
            await self._stop()

    async def settle(self) -> None:
        """Wait for the probes in flight (tests)."""
        tasks = [slot.task for slot in self.slots.values() if slot.task is not None]
        if tasks:
            await asyncio.gather(*tasks, return_exceptions=True)

    async def _stop(self) -> None:
        tasks = [slot.task for slot in self.slots.values() if slot.task is not None]
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        if self.hooks is not None:  # without a prober, callers' requests test open targets again
            for target in self.slots:
                self.hooks.reserve(target, False)

    async def aclose(self) -> None:
        await self._stop()

    # ------------------------------------------------------------------ one probe

    async def _probe(self, slot: _Slot, trial: bool) -> None:
        try:
            await self.probe(slot, trial)
        except Exception:
            log.exception("probe of %s failed unexpectedly", slot.spec.target)
        finally:
            slot.task = None
            if self._wake is not None:
                self._wake.set()  # its next probe may be due already

    async def probe(self, slot: _Slot, trial: bool = False) -> UpstreamError | None:
        """Send one probe to ``slot``'s target and record what happened; returns its failure."""
        target, timeout = slot.spec.target, slot.spec.timeout
        started = self.clock()
        first: float | None = None
        stop: Stop | None = None
        input_tokens = 0
        error: UpstreamError | None = None
        events = self.providers[target.provider].stream(self.request, target.model)
        try:
            async with asyncio.timeout(timeout):
                async for event in events:
                    if isinstance(event, Start):
                        input_tokens = event.usage.input_tokens
                        continue
                    if first is None:
                        first = self.clock()
                    if isinstance(event, Stop):
                        stop = event
            if stop is None:
                error = UpstreamError(FailureKind.CONNECTION_LOST, "the probe's stream ended without a stop",
                                      during_stream=first is not None, provider=target.provider, model=target.model)
        except UpstreamError as failure:
            error = failure
        except TimeoutError:
            error = UpstreamError(FailureKind.TIMEOUT, f"no complete answer to the probe within {timeout:g} s",
                                  phase=TimeoutPhase.FIRST_TOKEN if first is None else TimeoutPhase.TOTAL,
                                  provider=target.provider, model=target.model)
        finally:
            await events.aclose()
        self._record(slot, trial, error, None if first is None else first - started, stop, input_tokens)
        return error

    def _record(self, slot: _Slot, trial: bool, error: UpstreamError | None, latency: float | None,
                stop: Stop | None, input_tokens: int) -> None:
        target = slot.spec.target
        now = self.clock()
        if error is not None and error.kind in REFUSED:
            # The provider refused the probe itself (a parameter this model does not take, say):
            # that says nothing about its health, and a probe that cannot succeed must not hold
            # the breaker's trials. Callers' requests test it again; probing it stops.
            slot.excluded = f"the provider refused the probe: {error.message}"
            if self.hooks is not None:
                self.hooks.reserve(target, False)
            log.warning("not probing %s any more: %s", target, slot.excluded)
        # A probe's first token says little about real work (one word in, one token out), so it is
        # kept out of the adaptive first-token deadline: only the outcome goes to the breakers.
        if error is None:
            self.health.succeeded(target, now, None)
        else:
            self.health.failed(target, error.kind, now, retry_after=error.retry_after, phase=error.phase)
        if self.signals is not None:
            self.signals.probe_finished(target, error, latency)
        slot.sent += 1
        slot.trials += trial
        slot.last_at = self.wall()
        slot.last_latency = latency if error is None else None
        slot.last_outcome = "ok" if error is None else error.kind.value
        slot.last_error = None if error is None else error.message
        if error is not None:
            slot.failed += 1
        if stop is not None:
            slot.input_tokens += max(input_tokens, stop.usage.input_tokens)
            slot.output_tokens += stop.usage.output_tokens
        slot.history = [*slot.history[-19:], slot.last_outcome]
        if trial:
            log.info("probe of %s (half-open trial): %s", target, slot.last_outcome)
        else:
            log.debug("probe of %s: %s", target, slot.last_outcome)

    # ------------------------------------------------------------------ views

    def snapshot(self) -> list[dict[str, Any]]:
        return [{"target": str(t), "interval": s.spec.interval, "sent": s.sent, "failed": s.failed,
                 "trials": s.trials, "in_flight": s.task is not None, "last_at": s.last_at,
                 "last_outcome": s.last_outcome, "last_latency": s.last_latency, "last_error": s.last_error,
                 "input_tokens": s.input_tokens, "output_tokens": s.output_tokens, "excluded": s.excluded,
                 "recent": list(s.history)} for t, s in self.slots.items()]
