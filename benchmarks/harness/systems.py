"""The systems under test: how each is configured against the nginx upstream, started and addressed.

Every gateway runs on the gateway core; ``direct`` is the load generator straight at the upstream.
Each :class:`Target` knows the URL and headers for a plain request and for a streamed one.
"""

from __future__ import annotations

import json
import os
import secrets
import subprocess
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from harness.nginx import MODEL, start_reverse_proxy
from harness.procs import GATEWAY_CORE, LOAD_CORE, Child, Children, free_port, pinned, wait_http

HERE = Path(__file__).resolve().parent.parent
REPO = HERE.parent
STREAM_MODEL = "bench-stream"
CHAT = "/v1/chat/completions"
STREAM_CHAT = "/stream/v1/chat/completions"  # the upstream's streaming answer, for path-forwarding proxies
OUTLAST_KEY = "sk-outlast-bench"
UPSTREAM_KEY = "sk-upstream-bench"
LLVENV = Path(os.environ.get("LLVENV", "/tmp/llvenv"))


@dataclass(frozen=True)
class Target:
    name: str
    base: str
    headers: Mapping[str, str] = field(default_factory=dict)
    model: str = MODEL
    stream_model: str = MODEL
    stream_path: str = STREAM_CHAT
    version: str = ""

    @property
    def url(self) -> str:
        return self.base + CHAT

    @property
    def stream_url(self) -> str:
        return self.base + self.stream_path

    def body(self, stream: bool = False) -> str:
        document: dict[str, object] = {"model": self.stream_model if stream else self.model,
                                       "messages": [{"role": "user", "content": "hi"}], "max_tokens": 16}
        if stream:
            document["stream"] = True
        return json.dumps(document, separators=(",", ":"))

    def request_headers(self) -> dict[str, str]:
        return {"Content-Type": "application/json", **self.headers}


class Unavailable(RuntimeError):
    """A system that cannot run here; the benchmark says so and goes on without it."""


def _launch(children: Children, name: str, argv: Sequence[str], *, env: Mapping[str, str] | None = None,
            cwd: Path | None = None, profiler: Sequence[str] = ()) -> Child:
    """Start a gateway on the gateway core; under ``profiler`` (e.g. ``py-spy record ... --``) when given,
    with the profiler itself on the load core so that its sampling does not steal the gateway's core."""
    if profiler:
        return children.start(name, [*profiler, *pinned(argv, GATEWAY_CORE)], core=LOAD_CORE, env=env, cwd=cwd)
    return children.start(name, argv, core=GATEWAY_CORE, env=env, cwd=cwd)


def direct(upstream_port: int) -> Target:
    return Target("direct", f"http://127.0.0.1:{upstream_port}")


def nginx_proxy(children: Children, upstream_port: int) -> Target:
    port = free_port()
    start_reverse_proxy(children, port, upstream_port)
    return Target("nginx", f"http://127.0.0.1:{port}", version=_nginx_version())


def floor(children: Children, upstream_port: int, profiler: Sequence[str] = ()) -> Target:
    port = free_port()
    child = _launch(children, "floor", [sys.executable, str(HERE / "floor_proxy.py"), "--port", str(port),
                                        "--upstream", f"http://127.0.0.1:{upstream_port}"], profiler=profiler)
    wait_http(child, f"http://127.0.0.1:{port}/", timeout=20)
    return Target("floor", f"http://127.0.0.1:{port}", version="aiohttp + uvloop")


def install_litellm(log: Path) -> None:
    """Install LiteLLM's proxy into its own venv with ``setup.sh litellm`` (the pin workaround lives there)."""
    with log.open("wb") as out:
        try:
            done = subprocess.run(["bash", str(HERE / "setup.sh"), "litellm"], stdout=out, stderr=subprocess.STDOUT,
                                  env={**os.environ, "LLVENV": str(LLVENV)}, timeout=900, check=False)
        except subprocess.TimeoutExpired as error:
            raise Unavailable(f"installing LiteLLM into {LLVENV} took over 15 minutes; see {log}") from error
    if done.returncode != 0:
        tail = "\n".join(log.read_text(errors="replace").splitlines()[-15:])
        raise Unavailable(f"installing LiteLLM into {LLVENV} failed (benchmarks/setup.sh litellm):\n{tail}")


def litellm(children: Children, upstream_port: int) -> Target:
    binary = LLVENV / "bin" / "litellm"
    if not binary.exists():
        install_litellm(children.workdir / "litellm-install.log")
    if not binary.exists():
        raise Unavailable(f"LiteLLM's proxy is not in {LLVENV} even after benchmarks/setup.sh litellm")
    key = "sk-litellm-" + secrets.token_hex(16)
    upstream = f"http://127.0.0.1:{upstream_port}"
    # JSON is valid YAML, so no YAML library is needed here.
    config = {
        "model_list": [
            {"model_name": MODEL, "litellm_params": {"model": f"openai/{MODEL}", "api_base": f"{upstream}/v1",
                                                     "api_key": UPSTREAM_KEY}},
            {"model_name": STREAM_MODEL, "litellm_params": {"model": f"openai/{MODEL}",
                                                            "api_base": f"{upstream}/stream/v1",
                                                            "api_key": UPSTREAM_KEY}},
        ],
        "general_settings": {"master_key": key},
        "litellm_settings": {"telemetry": False},
    }
    path = children.workdir / "litellm.yaml"
    path.write_text(json.dumps(config, indent=2))
    port = free_port()
    env = {"LITELLM_LOCAL_MODEL_COST_MAP": "True", "LITELLM_LOG": "ERROR", "LITELLM_TELEMETRY": "False",
           "NO_DOCS": "True"}
    child = children.start("litellm", [str(binary), "--config", str(path), "--host", "127.0.0.1",
                                       "--port", str(port), "--num_workers", "1"], core=GATEWAY_CORE, env=env)
    wait_http(child, f"http://127.0.0.1:{port}/health/liveliness", timeout=120)
    return Target("litellm", f"http://127.0.0.1:{port}", {"Authorization": f"Bearer {key}"},
                  stream_model=STREAM_MODEL, stream_path=CHAT, version=_litellm_version())


