"""How fast ``outlast sim`` answers: non-streaming and streaming requests per second under wrk.

    python benchmarks/sim_throughput.py                 # 16 connections, 3 runs of 5 s each, median reported
    python benchmarks/sim_throughput.py --runs 5 --duration 10
    python benchmarks/sim_throughput.py --baseline      # also the bare servers: uvicorn+httptools vs aiohttp

The simulator runs in its own process (as ``outlast sim`` does), wrk in another.  Needs wrk (Debian: apt-get
install wrk).  The simulator must never be what limits a benchmark: the target is 5,000 non-streaming req/s.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path

CASES = {
    "openai-json": ("/openai/v1/chat/completions", {"authorization": "Bearer sk-bench"},
                    {"model": "gpt-5.1", "max_tokens": 64, "messages": [{"role": "user", "content": "Say hi."}]}),
    "anthropic-json": ("/anthropic/v1/messages", {"x-api-key": "sk-bench", "anthropic-version": "2023-06-01"},
                       {"model": "claude-sonnet-4-6", "max_tokens": 64,
                        "messages": [{"role": "user", "content": "Say hi."}]}),
    "anthropic-stream": ("/anthropic/v1/messages", {"x-api-key": "sk-bench", "anthropic-version": "2023-06-01"},
                         {"model": "claude-sonnet-4-6", "max_tokens": 64, "stream": True,
                          "messages": [{"role": "user", "content": "Say hi."}]}),
    "openai-stream": ("/openai/v1/chat/completions", {"authorization": "Bearer sk-bench"},
                      {"model": "gpt-5.1", "max_tokens": 64, "stream": True,
                       "stream_options": {"include_usage": True},
                       "messages": [{"role": "user", "content": "Say hi."}]}),
}

BASELINES = {
    "uvicorn-httptools": """
import uvicorn
async def app(scope, receive, send):
    if scope["type"] != "http":
        return
    await receive()
    await send({"type": "http.response.start", "status": 200,
                "headers": [(b"content-type", b"application/json"), (b"content-length", b"11")]})
    await send({"type": "http.response.body", "body": b'{"ok":true}'})
uvicorn.run(app, host="127.0.0.1", port=PORT, loop="uvloop", http="httptools", access_log=False,
            log_level="warning", lifespan="off")
""",
    "aiohttp-lowlevel": """
import asyncio, uvloop
from aiohttp import web
async def handler(request):
    await request.read()
    return web.Response(body=b'{"ok":true}', content_type="application/json")
async def main():
    server = web.Server(handler)
    runner = web.ServerRunner(server, access_log=None)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", PORT, backlog=4096).start()
    await asyncio.Event().wait()
uvloop.run(main())
""",
}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_for(port: int, timeout: float = 15.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError(f"nothing listening on port {port} after {timeout} s")


def lua_script(path: str, headers: dict[str, str], body: dict[str, object]) -> str:
    lines = ['wrk.method = "POST"', f"wrk.body = {json.dumps(json.dumps(body))}",
             'wrk.headers["content-type"] = "application/json"']
    lines += [f"wrk.headers[{json.dumps(k)}] = {json.dumps(v)}" for k, v in headers.items()]
    lines += ["", "local errors = 0", "function response(status, headers, body)",
              "  if status ~= 200 then errors = errors + 1 end", "end"]
    return "\n".join(lines) + "\n"


def run_wrk(url: str, script: str | None, connections: int, duration: float, threads: int) -> tuple[float, int]:
    command = ["wrk", f"-t{threads}", f"-c{connections}", f"-d{duration:g}s", "--latency"]
    if script:
        command += ["-s", script]
    output = subprocess.run([*command, url], capture_output=True, text=True, check=True).stdout
    rate = float(re.search(r"Requests/sec:\s+([\d.]+)", output).group(1))  # type: ignore[union-attr]
    non2xx = re.search(r"Non-2xx or 3xx responses:\s+(\d+)", output)
    return rate, int(non2xx.group(1)) if non2xx else 0


def measure(name: str, url: str, script: str | None, args: argparse.Namespace) -> float:
    run_wrk(url, script, args.connections, 1, args.threads)  # warm-up
    rates = []
    for _ in range(args.runs):
        rate, bad = run_wrk(url, script, args.connections, args.duration, args.threads)
        if bad:
            raise RuntimeError(f"{name}: {bad} responses were not 2xx")
        rates.append(rate)
    median = statistics.median(rates)
    print(f"{name:22s} median {median:9.0f} req/s   runs: {', '.join(f'{r:.0f}' for r in rates)}", flush=True)
    return median


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0], epilog=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--connections", type=int, default=16)
    parser.add_argument("--threads", type=int, default=2, help="wrk threads")
    parser.add_argument("--duration", type=float, default=5.0, help="seconds per run")
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--baseline", action="store_true", help="also measure bare uvicorn and aiohttp servers")
    parser.add_argument("--cases", nargs="*", default=list(CASES), choices=list(CASES))
    args = parser.parse_args(argv)
    if shutil.which("wrk") is None:
        print("wrk not found: apt-get install -y wrk", file=sys.stderr)
        return 2
    results: dict[str, float] = {}
    with tempfile.TemporaryDirectory() as tmp:
        if args.baseline:
            for name, source in BASELINES.items():
                port = free_port()
                proc = subprocess.Popen([sys.executable, "-c", source.replace("PORT", str(port))])
                try:
                    wait_for(port)
                    script = Path(tmp, f"{name}.lua")
                    script.write_text(lua_script("/", {}, {"x": 1}))
                    results[name] = measure(name, f"http://127.0.0.1:{port}/", str(script), args)
                finally:
                    proc.terminate()
                    proc.wait(10)
        port = free_port()
        env = {**os.environ, "PYTHONUNBUFFERED": "1"}
        proc = subprocess.Popen([sys.executable, "-c", f"from outlast.sim.server import serve; serve(port={port})"],
                                env=env)
        try:
            wait_for(port)
            for name in args.cases:
                path, headers, body = CASES[name]
                script = Path(tmp, f"{name}.lua")
                script.write_text(lua_script(path, headers, body))
                results[name] = measure(name, f"http://127.0.0.1:{port}{path}", str(script), args)
        finally:
            proc.terminate()
            proc.wait(10)
    print(json.dumps({"connections": args.connections, "runs": args.runs, "duration_s": args.duration,
                      "median_req_per_s": {k: round(v) for k, v in results.items()}}))
    slowest_json = min(v for k, v in results.items() if k.endswith("-json"))
    if slowest_json < 5000:
        print(f"below target: {slowest_json:.0f} non-streaming req/s < 5000", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
