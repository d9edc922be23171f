"""``outlast demo``: simulated providers with a scripted outage, the gateway in front of them,
traffic in both dialects, and a live view of what clients saw.

Everything runs in this one process (the simulator and the gateway each in their own
thread and event loop, the traffic in the main one), so Ctrl-C stops all of it and
nothing is left running; the summary then covers what ran until then. docs/demo.md
describes the options and the summary.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import shutil
import time
from collections import Counter, deque
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx

from outlast.app import build_gateway
from outlast.config import data_dir, validate
from outlast.routing.router import Attempt, Exchange
from outlast.serving import BackgroundServer

DEMO_KEY = "sk-outlast-demo"
ROUTE = "claude-opus-4-6"
CANDIDATES = ["anthropic/claude-opus-4-6", "openai/gpt-5.1", "local/qwen3:8b"]
SHAPES = [("anthropic", True), ("openai", False), ("anthropic", False), ("openai", True)]


def demo_config(sim_url: str) -> dict[str, Any]:
    fast = {"connect": 2, "first_token": 3, "idle": 3, "total": 30}
    return {
        "providers": {
            "anthropic": {"kind": "anthropic", "base_url": f"{sim_url}/anthropic", "api_key": "sk-ant-demo-upstream",
                          "timeouts": fast, "status_feed": f"{sim_url}/anthropic/status/api/v2/summary.json"},
            "openai": {"kind": "openai", "base_url": f"{sim_url}/openai/v1", "api_key": "sk-openai-demo-upstream",
                       "timeouts": fast},
            "local": {"kind": "openai", "base_url": f"{sim_url}/local/v1", "timeouts": fast},
        },
        "routes": {ROUTE: CANDIDATES, "claude-sonnet-4-6": ["anthropic/claude-sonnet-4-6", "openai/gpt-5.1",
                                                             "local/qwen3:8b"]},
        "master_key": DEMO_KEY,
        # Detection runs on simulated time, which passes hundreds of times faster than real time here:
        # windows wide enough to hold a few of the demo's requests.
        "health": {"tick": 30, "window": 300, "open_after": 30, "identify_after": 600, "recovery_window": 1200,
                   "quiet_period": 900},
    }


@dataclass
class Tally:
    """What clients saw, and what the gateway did, as the demo goes."""

    started: float = field(default_factory=time.monotonic)
    sent: int = 0
    ok: int = 0
    failed: int = 0
    failed_over: int = 0
    served_by: Counter[str] = field(default_factory=Counter)
    upstream_failures: Counter[str] = field(default_factory=Counter)
    first_failure_at: float | None = None  # monotonic
    log: deque[str] = field(default_factory=lambda: deque(maxlen=10))
    # the simulated clock, sampled: (monotonic, scenario seconds, scenario wall-clock label)
    clock: tuple[float, float, str] | None = None
    scenario_phase: str = ""
    vendor_status: str = "unknown"
    scenario_start: datetime | None = None
    vendor_ack: datetime | None = None  # when the vendor's status page first acknowledged the incident
    first_failure_seconds: float | None = None  # scenario seconds at outlast's first failed attempt
    data_dir: Path | None = None  # where the demo's exchanges were recorded
    health: Any = None  # the gateway's HealthService: outlast's own incidents
    finished: float | None = None  # monotonic: when the traffic stopped
    interrupted: bool = False  # stopped by Ctrl-C before its time was up

    def incident(self) -> Any:
        incidents = self.health.detector.incidents if self.health is not None else []
        return incidents[0] if incidents else None

    def note(self, line: str) -> None:
        self.log.append(f"{self.clock_label()}  {line}")

    def first_failure(self) -> datetime | None:
        if self.first_failure_seconds is None or self.scenario_start is None:
            return None
        return self.scenario_start + timedelta(seconds=self.first_failure_seconds)

    def clock_label(self) -> str:
        return self.clock[2] if self.clock else f"+{time.monotonic() - self.started:5.1f}s"


class DemoListener:
    """Hangs off the gateway's router: sees every attempt, as the metrics do."""

    def __init__(self, tally: Tally, scenario_seconds: Callable[[], float | None]) -> None:
        self.tally = tally
        self.scenario_seconds = scenario_seconds

    def attempt_finished(self, exchange: Exchange, attempt: Attempt) -> None:
        if attempt.error is None:
            return
        tally = self.tally
        tally.upstream_failures[f"{attempt.target} {attempt.error.kind.value}"] += 1
        if tally.first_failure_at is None:
            tally.first_failure_at = time.monotonic()
            tally.first_failure_seconds = self.scenario_seconds()

    def exchange_finished(self, exchange: Exchange) -> None:
        """One line for every exchange that did not go simply to the first choice."""
        reasons = [f"{a.target} {a.error.kind.value}" for a in exchange.attempts if a.error is not None]
        reasons += [f"{t} skipped (circuit open)" for t in exchange.skipped]
        if not reasons and exchange.fallback:
            reasons.append(f"{exchange.plan[0]} not tried (circuit open)")
        reasons += [f"stream from {s.broken} cut after {s.after_chars} chars ({s.failure.value})"
                    for s in exchange.splices]
        if exchange.served_by is None:
            self.tally.note("; ".join(reasons) + " -> no provider could answer")
        elif reasons:
            self.tally.note("; ".join(reasons) + f" -> answered by {exchange.served_by}")


