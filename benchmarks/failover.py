"""Failover under every simulator fault mode: outlast against LiteLLM's proxy, in the same run.

For each fault mode the primary (``anthropic/claude-opus-4-6`` at ``outlast sim``) fails on every
request and the fallback (``openai/gpt-5.1``) is healthy. Both gateways get the same sequential
OpenAI-format requests (half streaming); we count the requests that failed as the client saw
them (an HTTP error, an error in the stream, no ``[DONE]``, or an answer that is not the
expected text) and the latency each request added over the same gateway's fault-free p50.

LiteLLM is configured the way its documentation recommends for fallbacks: a ``fallbacks`` list
in ``router_settings``, a request ``timeout``, and its default cool-down of failing deployments.

    python benchmarks/failover.py [--requests 30] [--modes status,hang,...] [--json out.json]
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path
from typing import Any

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent))

from harness.procs import GATEWAY_CORE, Children, free_port, wait_http
from harness.systems import LLVENV, install_litellm

MODES: dict[str, dict[str, Any]] = {
    "status": {"status": 529}, "hang": {}, "reset": {}, "cut": {"after_events": 6},
    "stall": {"after_events": 6, "seconds": 30}, "no_terminator": {}, "bad_event": {"at_event": 7},
    "malformed": {}, "blank": {}, "slow": {"ttft_ms": 8000}, "auth": {},
}
TEXT = " ".join(f"word{i}" for i in range(30))
KEY = "sk-bench-failover-0123456789"
TIMEOUT = 5.0  # both gateways: give up on a silent upstream after this long


def outlast_config(sim: str) -> dict[str, Any]:
    timeouts = {"connect": 2, "first_token": TIMEOUT, "idle": 2, "total": 60}
    return {
        "providers": {
            "anthropic": {"kind": "anthropic", "base_url": f"{sim}/anthropic", "api_key": "sk-ant-bench",
                          "timeouts": timeouts, "models": {"claude-opus-4-6": {"prefill": False}}},
            "openai": {"kind": "openai", "base_url": f"{sim}/openai/v1", "api_key": "sk-openai-bench",
                       "timeouts": timeouts},
        },
        "routes": {"bench": {"candidates": ["anthropic/claude-opus-4-6", "openai/gpt-5.1"],
                             "deadlines": {"first_token_floor": 0.25}}},
        "master_key": KEY, "record": False,
    }


def litellm_config(sim: str) -> dict[str, Any]:
    return {
        "model_list": [
            {"model_name": "bench", "litellm_params": {"model": "anthropic/claude-opus-4-6",
                                                       "api_base": f"{sim}/anthropic", "api_key": "sk-ant-bench",
                                                       "timeout": TIMEOUT, "stream_timeout": TIMEOUT}},
            {"model_name": "bench-fallback", "litellm_params": {"model": "openai/gpt-5.1",
                                                                "api_base": f"{sim}/openai/v1",
                                                                "api_key": "sk-openai-bench", "timeout": TIMEOUT}},
        ],
        "router_settings": {"fallbacks": [{"bench": ["bench-fallback"]}], "num_retries": 0},
        "general_settings": {"master_key": KEY},
        "litellm_settings": {"telemetry": False, "request_timeout": TIMEOUT},
    }


def _whole(text: str | None) -> bool:
    """The expected answer, or one continued elsewhere after a break: the primary's first words and
    then the fallback's (the simulator answers a continue-from request with its own words)."""
    return text == TEXT or (text is not None and text.startswith("word0 word1") and len(text) > len(TEXT) // 2)


def one(http: httpx.Client, url: str, stream: bool) -> tuple[bool, float]:
    body = {"model": "bench", "max_tokens": 200, "stream": stream,
            "messages": [{"role": "user", "content": f"[[reply:{TEXT}]]"}]}
    started = time.perf_counter()
    try:
        if not stream:
            response = http.post(f"{url}/v1/chat/completions", json=body)
            ok = response.status_code == 200 and _whole(response.json()["choices"][0]["message"]["content"])
            return ok, time.perf_counter() - started
        text, done, error = [], False, False
        with http.stream("POST", f"{url}/v1/chat/completions", json=body) as response:
            if response.status_code != 200:
                return False, time.perf_counter() - started
            for line in response.iter_lines():
                if line == "data: [DONE]":
                    done = True
                elif line.startswith("data: "):
                    chunk = json.loads(line[6:])
                    if "error" in chunk:
                        error = True
                    for choice in chunk.get("choices") or []:
                        text.append((choice.get("delta") or {}).get("content") or "")
        ok = done and not error and _whole("".join(text))
        return ok, time.perf_counter() - started
    except (httpx.HTTPError, ValueError, KeyError):
        return False, time.perf_counter() - started


def run(url: str, sim: Any, mode: str | None, requests: int) -> tuple[int, list[float]]:
    sim.reset()
    if mode is not None:
        sim.add_fault(vendor="anthropic", model="claude-opus-4-6", mode=mode, rate=1.0, **MODES[mode])
    failures, latencies = 0, []
    with httpx.Client(timeout=120, headers={"authorization": f"Bearer {KEY}"}) as http:
        for i in range(requests):
            ok, seconds = one(http, url, stream=bool(i % 2))
            failures += not ok
            latencies.append(seconds)
    return failures, latencies


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--requests", type=int, default=30)
    parser.add_argument("--modes", default=",".join(MODES))
    parser.add_argument("--json", type=Path)
    parser.add_argument("--workdir", type=Path, default=Path("/tmp/outlast-bench-failover"))
    args = parser.parse_args()
    from outlast.sim.testing import running_sim

    args.workdir.mkdir(parents=True, exist_ok=True)
    results: dict[str, Any] = {}
    with running_sim() as sim, Children(args.workdir) as children:
        gateways = {}
        config = args.workdir / "outlast.json"
        config.write_text(json.dumps(outlast_config(sim.url)))
        port = free_port()
        outlast = str(Path(sys.executable).parent / "outlast")
        child = children.start("outlast", [outlast, "serve", "--config", str(config), "--port", str(port),
                                           "--log-level", "error"], core=GATEWAY_CORE)
        wait_http(child, f"http://127.0.0.1:{port}/healthz", timeout=30)
        gateways["outlast"] = f"http://127.0.0.1:{port}"
        if not (LLVENV / "bin" / "litellm").exists():
            install_litellm(args.workdir / "litellm-install.log")
        ll_config = args.workdir / "litellm.yaml"
        ll_config.write_text(json.dumps(litellm_config(sim.url)))
        port = free_port()
        env = {"LITELLM_LOCAL_MODEL_COST_MAP": "True", "LITELLM_LOG": "ERROR", "LITELLM_TELEMETRY": "False",
               "NO_DOCS": "True"}
        child = children.start("litellm", [str(LLVENV / "bin" / "litellm"), "--config", str(ll_config),
                                           "--host", "127.0.0.1", "--port", str(port), "--num_workers", "1"],
                               core=GATEWAY_CORE, env=env)
        wait_http(child, f"http://127.0.0.1:{port}/health/liveliness", timeout=180)
        gateways["litellm"] = f"http://127.0.0.1:{port}"
        baseline = {}
        for name, url in gateways.items():
            run(url, sim, None, 10)  # warm up (and teach outlast the primary's latency)
            baseline[name] = statistics.median(run(url, sim, None, args.requests)[1])
        print(f"{'mode':<14}{'gateway':<9}{'failed':>8}{'added p50 ms':>14}{'added p99 ms':>14}")
        for mode in args.modes.split(","):
            for name, url in gateways.items():
                run(url, sim, None, 4)  # healthy again between modes, as after an incident
                failures, latencies = run(url, sim, mode, args.requests)
                added50 = (pct(latencies, 0.5) - baseline[name]) * 1000
                added99 = (pct(latencies, 0.99) - baseline[name]) * 1000
                results.setdefault(mode, {})[name] = {"failed": failures, "requests": args.requests,
                                                      "added_p50_ms": round(added50, 1),
                                                      "added_p99_ms": round(added99, 1)}
                print(f"{mode:<14}{name:<9}{failures:>5}/{args.requests:<3}{added50:>13.1f}{added99:>14.1f}",
                      flush=True)
    if args.json:
        args.json.write_text(json.dumps({"baseline_p50_s": baseline, "results": results}, indent=2))


if __name__ == "__main__":
    main()