@dataclass(frozen=True)
class OutlastVariant:
    """One way of running ``outlast serve``. A variant whose ``requires_flag`` is not in
    ``outlast serve --help`` is skipped, so a variant can be listed before its flag exists."""

    name: str
    args: tuple[str, ...] = ()
    env: Mapping[str, str] = field(default_factory=dict)
    requires_flag: str | None = None
    # Top-level keys merged into the generated outlast.yaml; checked with `outlast config check` first, so
    # a variant whose key outlast does not accept yet is skipped with the validator's message.
    config: Mapping[str, object] = field(default_factory=dict)
    # outlast always asks its upstream for a stream and collects it for a plain caller, so a real vendor
    # answers it with SSE even then; the upstream's /stream/v1 does the same. False points the plain route
    # at the fixed-JSON location instead, which measures outlast's JSON-fallback path.
    sse_upstream: bool = True


OUTLAST_VARIANTS = (
    OutlastVariant("outlast"),
    # Recording switched off (config `record: false`), to see what the recorder costs on the hot path.
    OutlastVariant("outlast-no-record", config={"record": False}),
    # Outage detection switched off (config `health: {enabled: false}`): what the health listener costs.
    OutlastVariant("outlast-no-health", config={"health": {"enabled": False}}),
)
OPTIONAL_OUTLAST_VARIANTS = (
    OutlastVariant("outlast-json-upstream", sse_upstream=False),
)


def outlast_command() -> list[str]:
    script = REPO / ".venv" / "bin" / "outlast"
    if script.exists():
        return [str(script)]
    return [sys.executable, "-m", "outlast.cli"]


def outlast_serve_help() -> str:
    done = subprocess.run([*outlast_command(), "serve", "--help"], capture_output=True, text=True, check=False,
                          timeout=60)
    if done.returncode != 0:
        raise Unavailable(f"`outlast serve --help` failed: {(done.stderr or done.stdout).strip()[-500:]}")
    return done.stdout


def outlast(children: Children, upstream_port: int, variant: OutlastVariant, serve_help: str,
            profiler: Sequence[str] = ()) -> Target:
    if variant.requires_flag is not None and variant.requires_flag not in serve_help:
        raise Unavailable(f"`outlast serve` has no {variant.requires_flag} flag yet")
    workdir = children.workdir / variant.name
    workdir.mkdir(exist_ok=True)
    upstream = f"http://127.0.0.1:{upstream_port}"
    plain_base = f"{upstream}/stream/v1" if variant.sse_upstream else f"{upstream}/v1"
    config = {
        "providers": {
            "up": {"kind": "openai", "base_url": plain_base, "api_key": UPSTREAM_KEY},
            "upstream": {"kind": "openai", "base_url": f"{upstream}/stream/v1", "api_key": UPSTREAM_KEY},
        },
        "routes": {MODEL: [f"up/{MODEL}"], STREAM_MODEL: [f"upstream/{MODEL}"]},
        "master_key": OUTLAST_KEY,
        **variant.config,
    }
    path = workdir / "outlast.yaml"
    path.write_text(json.dumps(config, indent=2))
    if variant.config:
        check = subprocess.run([*outlast_command(), "config", "check", str(path)], capture_output=True, text=True,
                               check=False, timeout=60)
        if check.returncode != 0:
            why = (check.stderr or check.stdout).strip().splitlines()
            raise Unavailable(f"outlast does not accept {', '.join(variant.config)} in its config yet: "
                              f"{why[0] if why else check.returncode}")
    port = free_port()
    env = {"OUTLAST_DATA_DIR": str(workdir / "data"), **variant.env}
    argv = [*outlast_command(), "serve", "--config", str(path), "--host", "127.0.0.1", "--port", str(port),
            "--log-level", "warning", *variant.args]
    child = _launch(children, variant.name, argv, env=env, cwd=workdir, profiler=profiler)
    wait_http(child, f"http://127.0.0.1:{port}/healthz", timeout=60)
    return Target(variant.name, f"http://127.0.0.1:{port}", {"Authorization": f"Bearer {OUTLAST_KEY}"},
                  stream_model=STREAM_MODEL, stream_path=CHAT, version=_outlast_version())


def _nginx_version() -> str:
    done = subprocess.run(["nginx", "-v"], capture_output=True, text=True, check=False)
    return done.stderr.strip().removeprefix("nginx version: ")


def _litellm_version() -> str:
    done = subprocess.run([str(LLVENV / "bin" / "python"), "-c",
                           "import importlib.metadata as m; print(m.version('litellm'))"],
                          capture_output=True, text=True, check=False)
    return done.stdout.strip()


def _outlast_version() -> str:
    done = subprocess.run(["git", "-C", str(REPO), "rev-parse", "--short", "HEAD"], capture_output=True,
                          text=True, check=False)
    if done.returncode != 0:
        return ""
    # outlast runs from the working tree (editable install), which may hold uncommitted changes.
    dirty = subprocess.run(["git", "-C", str(REPO), "status", "--porcelain", "--", "src/outlast"],
                           capture_output=True, text=True, check=False).stdout.strip()
    return f"git {done.stdout.strip()}{' + uncommitted changes in src/outlast' if dirty else ''}"