async def client_request(http: httpx.AsyncClient, dialect: str, stream: bool, n: int) -> tuple[bool, dict[str, str]]:
    """One request as a client would send it; True when the client got a complete, good answer."""
    content = f"Request {n}: summarise the incident so far."
    if dialect == "anthropic":
        path = "/v1/messages"
        body: dict[str, Any] = {"model": ROUTE, "max_tokens": 60, "stream": stream,
                                "messages": [{"role": "user", "content": content}]}
        headers = {"x-api-key": DEMO_KEY, "anthropic-version": "2023-06-01"}
    else:
        path = "/v1/chat/completions"
        body = {"model": ROUTE, "max_tokens": 60, "stream": stream, "messages": [{"role": "user", "content": content}]}
        headers = {"authorization": f"Bearer {DEMO_KEY}"}
    if not stream:
        response = await http.post(path, json=body, headers=headers)
        if response.status_code != 200:
            return False, dict(response.headers)
        data = response.json()
        good = bool(data.get("content") or data.get("choices", [{}])[0].get("message", {}).get("content"))
        return good, dict(response.headers)
    async with http.stream("POST", path, json=body, headers=headers) as response:
        if response.status_code != 200:
            await response.aread()
            return False, dict(response.headers)
        text = ""
        async for chunk in response.aiter_text():
            text += chunk
    complete = "event: message_stop" in text if dialect == "anthropic" else "data: [DONE]" in text
    return complete and "event: error" not in text, dict(response.headers)


async def traffic(gateway_url: str, tally: Tally, until: float, concurrency: int, interval: float) -> None:
    counter = 0

    async def worker(index: int) -> None:
        nonlocal counter
        async with httpx.AsyncClient(base_url=gateway_url, timeout=60) as http:
            while time.monotonic() < until:
                counter += 1
                n = counter
                dialect, stream = SHAPES[n % len(SHAPES)]
                tally.sent += 1
                try:
                    good, headers = await client_request(http, dialect, stream, n)
                except httpx.HTTPError as error:
                    good, headers = False, {}
                    tally.note(f"client {dialect}: {type(error).__name__}")
                if good:
                    tally.ok += 1
                    tally.served_by[headers.get("x-outlast-served-by", "?")] += 1
                    if headers.get("x-outlast-fallback") == "true":
                        tally.failed_over += 1
                else:
                    tally.failed += 1
                    tally.note(f"CLIENT SAW A FAILURE ({dialect}, {'stream' if stream else 'json'})")
                await asyncio.sleep(interval)

    await asyncio.gather(*(worker(i) for i in range(concurrency)))


async def watch_simulator(sim_url: str, tally: Tally, until: float) -> None:
    """Samples the scenario clock and the simulated vendor's own status page."""
    async with httpx.AsyncClient(base_url=sim_url, timeout=5) as http:
        while time.monotonic() < until:
            with contextlib.suppress(httpx.HTTPError, ValueError, KeyError, TypeError):
                state = (await http.get("/_sim/state")).json()
                clock = state["clock"]
                tally.clock = (time.monotonic(), float(clock["seconds"]), clock["wall"][11:19] + " UTC")
                tally.scenario_start = _parse_time(clock["start"])
                tally.scenario_phase = str((state.get("scenario") or {}).get("phase") or "")
                summary = (await http.get("/anthropic/status/api/v2/summary.json")).json()
                tally.vendor_status = summary["status"]["description"]
                incidents = summary.get("incidents") or []
                if incidents:
                    latest = incidents[0]
                    tally.vendor_status += f" ({latest['name']}: {latest['status']})"
                if tally.vendor_ack is None and incidents:
                    tally.vendor_ack = _parse_time(incidents[-1]["created_at"])
                    tally.note(f"vendor status page now says: {tally.vendor_status}")
            await asyncio.sleep(0.25)


def scenario_seconds_now(tally: Tally, time_scale: float) -> float | None:
    if tally.clock is None:
        return None
    sampled_at, seconds, _ = tally.clock
    return seconds + (time.monotonic() - sampled_at) * time_scale


