"""Profile a gateway's hot path: run it under ``py-spy record`` while wrk loads it through the nginx upstream.

    python benchmarks/profile_gateway.py                          # outlast, 16 connections, 20 s, speedscope
    python benchmarks/profile_gateway.py --stream --format flamegraph
    python benchmarks/profile_gateway.py --system floor            # the aiohttp floor, for comparison

The profile lands in benchmarks/results/profile-<system>-<timestamp>.<json|svg>; open a speedscope file at
https://www.speedscope.app (or `npx speedscope FILE`), an SVG flamegraph in any browser. Needs py-spy in
outlast's venv (benchmarks/setup.sh installs it) and nginx and wrk.
"""

from __future__ import annotations

import argparse
import os
import shutil
import signal
import subprocess
import sys
import tempfile
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path

from harness import systems
from harness.nginx import start_upstream
from harness.procs import LOAD_CORE, Children, StartError, free_port, pin_self
from harness.systems import OUTLAST_VARIANTS, Target, Unavailable
from harness.wrk import run_wrk, write_script

RESULTS = Path(__file__).resolve().parent / "results"


def py_spy() -> str | None:
    beside = Path(sys.executable).parent / "py-spy"
    return str(beside) if beside.exists() else shutil.which("py-spy")


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter, epilog=__doc__)
    parser.add_argument("--system", default="outlast",
                        choices=["floor", *(v.name for v in OUTLAST_VARIANTS)])
    parser.add_argument("--duration", type=float, default=20.0, help="seconds of load while sampling")
    parser.add_argument("--connections", type=int, default=16)
    parser.add_argument("--stream", action="store_true", help="load with streamed requests")
    parser.add_argument("--format", choices=["speedscope", "flamegraph", "raw"], default="speedscope")
    parser.add_argument("--rate", type=int, default=200, help="py-spy samples per second")
    parser.add_argument("--native", action="store_true", help="include native (C) frames")
    parser.add_argument("--output", type=Path, default=None)
    args = parser.parse_args(argv)

    spy = py_spy()
    if spy is None:
        print("py-spy not found: .venv/bin/pip install py-spy (or benchmarks/setup.sh)", file=sys.stderr)
        return 2
    suffix = {"speedscope": "json", "flamegraph": "svg", "raw": "txt"}[args.format]
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    output: Path = args.output or RESULTS / f"profile-{args.system}{'-stream' if args.stream else ''}-{stamp}.{suffix}"
    output.parent.mkdir(parents=True, exist_ok=True)
    profiler = [spy, "record", "--format", args.format, "--rate", str(args.rate), "-o", str(output.resolve()),
                *(["--native"] if args.native else []), "--"]

    pin_self(LOAD_CORE)
    signal.signal(signal.SIGTERM, lambda signum, frame: sys.exit(128 + signum))
    with tempfile.TemporaryDirectory(prefix="outlast-profile-") as tmp, Children(Path(tmp)) as children:
        upstream_port = free_port()
        start_upstream(children, upstream_port)
        try:
            target = _start(children, args.system, upstream_port, profiler)
        except (Unavailable, StartError) as error:
            print(f"cannot start {args.system}: {error}", file=sys.stderr)
            return 1
        body, url = (target.body(stream=True), target.stream_url) if args.stream else (target.body(), target.url)
        script = write_script(Path(tmp) / "load.lua", body, target.request_headers())
        print(f"profiling {args.system} under py-spy: {args.duration:g} s at {args.connections} connections"
              f"{' (streamed)' if args.stream else ''}", file=sys.stderr)
        result = run_wrk(url, script, args.connections, args.duration)
        print(f"load: p50 {result.p50_ms:.3f} ms, p99 {result.p99_ms:.3f} ms, {result.rps:,.0f} req/s "
              f"(slowed by sampling), non-2xx {result.non_2xx}, socket errors {result.socket_errors}",
              file=sys.stderr)
        # Ctrl-C makes py-spy stop sampling and write its file; then the group (the gateway) is ended.
        spy_child = children.get(args.system)
        os.kill(spy_child.proc.pid, signal.SIGINT)
        try:
            spy_child.proc.wait(60)
        except subprocess.TimeoutExpired:
            print("py-spy did not finish writing within 60 s", file=sys.stderr)
    if not output.exists():
        print(f"no profile written; py-spy's log said:\n{spy_child.tail()}", file=sys.stderr)
        return 1
    print(f"profile written to {output}")
    return 0


def _start(children: Children, system: str, upstream_port: int, profiler: list[str]) -> Target:
    if system == "floor":
        return systems.floor(children, upstream_port, profiler=profiler)
    variant = next(v for v in OUTLAST_VARIANTS if v.name == system)
    return systems.outlast(children, upstream_port, variant, systems.outlast_serve_help(), profiler=profiler)


if __name__ == "__main__":
    sys.exit(main())
