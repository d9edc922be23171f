"""Health as the gateway runs it: the listener on the router, the detector's tick, the feed poller,
active probes, webhooks and persistence, started and stopped with the gateway's lifespan.

    health = HealthService.from_config(config)       # build_gateway does this
    router listeners += [health.signals]
    health.attach_probes(config, providers, router)  # once the router exists
    await health.start(); ...; await health.aclose()
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable
from datetime import date, timedelta
from pathlib import Path
from typing import Any

from outlast.config import Config, HealthConfig
from outlast.health.detector import Detector, Policy
from outlast.health.feeds import FeedPoller
from outlast.health.incidents import Incident, Update
from outlast.health.persist import HealthStore
from outlast.health.probes import Prober
from outlast.health.reports import Report, Reports
from outlast.health.signals import SignalListener
from outlast.health.uptime import Uptime, day_of
from outlast.health.webhooks import Hook, Webhooks

log = logging.getLogger("outlast.health")


def policy_of(config: HealthConfig) -> Policy:
    names = Policy.__dataclass_fields__
    return Policy(**{k: v for k, v in config.model_dump().items() if k in names})


class UnknownComponent(ValueError):
    pass


class HealthService:
    def __init__(self, config: HealthConfig, providers: list[str], feeds: dict[str, str], *,
                 clock: Callable[[], float] = time.time, store: HealthStore | None = None,
                 feed_components: dict[str, tuple[str, ...]] | None = None) -> None:
        self.config = config
        self.clock = clock
        self.providers = providers
        keep = max(config.recovery_window, config.window, config.sparse_window) + 2 * config.tick
        self.signals = SignalListener(clock, bucket=config.tick, keep=keep)
        self.reports = Reports(clock, window=config.report_window)
        self.feeds = FeedPoller(feeds, components=feed_components, interval=config.feed_interval, clock=clock)
        self.uptime = Uptime(config.uptime_days)
        self.detector = Detector(self.signals, self.reports, policy=policy_of(config), clock=clock,
                                 uptime=self.uptime, feeds=self.feeds.states)
        self.webhooks = Webhooks([Hook(h.url, h.format) for h in config.webhooks], base_url=config.public_url)
        self.store = store
        self.detector.listeners.append(self._changed)
        self._dirty: dict[str, Incident] = {}
        self._tasks: list[asyncio.Task[Any]] = []
        self.probes: Prober | None = None  # active probes, when any target has them on
        self._last_flush = 0.0
        self._today: date | None = None  # the day of the last tick: a new one prunes the 90-day history
        self.interval = config.tick  # real seconds between ticks (the demo shortens it with its clock)

    @classmethod
    def from_config(cls, config: Config, *, data_directory: Path | None = None,
                    clock: Callable[[], float] = time.time) -> HealthService:
        feeds = {name: p.status_feed for name, p in config.providers.items() if p.status_feed}
        components = {name: p.status_components for name, p in config.providers.items() if p.status_components}
        store = None
        try:
            from outlast.store import store_url
            from outlast.store.sql import SqlStore

            sql = SqlStore(store_url(config.store, data_directory))
            store = HealthStore(sql.engine)
            store.sql = sql  # type: ignore[attr-defined]  # migrated at start
        except Exception as error:  # the gateway works without history; the page says so
            log.warning("health history will not be kept: %s", error)
        return cls(config.health, list(config.providers), feeds, clock=clock, store=store,
                   feed_components=components)

    def attach_probes(self, config: Config, providers: Any, router: Any) -> Prober | None:
        """Active probes of the targets the configuration names (none by default), on the router's
        adapters and health state; they start and stop with this service."""
        prober = Prober.from_config(config, providers, router, self.signals, wall=self.clock)
        self.probes = prober if prober.slots else None
        return self.probes

    # ------------------------------------------------------------------ changes

    def _changed(self, incident: Incident, update: Update) -> None:
        self._dirty[incident.id] = incident
        if self.webhooks.hooks:
            from outlast.web.statuspage import component_states, page_status

            self.webhooks.enqueue(incident, update, page_status(self), component_states(self))

    async def tick(self) -> list[tuple[Incident, Update]]:
        changes = self.detector.evaluate()
        now = self.clock()
        await self.flush(force=now - self._last_flush >= 60)
        await self._rollover(now)
        return changes

    async def _rollover(self, now: float) -> None:
        """On the first tick of each day, forget uptime, incidents and reports older than
        ``uptime_days``, in memory and in the store."""
        today = day_of(now)
        if today == self._today:
            return
        self._today = today
        self.uptime.prune(today)
        if self.store is not None:
            try:
                await asyncio.to_thread(self.store.prune, now, self.config.uptime_days)
            except Exception as error:
                log.warning("old health history not pruned (tried again tomorrow): %s", error)

    async def flush(self, force: bool = True) -> None:
        if self.store is None:
            self._dirty.clear()
            return
        dirty, self._dirty = list(self._dirty.values()), {}
        for incident in self.detector.incidents:  # counts of open incidents move on every tick
            if not incident.resolved and force:
                dirty.append(incident)
        uptime = self.uptime.take_dirty() if force else []
        if not dirty and not uptime:
            return
        if force:
            self._last_flush = self.clock()
        store = self.store
        try:
            await asyncio.to_thread(self._write, store, dirty, uptime)
        except Exception as error:
            log.warning("health history not saved (will retry): %s", error)
            for incident in dirty:
                self._dirty[incident.id] = incident
            for component, day, minutes in uptime:
                for status, value in minutes.items():
                    self.uptime.load(component, day, status, value)
                self.uptime.dirty.add((component, day))

    @staticmethod
    def _write(store: HealthStore, dirty: list[Incident], uptime: list[Any]) -> None:
        for incident in {i.id: i for i in dirty}.values():
            store.save_incident(incident)
        store.save_uptime(uptime)

    # ------------------------------------------------------------------ reports

    def components(self) -> list[str]:
        names = set(self.providers) | set(self.signals.series) | set(self.detector.components)
        return sorted(names)

    async def report(self, component: str, note: str = "", reporter: str | None = None) -> Report:
        component = component.strip()
        known = self.components()
        if component not in known and component.split("/", 1)[0] not in self.providers:
            raise UnknownComponent(f"unknown component {component!r}; known: {', '.join(known) or 'none'}")
        report = self.reports.add(component, note, reporter)
        if self.store is not None:
            try:
                await asyncio.to_thread(self.store.add_report, report)
            except Exception as error:
                log.warning("report not saved: %s", error)
        return report

    # ------------------------------------------------------------------ lifespan

    def _load(self) -> None:
        if self.store is None:
            return
        sql = getattr(self.store, "sql", None)
        if sql is not None:
            sql.migrate()
        now = self.clock()
        self.detector.restore(self.store.load_incidents(since=now - self.config.uptime_days * 86400))
        for component, day, minutes in self.store.load_uptime(day_of(now) - timedelta(days=self.config.uptime_days)):
            for status, value in minutes.items():
                self.uptime.load(component, day, status, value)
        for report in self.store.load_reports(now - self.reports.history):
            self.reports.add(report.component, report.note, report.reporter, at=report.at)

    async def start(self) -> None:
        try:
            await asyncio.to_thread(self._load)
        except Exception as error:
            log.warning("health history could not be read: %s", error)
            self.store = None
        self._tasks = [asyncio.create_task(self._loop(), name="outlast-health-tick"),
                       asyncio.create_task(self.webhooks.run(), name="outlast-health-webhooks")]
        if self.feeds.states:
            self._tasks.append(asyncio.create_task(self.feeds.run(), name="outlast-health-feeds"))
        if self.probes is not None and self.probes.targets:
            self._tasks.append(asyncio.create_task(self.probes.run(), name="outlast-health-probes"))

    async def _loop(self) -> None:
        while True:
            await asyncio.sleep(self.interval)
            try:
                await self.tick()
            except Exception:
                log.exception("health tick failed")

    async def aclose(self) -> None:
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        self._tasks = []
        if self.probes is not None:
            await self.probes.aclose()
        with contextlib.suppress(Exception):
            await self.flush(force=True)
        await self.feeds.aclose()
        await self.webhooks.aclose()
        sql = getattr(self.store, "sql", None) if self.store is not None else None
        if sql is not None:
            sql.close()
