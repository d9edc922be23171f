"""``running_sim()``: the simulator on a free loopback port, in a background thread with its own event loop.

    with running_sim() as sim:
        client = anthropic.Anthropic(base_url=f"{sim.url}/anthropic", api_key="k")
        sim.add_fault(vendor="anthropic", mode="status", status=529)

The helpers talk to the control API over HTTP, like any other tool would.
"""

from __future__ import annotations

import contextlib
import socket
import threading
import time
from collections.abc import Iterator
from typing import Any

import httpx
import uvicorn

from outlast.sim.app import SimApp, build_app
from outlast.sim.server import make_config


def _free_port(host: str) -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((host, 0))
        return int(s.getsockname()[1])


class RunningSim:
    def __init__(self, app: SimApp, host: str, port: int) -> None:
        self.app = app
        self.host = host
        self.port = port
        self.url = f"http://{host}:{port}"
        self._http = httpx.Client(base_url=self.url, timeout=10)

    def _call(self, method: str, path: str, **kwargs: Any) -> Any:
        response = self._http.request(method, f"/_sim/{path}", **kwargs)
        if response.status_code != 200:
            raise RuntimeError(f"simulator refused {method} /_sim/{path}: {response.status_code} {response.text}")
        return response.json()

    def add_fault(self, **fault: Any) -> dict[str, Any]:
        result: dict[str, Any] = self._call("POST", "faults", json=fault)
        return result

    def clear_faults(self) -> None:
        self._call("DELETE", "faults")

    def faults(self) -> list[dict[str, Any]]:
        result: list[dict[str, Any]] = self._call("GET", "faults")
        return result

    def requests(self, vendor: str | None = None) -> list[dict[str, Any]]:
        result: list[dict[str, Any]] = self._call("GET", "requests", params={"vendor": vendor} if vendor else None)
        return result

    def reset(self) -> None:
        self._call("POST", "reset")

    def advance(self, seconds: float) -> dict[str, Any]:
        result: dict[str, Any] = self._call("POST", "clock", json={"advance": seconds})
        return result

    def set_clock(self, seconds: float) -> dict[str, Any]:
        result: dict[str, Any] = self._call("POST", "clock", json={"set": seconds})
        return result

    def state(self) -> dict[str, Any]:
        result: dict[str, Any] = self._call("GET", "state")
        return result

    def post_status(self, **post: Any) -> dict[str, Any]:
        result: dict[str, Any] = self._call("POST", "status", json=post)
        return result

    def close(self) -> None:
        self._http.close()


@contextlib.contextmanager
def running_sim(scenario: str | None = None, seed: int = 0, time_scale: float | None = None,
                host: str = "127.0.0.1") -> Iterator[RunningSim]:
    app = build_app(scenario, seed=seed, time_scale=time_scale)
    port = _free_port(host)
    server = uvicorn.Server(make_config(app, host, port))
    errors: list[BaseException] = []

    def run() -> None:
        try:
            server.run()
        except BaseException as error:  # reported below
            errors.append(error)

    thread = threading.Thread(target=run, name=f"outlast-sim-{port}", daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started:
        if errors or not thread.is_alive():
            raise RuntimeError(f"simulator failed to start on port {port}: {errors[:1]!r}")
        if time.monotonic() > deadline:
            raise RuntimeError(f"simulator did not start on port {port} within 10 s")
        time.sleep(0.005)
    sim = RunningSim(app, host, port)
    try:
        yield sim
    finally:
        sim.close()
        server.should_exit = True
        thread.join(10)
