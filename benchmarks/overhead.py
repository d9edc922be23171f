"""How much latency and throughput a gateway costs, against baselines measured in the same run.

Starts an nginx upstream that is never the bottleneck (fixed chat.completion JSON, fixed SSE stream), then
measures, with wrk in a closed loop, the upstream directly and through each system: nginx as reverse
proxy, a minimal aiohttp pass-through (the Python floor), LiteLLM's proxy and outlast. Gateways are pinned
to core 0; wrk, the upstream and this driver to core 1. Repetitions are interleaved (every system once per
repetition, in a rotating order) so the shared machine's drift falls on all of them alike, and added
latency is the median of per-repetition differences against ``direct``. Before each run the gateway core
is left to go quiet (harness.procs.settle): outlast's ingester, niced, stores a load run's journal after
it, and that work must not land in the next system's run.

    python benchmarks/overhead.py                      # everything, about 7-9 minutes
    python benchmarks/overhead.py --quick --systems floor,outlast
"""

from __future__ import annotations

import argparse
import json
import math
import os
import signal
import statistics
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from harness import systems
from harness.nginx import nginx_binary, start_upstream
from harness.procs import LOAD_CORE, Children, StartError, free_port, pin_self, settle
from harness.systems import OPTIONAL_OUTLAST_VARIANTS, OUTLAST_VARIANTS, OutlastVariant, Target, Unavailable
from harness.ttfb import TTFBResult, measure_ttfb
from harness.wrk import WrkError, WrkResult, run_wrk, write_script, wrk_binary

RESULTS = Path(__file__).resolve().parent / "results"
ALL_SYSTEMS = ("nginx", "floor", "litellm", "outlast")
# The performance goal of issue 2, as ratios against the Python floor measured in the same run.
GOAL_ADDED_P50 = 2.0  # outlast's added p50 at most 2x the floor's
GOAL_RPS_16 = 0.5  # outlast's req/s at 16 connections at least half the floor's


@dataclass
class Options:
    systems: tuple[str, ...]
    reps: int
    duration: float
    warmup: float
    connections: tuple[int, ...]
    ttfb_requests: int
    variants: tuple[OutlastVariant, ...]
    output: Path | None


@dataclass
class Run:
    """Everything measured, by target name."""

    loads: dict[str, dict[int, list[WrkResult]]] = field(default_factory=dict)
    ttfb: dict[str, list[TTFBResult]] = field(default_factory=dict)
    warmups: dict[str, WrkResult] = field(default_factory=dict)
    skipped: dict[str, str] = field(default_factory=dict)
    errors: list[str] = field(default_factory=list)


# ---------------------------------------------------------------------------------------------- running


def start_targets(children: Children, upstream_port: int, opts: Options, run: Run) -> list[Target]:
    targets = [systems.direct(upstream_port)]
    starters: list[tuple[str, Callable[[], Target]]] = []
    for name in opts.systems:
        if name == "nginx":
            starters.append(("nginx", lambda: systems.nginx_proxy(children, upstream_port)))
        elif name == "floor":
            starters.append(("floor", lambda: systems.floor(children, upstream_port)))
        elif name == "litellm":
            starters.append(("litellm", lambda: systems.litellm(children, upstream_port)))
        elif name == "outlast":
            try:
                serve_help = systems.outlast_serve_help()
            except Unavailable as error:
                run.skipped["outlast"] = str(error)
                continue
            for variant in opts.variants:
                starters.append((variant.name, lambda v=variant, h=serve_help: systems.outlast(  # type: ignore[misc]
                    children, upstream_port, v, h)))
    for name, start in starters:
        say(f"starting {name} ...")
        try:
            target = start()
        except (Unavailable, StartError, FileNotFoundError) as error:
            run.skipped[name] = str(error).strip()
            say(f"  SKIPPED {name}: {run.skipped[name]}")
            continue
        problem = probe(target)
        if problem:
            run.skipped[name] = f"started, but a test request failed: {problem}"
            say(f"  SKIPPED {name}: {run.skipped[name]}")
            continue
        targets.append(target)
    return targets