def _parse_time(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


def stored_exchanges(directory: Path | None) -> int | None:
    """How many exchanges the demo's store holds (None when it has none to read)."""
    if directory is None or not (directory / "outlast.db").exists():
        return None
    from outlast.store import store_url
    from outlast.store.sql import SqlStore

    store = SqlStore(store_url(None, directory))
    try:
        return store.stats().exchanges
    finally:
        store.close()


def _span(delta: timedelta) -> str:
    seconds = max(0, round(delta.total_seconds()))
    return f"{seconds // 60} min {seconds % 60:02d} s" if seconds >= 60 else f"{seconds} s"


def summary_lines(tally: Tally) -> list[str]:
    ran = (tally.finished or time.monotonic()) - tally.started
    unfinished = tally.sent - tally.ok - tally.failed if tally.interrupted else 0
    lines = [
        f"ran for:                       {ran:.0f} s" + (" (stopped by Ctrl-C)" if tally.interrupted else ""),
        f"requests sent:                 {tally.sent}" + (f" ({unfinished} cut short by Ctrl-C)" if unfinished else ""),
        f"failed, as clients saw them:   {tally.failed}",
        f"answered after a failover:     {tally.failed_over}",
        "served by:                     " + (", ".join(f"{k} {v}" for k, v in tally.served_by.most_common()) or "-"),
    ]
    stored = stored_exchanges(tally.data_dir)
    if stored is not None and tally.data_dir is not None:
        lines.append(f"exchanges stored:              {stored}, browse them with "
                     f"OUTLAST_DATA_DIR={tally.data_dir} outlast conversations list")
    first = failed = tally.first_failure()
    incident = tally.incident()
    if incident is not None:
        first = datetime.fromtimestamp(incident.opened_at, UTC)
        # Against the first failure clients' requests met (the outage's real onset, as far as traffic
        # shows it), not the detector's own estimate of the onset.
        since = f"{_span(first - failed)} after the first failed request ({failed:%H:%M:%S})" \
            if failed is not None else "no failed request seen"
        lines.append(f"outlast detected the outage:   {first:%H:%M:%S} UTC (simulated), {since}: "
                     f"{incident.title} ({incident.status})")
    elif first is not None:
        lines.append(f"outlast saw the first failure: {first:%H:%M:%S} UTC (simulated)")
    if tally.vendor_ack is not None:
        lines.append(f"vendor status page said so:    {tally.vendor_ack:%H:%M:%S} UTC (simulated)")
    if first is not None and tally.vendor_ack is not None:
        lead = (tally.vendor_ack - first).total_seconds() / 60
        if lead >= 0:
            lines.append(f"outlast knew {lead:.0f} simulated minutes before the vendor said so")
        else:  # a run too short to see the outage begin
            lines.append(f"the vendor said so {-lead:.0f} simulated minutes before outlast saw a failure")
    return lines


def render_view(tally: Tally, options: DemoOptions, gateway_url: str, sim_url: str) -> Any:
    from rich.console import Group
    from rich.panel import Panel
    from rich.table import Table

    head = Table.grid(padding=(0, 2))
    head.add_row("scenario", f"{options.scenario}   simulated time {tally.clock_label()}   "
                             f"phase {tally.scenario_phase}")
    head.add_row("gateway", f"{gateway_url}   (metrics at {gateway_url}/metrics, health at {gateway_url}/healthz)")
    head.add_row("dashboard", f"{gateway_url}/ui/   (sign in with the key {DEMO_KEY})   status page "
                              f"{gateway_url}/status")
    head.add_row("simulator", f"{sim_url}   (state at {sim_url}/_sim/state)")
    head.add_row("vendor page", tally.vendor_status)
    incident = tally.incident()
    if incident is not None:
        head.add_row("outlast says", f"{incident.title}: {incident.status} "
                                     f"(opened {datetime.fromtimestamp(incident.opened_at, UTC):%H:%M:%S} UTC)")
    else:
        head.add_row("outlast says", "no incident")
    clients = Table(title="what clients saw", expand=True)
    for column in ("sent", "ok", "failed", "failed over"):
        clients.add_column(column, justify="right")
    clients.add_row(str(tally.sent), f"[green]{tally.ok}[/]", f"[red]{tally.failed}[/]" if tally.failed else "0",
                    f"[yellow]{tally.failed_over}[/]")
    served = Table(title="who answered", expand=True)
    served.add_column("provider/model")
    served.add_column("answers", justify="right")
    for target, count in tally.served_by.most_common():
        served.add_row(target, str(count))
    failures = Table(title="upstream failures outlast absorbed", expand=True)
    failures.add_column("target and failure class")
    failures.add_column("count", justify="right")
    for key, count in tally.upstream_failures.most_common(6):
        failures.add_row(key, str(count))
    log = "\n".join(tally.log) or "waiting for traffic..."
    return Group(Panel(head, title="outlast demo"), clients, served, failures, Panel(log, title="events"))


@dataclass
class DemoOptions:
    duration: float = 120.0
    scenario: str = "june-2-2026"
    sim_port: int | None = None
    gateway_port: int | None = None
    concurrency: int = 4
    interval: float = 0.05
    ui: bool = True
    seed: int = 0
    data_dir: Path | None = None


def where_lines(gateway_url: str, sim_url: str) -> list[str]:
    """Where to look while the demo runs: printed at the start, with or without the live view."""
    return [
        f"gateway:    {gateway_url}   (OpenAI SDKs: base_url {gateway_url}/v1, Anthropic SDKs: {gateway_url}; "
        f"key {DEMO_KEY})",
        f"dashboard:  {gateway_url}/ui/   (sign in with the key {DEMO_KEY})",
        f"status:     {gateway_url}/status   (Statuspage API: {gateway_url}/api/v2/summary.json)",
        f"simulator:  {sim_url}   (state at {sim_url}/_sim/state)",
    ]


def run_demo(options: DemoOptions, console: Any = None, tally: Tally | None = None) -> Tally:
    """Run the whole demo and return its tally (``tally``, when given, is filled in as it goes).
    Ctrl-C during the run ends it early: everything started is shut down and the tally, marked
    ``interrupted``, is returned. A Ctrl-C while starting or stopping is raised through."""
    from rich.console import Console

    from outlast.sim.app import build_app
    from outlast.sim.scenario import load_scenario
    from outlast.sim.server import SimHttpProtocol

    console = console or Console()
    scenario = load_scenario(options.scenario)
    # The live view shows every failure; log lines would only scribble over it.
    logging.getLogger("outlast").addHandler(logging.NullHandler())
    logging.getLogger("outlast").propagate = False
    time_scale = max(1.0, scenario.duration / options.duration) if scenario.duration else None
    tally = tally or Tally()
    # The demo records into a store of its own, fresh each run, never the user's.
    demo_dir = options.data_dir or data_dir() / "demo"
    shutil.rmtree(demo_dir, ignore_errors=True)
    demo_dir.mkdir(parents=True)
    tally.data_dir = demo_dir
    with BackgroundServer(build_app(scenario, seed=options.seed, time_scale=time_scale),
                          port=options.sim_port, log_level="critical", http=SimHttpProtocol) as sim:
        httpx.post(f"{sim.url}/_sim/pace", json={"ttft_ms": 120, "tokens_per_s": 400}, timeout=5)
        def simulated_now() -> float:
            seconds = scenario_seconds_now(tally, time_scale or 1.0)
            if seconds is None or tally.scenario_start is None:
                return time.time()
            return tally.scenario_start.timestamp() + seconds

        gateway = build_gateway(validate(demo_config(sim.url), source="demo"), data_directory=demo_dir,
                                health_clock=simulated_now)
        tally.health = gateway.health_service
        if tally.health is not None:  # ticks and feed polls in real seconds, for simulated time
            tally.health.interval = max(0.02, tally.health.config.tick / (time_scale or 1.0))
            tally.health.feeds.interval = max(0.25, tally.health.config.feed_interval / (time_scale or 1.0))
        gateway.router.listeners.append(
            DemoListener(tally, lambda: scenario_seconds_now(tally, time_scale or 1.0)))
        with BackgroundServer(gateway, port=options.gateway_port, log_level="critical") as server:
            for line in where_lines(server.url, sim.url):
                console.print(line, highlight=False, soft_wrap=True)
            tally.started = time.monotonic()
            until = tally.started + options.duration

            async def main() -> None:
                jobs = [traffic(server.url, tally, until, options.concurrency, options.interval),
                        watch_simulator(sim.url, tally, until)]
                if options.ui:
                    jobs.append(_live(tally, options, server.url, sim.url, until, console))
                await asyncio.gather(*jobs)

            try:
                asyncio.run(main())
            except KeyboardInterrupt:  # asyncio.run has cancelled the traffic; the servers stop below
                tally.interrupted = True
            tally.finished = time.monotonic()
    return tally


async def _live(tally: Tally, options: DemoOptions, gateway_url: str, sim_url: str, until: float,
                console: Any) -> None:
    from rich.live import Live

    with Live(render_view(tally, options, gateway_url, sim_url), console=console, refresh_per_second=4,
              screen=False) as live:
        while time.monotonic() < until:
            live.update(render_view(tally, options, gateway_url, sim_url))
            await asyncio.sleep(0.25)
        live.update(render_view(tally, options, gateway_url, sim_url))
