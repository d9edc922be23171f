"""Child processes the benchmarks start: pinned to a core, in their own process group, always reaped.

Every server is started through :class:`Children`, used as a context manager, so that an exception,
Ctrl-C or a failed start still ends every process group it started, and nothing else.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

# The gateway under test gets core 0; the load generator, the upstream and this driver share core 1.
# OUTLAST_BENCH_GATEWAY_CORE=1 swaps them: e.g. to put the gateway on the core that takes the disk's
# interrupts (/proc/interrupts), where a journal fsync costs less (docs/benchmarks.md).
GATEWAY_CORE = int(os.environ.get("OUTLAST_BENCH_GATEWAY_CORE", "0"))
if GATEWAY_CORE not in (0, 1):
    raise SystemExit(f"OUTLAST_BENCH_GATEWAY_CORE must be 0 or 1, not {GATEWAY_CORE}")
LOAD_CORE = 1 - GATEWAY_CORE


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def pin_self(core: int) -> None:
    """Pin this process (and so every child started without taskset) to one core, when possible."""
    if hasattr(os, "sched_setaffinity") and core < (os.cpu_count() or 1):
        os.sched_setaffinity(0, {core})


def pinned(argv: Sequence[str], core: int) -> list[str]:
    """``argv`` under ``taskset -c core``; unpinned on a machine with fewer cores or without taskset."""
    if shutil.which("taskset") and core < (os.cpu_count() or 1):
        return ["taskset", "-c", str(core), *argv]
    return list(argv)


@dataclass
class Child:
    name: str
    proc: subprocess.Popen[bytes]
    log: Path

    def tail(self, lines: int = 30) -> str:
        try:
            text = self.log.read_text(errors="replace")
        except OSError:
            return ""
        return "\n".join(text.splitlines()[-lines:])


@dataclass
class Children:
    """Starts servers in their own sessions and kills their whole process groups on exit."""

    workdir: Path
    started: list[Child] = field(default_factory=list)

    def start(self, name: str, argv: Sequence[str], *, core: int, env: Mapping[str, str] | None = None,
              cwd: Path | None = None) -> Child:
        log = self.workdir / f"{name}.log"
        full_env = {**os.environ, **(env or {})}
        with log.open("wb") as out:
            proc = subprocess.Popen(pinned(argv, core), stdout=out, stderr=subprocess.STDOUT, env=full_env,
                                    cwd=cwd or self.workdir, start_new_session=True)
        child = Child(name, proc, log)
        self.started.append(child)
        return child

    def stop(self, child: Child, grace: float = 5.0) -> None:
        if child.proc.poll() is None:
            _signal_group(child.proc.pid, signal.SIGTERM)
            try:
                child.proc.wait(grace)
            except subprocess.TimeoutExpired:
                pass
        # Kill what is left of the group too (workers the leader spawned), then reap the leader.
        _signal_group(child.proc.pid, signal.SIGKILL)
        try:
            child.proc.wait(grace)
        except subprocess.TimeoutExpired:
            pass
        if child in self.started:
            self.started.remove(child)

    def get(self, name: str) -> Child:
        return next(child for child in self.started if child.name == name)

    def stop_all(self) -> None:
        for child in reversed(list(self.started)):
            self.stop(child)

    def __enter__(self) -> Children:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop_all()


def _signal_group(pgid: int, sig: signal.Signals) -> None:
    try:
        os.killpg(pgid, sig)
    except (ProcessLookupError, PermissionError):
        pass


class StartError(RuntimeError):
    pass


def wait_http(child: Child, url: str, timeout: float, headers: Mapping[str, str] | None = None) -> None:
    """Wait until ``url`` answers any HTTP status (the server is accepting), or fail with its log."""
    deadline = time.monotonic() + timeout
    while True:
        if child.proc.poll() is not None:
            raise StartError(f"{child.name} exited with {child.proc.returncode}:\n{child.tail()}")
        try:
            request = urllib.request.Request(url, headers=dict(headers or {}))
            with urllib.request.urlopen(request, timeout=2):
                return
        except urllib.error.HTTPError:
            return  # it answered
        except (urllib.error.URLError, ConnectionError, TimeoutError, OSError):
            pass
        if time.monotonic() > deadline:
            raise StartError(f"{child.name} did not answer {url} within {timeout:.0f} s:\n{child.tail()}")
        time.sleep(0.1)


def core_busy(core: int) -> tuple[int, int]:
    """``(busy, total)`` jiffies of ``core`` so far, from /proc/stat (iowait counts as idle)."""
    prefix = f"cpu{core} "
    with open("/proc/stat") as stat:
        for line in stat:
            if line.startswith(prefix):
                values = [int(v) for v in line.split()[1:]]
                return sum(values) - values[3] - values[4], sum(values)
    raise RuntimeError(f"no {prefix.strip()} in /proc/stat")


def settle(core: int = GATEWAY_CORE, *, quiet: float = 0.1, window: float = 0.25, timeout: float = 60.0) -> float:
    """Wait until ``core`` is quiet (busy less than ``quiet`` of a ``window``): work a system put off
    during a load run (outlast's ingester, niced, stores the journal once the gateway is idle) is done
    before the next run begins, so no system is measured while another catches up, and a system's
    deferred work is counted as its own. Returns the seconds waited (``timeout`` at most)."""
    if not Path("/proc/stat").exists():
        return 0.0
    started = time.monotonic()
    while time.monotonic() - started < timeout:
        busy, total = core_busy(core)
        time.sleep(window)
        busy2, total2 = core_busy(core)
        if total2 > total and (busy2 - busy) / (total2 - total) < quiet:
            break
    return time.monotonic() - started