def probe(target: Target) -> str | None:
    """One plain and one streamed request, checked; a message if either is wrong."""
    for stream in (False, True):
        request = urllib.request.Request(target.stream_url if stream else target.url,
                                         data=target.body(stream).encode(), headers=target.request_headers())
        try:
            with urllib.request.urlopen(request, timeout=30) as response:
                status, text = response.status, response.read().decode(errors="replace")
        except urllib.error.HTTPError as error:
            status, text = error.code, error.read().decode(errors="replace")
        except OSError as error:
            return f"{'stream' if stream else 'plain'} request: {error}"
        if status != 200:
            return f"{'stream' if stream else 'plain'} request answered {status}: {text[:300]}"
        if stream and "[DONE]" not in text:
            return f"stream did not end with [DONE]: {text[-300:]}"
        if not stream and '"choices"' not in text:
            return f"plain answer has no choices: {text[:300]}"
    return None


def measure(targets: Sequence[Target], opts: Options, workdir: Path, run: Run) -> None:
    scripts = {t.name: write_script(workdir / f"{t.name}.lua", t.body(), t.request_headers()) for t in targets}
    for target in targets:
        say(f"warming up {target.name} ({opts.warmup:.0f} s at {max(opts.connections)} connections)")
        run.warmups[target.name] = run_wrk(target.url, scripts[target.name], max(opts.connections), opts.warmup)
        run.loads[target.name] = {c: [] for c in opts.connections}
        run.ttfb[target.name] = []
    for rep in range(opts.reps):
        order = list(targets[rep % len(targets):]) + list(targets[:rep % len(targets)])
        for connections in opts.connections:
            for target in order:
                settle()  # what the previous run put off (outlast's ingester) is not measured here
                try:
                    result = run_wrk(target.url, scripts[target.name], connections, opts.duration)
                except WrkError as error:
                    run.errors.append(f"{target.name} rep {rep + 1} c{connections}: {error}")
                    continue
                run.loads[target.name][connections].append(result)
                flag = "" if result.ok else f"  ERRORS non-2xx={result.non_2xx} socket={result.socket_errors}"
                say(f"rep {rep + 1}/{opts.reps} c={connections:<3} {target.name:<14} p50 {result.p50_ms:8.3f} ms"
                    f"  p99 {result.p99_ms:8.3f} ms  {result.rps:9.0f} req/s{flag}")
        for target in order:
            settle()
            result_t = measure_ttfb(target.stream_url, target.body(stream=True).encode(), target.request_headers(),
                                    opts.ttfb_requests, warmup=5)
            run.ttfb[target.name].append(result_t)
            flag = "" if result_t.ok else f"  ERRORS {result_t.failures}: {result_t.first_failure}"
            say(f"rep {rep + 1}/{opts.reps} ttfb  {target.name:<14} p50 {result_t.p50_ms:8.3f} ms{flag}")


# ---------------------------------------------------------------------------------------------- summary


def _median(values: Sequence[float]) -> float:
    return statistics.median(values) if values else math.nan


def _paired(system: Sequence[Any], direct: Sequence[Any], attr: str) -> float:
    """Median over repetitions of (system - direct), using only repetitions where both ran cleanly."""
    diffs = [getattr(s, attr) - getattr(d, attr) for s, d in zip(system, direct, strict=False) if s.ok and d.ok]
    return _median(diffs)


def summarize(targets: Sequence[Target], run: Run, opts: Options) -> dict[str, dict[str, Any]]:
    summary: dict[str, dict[str, Any]] = {}
    direct_loads = run.loads.get("direct", {})
    for target in targets:
        row: dict[str, Any] = {"version": target.version}
        for c, results in run.loads[target.name].items():
            clean = [r for r in results if r.ok]
            row[f"c{c}"] = {
                "clean_reps": len(clean), "reps": len(results),
                "p50_ms": _median([r.p50_ms for r in clean]), "p99_ms": _median([r.p99_ms for r in clean]),
                "rps": _median([r.rps for r in clean]),
                "added_p50_ms": _paired(results, direct_loads.get(c, []), "p50_ms"),
                "added_p99_ms": _paired(results, direct_loads.get(c, []), "p99_ms"),
                "non_2xx": sum(r.non_2xx for r in results), "socket_errors": sum(r.socket_errors for r in results),
            }
        ttfb = run.ttfb[target.name]
        row["ttfb"] = {"clean_reps": sum(t.ok for t in ttfb), "reps": len(ttfb),
                       "p50_ms": _median([t.p50_ms for t in ttfb if t.ok]),
                       "added_p50_ms": _paired(ttfb, run.ttfb.get("direct", []), "p50_ms"),
                       "failures": sum(t.failures for t in ttfb)}
        summary[target.name] = row
    if "floor" in summary:
        for target in targets:
            summary[target.name]["vs_floor"] = _vs_floor(target.name, run, opts)
    return summary


