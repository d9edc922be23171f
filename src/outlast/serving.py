"""Running an ASGI app under uvicorn in a background thread (tests, the demo, benchmarks)."""

from __future__ import annotations

import socket
import sys
import threading
import time
from typing import Any

import uvicorn

from outlast.web.server import CoalescingHttpToolsProtocol


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((host, 0))
        return int(s.getsockname()[1])


class BackgroundServer:
    """``with BackgroundServer(app) as server: server.url`` — uvicorn on a free loopback port,
    in its own thread and event loop, stopped (lifespan shutdown included) on exit."""

    def __init__(self, app: Any, host: str = "127.0.0.1", port: int | None = None, **options: Any) -> None:
        self.host = host
        self.port = port or free_port(host)
        config = uvicorn.Config(
            app,
            host=host,
            port=self.port,
            loop="uvloop" if sys.platform != "win32" else "asyncio",
            http=options.pop("http", CoalescingHttpToolsProtocol),
            lifespan="on",
            access_log=False,
            server_header=False,
            log_level=options.pop("log_level", "warning"),
            timeout_graceful_shutdown=options.pop("timeout_graceful_shutdown", 2),
            **options,
        )
        self.server = uvicorn.Server(config)
        self._thread = threading.Thread(target=self._run, name=f"uvicorn-{self.port}", daemon=True)
        self._error: BaseException | None = None

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def _run(self) -> None:
        try:
            self.server.run()
        except BaseException as error:  # reported by start()
            self._error = error

    def start(self, timeout: float = 10.0) -> BackgroundServer:
        self._thread.start()
        deadline = time.monotonic() + timeout
        while not self.server.started:
            if self._error is not None or not self._thread.is_alive():
                raise RuntimeError(f"server on port {self.port} failed to start: {self._error!r}")
            if time.monotonic() > deadline:
                raise RuntimeError(f"server on port {self.port} did not start within {timeout} s")
            time.sleep(0.01)
        return self

    def stop(self, timeout: float = 10.0) -> None:
        self.server.should_exit = True
        self._thread.join(timeout)

    def __enter__(self) -> BackgroundServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
