"""CPU time a gateway spends per request: a figure that holds on a shared, noisy machine.

Wall-clock latency and req/s move with whatever else the machine is doing; the CPU seconds a process
consumes per request barely do. This loads each system with wrk through the nginx fixed upstream and
reads the gateway's CPU time (user + system, the process and every child it started, e.g. outlast's
ingester) from /proc before and after, over several repetitions:

    python benchmarks/cpu_per_request.py                       # floor and outlast's variants, 16 connections
    python benchmarks/cpu_per_request.py --systems floor,outlast --reps 5 --duration 4

The ratio column is CPU per request against the aiohttp floor measured in the same run. At one core,
``1e6 / µs per request`` is the most req/s a system can serve, so a ratio of 2 means half the floor's
throughput at saturation. A system's CPU counts until the gateway core is quiet again after the load
(harness.procs.settle): outlast's ingester, a niced child, stores most of a load run's journal after it, and
that is part of what a request costs; "of it later" says how much was spent so. "cores busy" is CPU seconds
per second of load, during the load: below 1, the gateway sat idle part of the time, waiting (on its
upstream, its disk, or a thread) rather than computing.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
from collections.abc import Sequence
from pathlib import Path

from harness import systems
from harness.nginx import start_upstream
from harness.procs import LOAD_CORE, Children, free_port, pin_self, settle
from harness.systems import OUTLAST_VARIANTS, Target
from harness.wrk import run_wrk, write_script

TICKS = os.sysconf("SC_CLK_TCK")


def descendants(pid: int) -> list[int]:
    found = [pid]
    for candidate in found:
        try:
            children = Path(f"/proc/{candidate}/task/{candidate}/children").read_text().split()
        except OSError:
            continue
        found.extend(int(c) for c in children)
    return found


def cpu_seconds(pid: int) -> float:
    """User + system CPU of ``pid`` and its live descendants (reaped children included via cutime/cstime)."""
    total = 0
    for each in descendants(pid):
        try:
            fields = Path(f"/proc/{each}/stat").read_text().rpartition(")")[2].split()
        except OSError:
            continue
        # fields[11..14] = utime, stime, cutime, cstime (the stat fields 14..17, after pid and comm)
        total += sum(int(f) for f in fields[11:15])
    return total / TICKS


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter, epilog=__doc__)
    parser.add_argument("--systems", default="floor," + ",".join(v.name for v in OUTLAST_VARIANTS))
    parser.add_argument("--reps", type=int, default=3)
    parser.add_argument("--duration", type=float, default=4.0)
    parser.add_argument("--connections", type=int, default=16)
    parser.add_argument("--stream", action="store_true", help="streamed requests")
    args = parser.parse_args(argv)
    names = [n.strip() for n in args.systems.split(",") if n.strip()]
    variants = {v.name: v for v in OUTLAST_VARIANTS}

    pin_self(LOAD_CORE)
    results: dict[str, list[float]] = {n: [] for n in names}
    rates: dict[str, list[float]] = {n: [] for n in names}
    busy: dict[str, list[float]] = {n: [] for n in names}  # CPU seconds per second of load
    later: dict[str, list[float]] = {n: [] for n in names}  # µs per request spent after the load
    with tempfile.TemporaryDirectory(prefix="outlast-cpu-") as workdir, Children(Path(workdir)) as children:
        upstream_port = free_port()
        start_upstream(children, upstream_port)
        serve_help = systems.outlast_serve_help()
        targets: dict[str, tuple[Target, int]] = {}
        for name in names:
            target = (systems.floor(children, upstream_port) if name == "floor"
                      else systems.outlast(children, upstream_port, variants[name], serve_help))
            targets[name] = (target, children.get(name).proc.pid)
        for rep in range(args.reps):
            for name in names:
                target, pid = targets[name]
                url = target.stream_url if args.stream else target.url
                script = write_script(Path(workdir) / f"{name}.lua", target.body(args.stream),
                                      target.request_headers())
                if rep == 0:
                    run_wrk(url, script, args.connections, 1.0)  # warm-up
                settle()
                before = cpu_seconds(pid)
                result = run_wrk(url, script, args.connections, args.duration)
                during = cpu_seconds(pid) - before
                settle()  # what the load left for later (outlast's ingester) is the system's too
                spent = cpu_seconds(pid) - before
                if not result.ok or result.requests == 0:
                    print(f"{name}: errors in the load run ({result.as_dict()})", file=sys.stderr)
                    return 1
                results[name].append(spent / result.requests * 1e6)
                rates[name].append(result.rps)
                busy[name].append(during / args.duration)
                later[name].append((spent - during) / result.requests * 1e6)
    floor = statistics.median(results["floor"]) if "floor" in results else None
    print(f"{'system':<22} {'CPU µs/request':>15} {'x floor':>8} {'req/s':>8} {'cores busy':>10} {'of it later':>11}   "
          f"(medians of {args.reps} x {args.duration:g} s, {args.connections} connections"
          f"{', streamed' if args.stream else ''})")
    for name in names:
        median = statistics.median(results[name])
        ratio = f"{median / floor:.2f}" if floor else "-"
        print(f"{name:<22} {median:>15.0f} {ratio:>8} {statistics.median(rates[name]):>8.0f}"
              f" {statistics.median(busy[name]):>10.2f} {statistics.median(later[name]):>11.0f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