def _vs_floor(name: str, run: Run, opts: Options) -> dict[str, float]:
    """Ratios against the floor, each the median over repetitions of the ratio within one repetition, so
    that drift of the shared machine between repetitions cancels (every system ran once per repetition)."""
    ratios: dict[str, float] = {}
    direct, floor, mine = run.loads["direct"], run.loads["floor"], run.loads[name]

    def paired(values: list[float]) -> float:
        return _median([v for v in values if not math.isnan(v)])

    for c in opts.connections:
        triples = [(m, f, d) for m, f, d in zip(mine[c], floor[c], direct[c], strict=False) if m.ok and f.ok and d.ok]
        ratios[f"added_p50_c{c}"] = paired([_ratio(m.p50_ms - d.p50_ms, f.p50_ms - d.p50_ms) for m, f, d in triples])
        ratios[f"rps_c{c}"] = paired([_ratio(m.rps, f.rps) for m, f, _ in triples])
    streams = [(m, f, d) for m, f, d in zip(run.ttfb[name], run.ttfb["floor"], run.ttfb["direct"], strict=False)
               if m.ok and f.ok and d.ok]
    ratios["added_ttfb"] = paired([_ratio(m.p50_ms - d.p50_ms, f.p50_ms - d.p50_ms) for m, f, d in streams])
    return ratios


def _ratio(a: float, b: float) -> float:
    return a / b if b > 0 and not math.isnan(a) and not math.isnan(b) else math.nan


def goals(summary: dict[str, dict[str, Any]], opts: Options) -> list[dict[str, Any]]:
    """One verdict per outlast variant. Besides the paired ratio (the verdict), the ratio of the two medians
    is given as a cross-check: when they disagree by more than a quarter the run was too noisy to decide."""
    lo, hi = min(opts.connections), max(opts.connections)
    floor = summary.get("floor")
    verdicts = []
    for name, row in summary.items():
        if not name.startswith("outlast") or "vs_floor" not in row or floor is None:
            continue
        p50 = row["vs_floor"][f"added_p50_c{lo}"]
        rps = row["vs_floor"][f"rps_c{hi}"]
        p50_of_medians = _ratio(row[f"c{lo}"]["added_p50_ms"], floor[f"c{lo}"]["added_p50_ms"])
        rps_of_medians = _ratio(row[f"c{hi}"]["rps"], floor[f"c{hi}"]["rps"])
        verdicts.append({
            "system": name,
            "added_p50_vs_floor": p50, "added_p50_vs_floor_of_medians": p50_of_medians,
            "added_p50_goal": GOAL_ADDED_P50, "added_p50_met": bool(p50 <= GOAL_ADDED_P50),
            "rps_vs_floor": rps, "rps_vs_floor_of_medians": rps_of_medians,
            "rps_connections": hi, "rps_goal": GOAL_RPS_16, "rps_met": bool(rps >= GOAL_RPS_16),
            "noisy": _disagree(p50, p50_of_medians) or _disagree(rps, rps_of_medians),
        })
    return verdicts


def _disagree(a: float, b: float) -> bool:
    return math.isnan(a) or math.isnan(b) or abs(a - b) > 0.25 * max(abs(a), abs(b))


def _fmt(value: float, unit: str = "", digits: int = 2) -> str:
    if value is None or math.isnan(value):
        return "—"
    return f"{value:,.{digits}f}{unit}"


