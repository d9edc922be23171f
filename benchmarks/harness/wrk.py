"""Closed-loop load with wrk: a Lua script sets the POST body and headers, and its ``done()`` hook prints
the summary and latency percentiles as one JSON line, so nothing is scraped from wrk's human output."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from pathlib import Path

from harness.procs import LOAD_CORE, pinned

_MARK = "WRK_RESULT "

_DONE = r"""
function done(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    '%s{"duration_us":%d,"requests":%d,"bytes":%d,"connect_errors":%d,"read_errors":%d,' ..
    '"write_errors":%d,"status_errors":%d,"timeouts":%d,' ..
    '"p50_us":%d,"p90_us":%d,"p99_us":%d,"mean_us":%.1f,"max_us":%d}\n',
    "__MARK__", summary.duration, summary.requests, summary.bytes, e.connect, e.read, e.write, e.status,
    e.timeout, latency:percentile(50), latency:percentile(90), latency:percentile(99), latency.mean,
    latency.max))
end
""".replace("__MARK__", _MARK)


def _lua_string(text: str) -> str:
    return "'" + text.replace("\\", "\\\\").replace("'", "\\'").replace("\n", "\\n") + "'"


def write_script(path: Path, body: str, headers: Mapping[str, str]) -> Path:
    lines = ['wrk.method = "POST"', f"wrk.body = {_lua_string(body)}"]
    lines += [f"wrk.headers[{_lua_string(k)}] = {_lua_string(v)}" for k, v in headers.items()]
    path.write_text("\n".join(lines) + "\n" + _DONE)
    return path


@dataclass(frozen=True)
class WrkResult:
    connections: int
    duration_s: float
    requests: int
    rps: float
    p50_ms: float
    p90_ms: float
    p99_ms: float
    mean_ms: float
    max_ms: float
    # wrk counts a response with status >= 400 as a "status" error; the rest are socket errors.
    non_2xx: int
    socket_errors: int

    @property
    def ok(self) -> bool:
        return self.non_2xx == 0 and self.socket_errors == 0 and self.requests > 0

    def as_dict(self) -> dict[str, object]:
        return {**asdict(self), "ok": self.ok}


class WrkError(RuntimeError):
    pass


def wrk_binary() -> str | None:
    return shutil.which("wrk")


def run_wrk(url: str, script: Path, connections: int, duration: float, *, timeout_s: int = 10) -> WrkResult:
    binary = wrk_binary()
    if binary is None:
        raise FileNotFoundError("wrk is not installed (apt-get install -y wrk, or benchmarks/setup.sh)")
    # One thread: wrk shares its core with the upstream, and one epoll loop drives 16 connections easily.
    argv = [binary, "-t1", f"-c{connections}", f"-d{max(1, round(duration))}s", f"--timeout={timeout_s}s",
            "-s", str(script), url]
    done = subprocess.run(pinned(argv, LOAD_CORE), capture_output=True, text=True,
                          timeout=duration + timeout_s + 30, check=False)
    match = re.search(re.escape(_MARK) + r"(\{.*\})", done.stdout)
    if done.returncode != 0 or match is None:
        raise WrkError(f"wrk failed ({done.returncode}): {done.stdout[-2000:]} {done.stderr[-2000:]}")
    raw = json.loads(match.group(1))
    seconds = raw["duration_us"] / 1e6
    return WrkResult(
        connections=connections,
        duration_s=seconds,
        requests=raw["requests"],
        rps=raw["requests"] / seconds if seconds else 0.0,
        p50_ms=raw["p50_us"] / 1000,
        p90_ms=raw["p90_us"] / 1000,
        p99_ms=raw["p99_us"] / 1000,
        mean_ms=raw["mean_us"] / 1000,
        max_ms=raw["max_us"] / 1000,
        non_2xx=raw["status_errors"],
        socket_errors=raw["connect_errors"] + raw["read_errors"] + raw["write_errors"] + raw["timeouts"],
    )
