"""nginx as the fixed-answer upstream and as the reverse-proxy baseline, each a foreground child.

The upstream answers ``POST <prefix>/v1/chat/completions`` with one fixed ``chat.completion`` JSON, and
``POST /stream/v1/chat/completions`` with one fixed SSE body (chunks, a usage chunk, ``data: [DONE]``).
Streaming is chosen by path, not by the request body, because nginx's ``return`` never reads the body
and gateways forward neither arbitrary headers nor paths: each gateway is given a second model whose
base URL ends in ``/stream/v1``.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

from harness.procs import GATEWAY_CORE, LOAD_CORE, Child, Children, wait_http

MODEL = "bench-model"
CREATED = 1_700_000_000

COMPLETION = {
    "id": "chatcmpl-bench",
    "object": "chat.completion",
    "created": CREATED,
    "model": MODEL,
    "choices": [{"index": 0, "message": {"role": "assistant", "content": "Hello from the benchmark upstream."},
                 "logprobs": None, "finish_reason": "stop"}],
    "usage": {"prompt_tokens": 8, "completion_tokens": 7, "total_tokens": 15},
}


def _chunk(delta: dict[str, object], finish: str | None = None, usage: dict[str, int] | None = None,
           choices: bool = True) -> str:
    body: dict[str, object] = {"id": "chatcmpl-bench", "object": "chat.completion.chunk", "created": CREATED,
                               "model": MODEL,
                               "choices": [{"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish}]
                               if choices else []}
    if usage is not None:
        body["usage"] = usage
    return "data: " + json.dumps(body, separators=(",", ":")) + "\n\n"


SSE_BODY = "".join([
    _chunk({"role": "assistant", "content": ""}),
    *(_chunk({"content": word}) for word in ("Hello", " from", " the", " benchmark", " upstream", ".")),
    _chunk({}, finish="stop"),
    _chunk({}, usage={"prompt_tokens": 8, "completion_tokens": 7, "total_tokens": 15}, choices=False),
    "data: [DONE]\n\n",
])


def nginx_binary() -> str | None:
    return shutil.which("nginx") or next((p for p in ("/usr/sbin/nginx",) if Path(p).exists()), None)


def _quote(text: str) -> str:
    """A single-quoted nginx string (nginx understands \\n, \\' and \\\\ inside quotes)."""
    return "'" + text.replace("\\", "\\\\").replace("'", "\\'").replace("\n", "\\n") + "'"


def _common(prefix: Path) -> str:
    temp = "\n".join(f"  {kind}_temp_path {prefix / kind};"
                     for kind in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi"))
    return f"""daemon off;
worker_processes 1;
pid {prefix / "nginx.pid"};
error_log {prefix / "error.log"} warn;
events {{ worker_connections 4096; }}
http {{
  access_log off;
  keepalive_requests 10000000;
  keepalive_timeout 120s;
{temp}
"""


def upstream_conf(prefix: Path, port: int) -> str:
    return _common(prefix) + f"""  server {{
    listen 127.0.0.1:{port} backlog=4096;
    location = /v1/chat/completions {{
      default_type application/json;
      return 200 {_quote(json.dumps(COMPLETION, separators=(",", ":")))};
    }}
    location = /stream/v1/chat/completions {{
      default_type text/event-stream;
      add_header Cache-Control no-cache;
      return 200 {_quote(SSE_BODY)};
    }}
    location / {{ return 404; }}
  }}
}}
"""


def reverse_proxy_conf(prefix: Path, port: int, upstream_port: int) -> str:
    return _common(prefix) + f"""  upstream bench_upstream {{
    server 127.0.0.1:{upstream_port};
    keepalive 64;
    keepalive_requests 10000000;
  }}
  server {{
    listen 127.0.0.1:{port} backlog=4096;
    proxy_http_version 1.1;
    proxy_set_header Connection "";
    location /stream/ {{
      proxy_buffering off;
      proxy_pass http://bench_upstream;
    }}
    location / {{ proxy_pass http://bench_upstream; }}
  }}
}}
"""


def start_nginx(children: Children, name: str, conf: str, port: int, *, core: int) -> Child:
    binary = nginx_binary()
    if binary is None:
        raise FileNotFoundError("nginx is not installed (apt-get install -y nginx, or benchmarks/setup.sh)")
    prefix = children.workdir / name
    prefix.mkdir(parents=True, exist_ok=True)
    conf_path = prefix / "nginx.conf"
    conf_path.write_text(conf)
    child = children.start(name, [binary, "-p", str(prefix), "-e", str(prefix / "error.log"),
                                  "-c", str(conf_path)], core=core)
    wait_http(child, f"http://127.0.0.1:{port}/", timeout=10)
    return child


def start_upstream(children: Children, port: int) -> Child:
    return start_nginx(children, "upstream", upstream_conf(children.workdir / "upstream", port), port,
                       core=LOAD_CORE)


def start_reverse_proxy(children: Children, port: int, upstream_port: int) -> Child:
    conf = reverse_proxy_conf(children.workdir / "nginx-proxy", port, upstream_port)
    return start_nginx(children, "nginx-proxy", conf, port, core=GATEWAY_CORE)