def render(summary: dict[str, dict[str, Any]], run: Run, opts: Options) -> str:
    lo, hi = min(opts.connections), max(opts.connections)
    header = ["system", f"+p50 c{lo}", f"p99 c{lo}", f"req/s c{lo}", f"req/s c{hi}", f"+p50 c{hi}",
              f"p99 c{hi}", "+TTFB", f"+p50 c{lo} ÷floor", f"req/s c{hi} ÷floor", "clean reps"]
    rows = [header]
    for name, row in summary.items():
        a, b, t, vs = row[f"c{lo}"], row[f"c{hi}"], row["ttfb"], row.get("vs_floor", {})
        clean = f"{a['clean_reps']}/{a['reps']} {b['clean_reps']}/{b['reps']} {t['clean_reps']}/{t['reps']}"
        if a["non_2xx"] or a["socket_errors"] or b["non_2xx"] or b["socket_errors"] or t["failures"]:
            clean += (f" ! non-2xx {a['non_2xx'] + b['non_2xx']}, socket {a['socket_errors'] + b['socket_errors']},"
                      f" stream failures {t['failures']}")
        added = name != "direct"
        rows.append([
            name,
            _fmt(a["added_p50_ms"], " ms", 3) if added else f"({_fmt(a['p50_ms'], ' ms', 3)})",
            _fmt(a["p99_ms"], " ms", 3), _fmt(a["rps"], "", 0), _fmt(b["rps"], "", 0),
            _fmt(b["added_p50_ms"], " ms", 3) if added else f"({_fmt(b['p50_ms'], ' ms', 3)})",
            _fmt(b["p99_ms"], " ms", 3),
            _fmt(t["added_p50_ms"], " ms", 3) if added else f"({_fmt(t['p50_ms'], ' ms', 3)})",
            _fmt(vs.get(f"added_p50_c{lo}", math.nan), "x") if added else "",
            _fmt(vs.get(f"rps_c{hi}", math.nan), "x") if added else "",
            clean,
        ])
    widths = [max(len(r[i]) for r in rows) for i in range(len(header))]
    lines = ["  ".join(cell.ljust(w) for cell, w in zip(r, widths, strict=True)).rstrip() for r in rows]
    lines.insert(1, "  ".join("-" * w for w in widths))
    notes = [
        "",
        f"medians of {opts.reps} interleaved repetitions of {opts.duration:g} s (wrk, closed loop); '+' = added over"
        " direct (median of per-repetition differences); direct's own figures in parentheses.",
        "+TTFB = added time to first body byte of a streamed answer, median of per-repetition medians of "
        f"{opts.ttfb_requests} sequential requests. 'clean reps' = load c{lo}, load c{hi}, streaming; runs with"
        " errors are left out of every median. '÷floor' = median over repetitions of the ratio to the floor"
        " within each repetition.",
    ]
    for verdict in goals(summary, opts):
        p50_ok = "met" if verdict["added_p50_met"] else "NOT met"
        rps_ok = "met" if verdict["rps_met"] else "NOT met"
        notes.append(f"goal, {verdict['system']}: added p50 at c{lo} {_fmt(verdict['added_p50_vs_floor'], 'x')} the "
                     f"floor's (<= {GOAL_ADDED_P50:g}x: {p50_ok}; ratio of medians "
                     f"{_fmt(verdict['added_p50_vs_floor_of_medians'], 'x')}); req/s at c{hi} "
                     f"{_fmt(verdict['rps_vs_floor'], 'x')} the floor's (>= {GOAL_RPS_16:g}x: {rps_ok}; ratio of "
                     f"medians {_fmt(verdict['rps_vs_floor_of_medians'], 'x')})")
        if verdict["noisy"]:
            notes.append("  NOISY: the paired ratio and the ratio of medians disagree by more than 25%; the machine "
                         "was too busy to decide - rerun with more --reps")
    for name, why in run.skipped.items():
        notes.append(f"NOT MEASURED {name}: {why}")
    notes.extend(f"ERROR {e}" for e in run.errors)
    return "\n".join(lines + notes)


# ---------------------------------------------------------------------------------------------- main


def say(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def parse(argv: Sequence[str] | None = None) -> Options:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter, epilog=__doc__)
    parser.add_argument("--systems", default=",".join(ALL_SYSTEMS),
                        help=f"comma-separated subset of {','.join(ALL_SYSTEMS)} (direct always runs)")
    parser.add_argument("--reps", type=int, default=None, help="repetitions (default 5; 3 with --quick)")
    parser.add_argument("--duration", type=float, default=None, help="seconds per wrk run (default 6; 2 --quick)")
    parser.add_argument("--warmup", type=float, default=None, help="seconds of warm-up per system (default 3)")
    parser.add_argument("--connections", default="1,16", help="comma-separated connection counts")
    parser.add_argument("--ttfb-requests", type=int, default=None,
                        help="streamed requests per system per repetition (default 40; 15 --quick)")
    parser.add_argument("--outlast-variant", action="append", default=[], metavar="NAME=ARGS",
                        help="also run `outlast serve ARGS` under NAME, e.g. al='--access-log' (repeatable)")
    parser.add_argument("--json-upstream", action="store_true",
                        help="also measure outlast with a plain-JSON upstream answer (its JSON-fallback path)")
    parser.add_argument("--output", type=Path, default=None, help="JSON file (default benchmarks/results/...)")
    parser.add_argument("--quick", action="store_true", help="3 repetitions of 2 s: a smoke test, not a result")
    args = parser.parse_args(argv)
    chosen = tuple(s.strip() for s in args.systems.split(",") if s.strip())
    unknown = set(chosen) - set(ALL_SYSTEMS)
    if unknown:
        parser.error(f"unknown systems {', '.join(sorted(unknown))}; choose from {', '.join(ALL_SYSTEMS)}")
    variants = list(OUTLAST_VARIANTS) + (list(OPTIONAL_OUTLAST_VARIANTS) if args.json_upstream else [])
    for spec in args.outlast_variant:
        name, _, extra = spec.partition("=")
        variants.append(OutlastVariant(name if name.startswith("outlast") else f"outlast-{name}",
                                       tuple(extra.split())))
    reps = args.reps or (3 if args.quick else 5)
    if reps < 3:
        say("note: fewer than 3 repetitions; medians of so few runs are not worth quoting")
    return Options(
        systems=chosen, reps=reps,
        duration=args.duration or (2.0 if args.quick else 6.0),
        warmup=args.warmup or (1.0 if args.quick else 3.0),
        connections=tuple(sorted({int(c) for c in args.connections.split(",")})),
        ttfb_requests=args.ttfb_requests or (15 if args.quick else 40),
        variants=tuple(variants), output=args.output,
    )


def _finite(value: Any) -> Any:
    """The document with NaN (a median of nothing) as null, so the file is strict JSON."""
    if isinstance(value, float) and math.isnan(value):
        return None
    if isinstance(value, dict):
        return {k: _finite(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_finite(v) for v in value]
    return value


def _terminate(signum: int, frame: object) -> None:
    raise SystemExit(128 + signum)  # unwinds through the context managers that stop every child


def environment() -> dict[str, Any]:
    return {"cpus": os.cpu_count(), "loadavg_at_start": os.getloadavg(), "python": sys.version.split()[0],
            "platform": sys.platform}


def main(argv: Sequence[str] | None = None) -> int:
    opts = parse(argv)
    for tool, found in (("nginx", nginx_binary()), ("wrk", wrk_binary())):
        if found is None:
            say(f"{tool} is not installed: apt-get install -y nginx wrk (or benchmarks/setup.sh)")
            return 2
    if (os.cpu_count() or 1) < 2:
        say("note: one CPU only; gateway and load generator will share it and figures will be pessimistic")
    pin_self(LOAD_CORE)
    signal.signal(signal.SIGTERM, _terminate)
    started = datetime.now(UTC)
    env = environment()
    run = Run()
    with tempfile.TemporaryDirectory(prefix="outlast-bench-") as tmp, Children(Path(tmp)) as children:
        workdir = Path(tmp)
        upstream_port = free_port()
        start_upstream(children, upstream_port)
        targets = start_targets(children, upstream_port, opts, run)
        per_run = opts.duration + 0.3
        estimate = len(targets) * (opts.warmup + opts.reps * len(opts.connections) * per_run)
        say(f"measuring {', '.join(t.name for t in targets)}: about {estimate / 60:.1f} min of load")
        t0 = time.monotonic()
        measure(targets, opts, workdir, run)
        say(f"measured in {(time.monotonic() - t0) / 60:.1f} min")
    summary = summarize(targets, run, opts)
    print(render(summary, run, opts))
    document = {
        "benchmark": "overhead", "started": started.isoformat(), "environment": env,
        "options": {"systems": opts.systems, "reps": opts.reps, "duration_s": opts.duration,
                    "warmup_s": opts.warmup, "connections": opts.connections, "ttfb_requests": opts.ttfb_requests},
        "goals": goals(summary, opts), "summary": summary, "skipped": run.skipped, "errors": run.errors,
        "runs": {name: {str(c): [r.as_dict() for r in results] for c, results in by_c.items()}
                 for name, by_c in run.loads.items()},
        "warmups": {name: r.as_dict() for name, r in run.warmups.items()},
        "ttfb_runs": {name: [t.as_dict() for t in results] for name, results in run.ttfb.items()},
    }
    output = opts.output or RESULTS / f"overhead-{started.strftime('%Y%m%dT%H%M%SZ')}.json"
    output.parent.mkdir(parents=True, exist_ok=True)
    output.write_text(json.dumps(_finite(document), indent=2, default=str) + "\n")
    say(f"results written to {output}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
