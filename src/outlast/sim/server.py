"""Serving the simulator: uvicorn with httptools and uvloop, one process (fault state must be consistent).

The HTTP protocol is outlast's (uvicorn's, writing once per event-loop turn), with one addition: each
request's scope carries the connection's transport in ``scope["extensions"]["outlast.transport"]``, which
the ``reset`` and ``cut`` faults need to drop the connection the way a failing upstream does (RST, or FIN
mid-body).
"""

from __future__ import annotations

import sys
from typing import Any

import uvicorn

from outlast.sim.app import SimApp, build_app
from outlast.web.server import CoalescingHttpToolsProtocol


class SimHttpProtocol(CoalescingHttpToolsProtocol):
    def on_message_begin(self) -> None:
        super().on_message_begin()
        self.scope["extensions"] = {"outlast.transport": self.transport}  # type: ignore[dict-item]


def make_config(app: SimApp, host: str = "127.0.0.1", port: int = 9100, **options: Any) -> uvicorn.Config:
    return uvicorn.Config(
        app, host=host, port=port, http=SimHttpProtocol,
        loop="uvloop" if sys.platform != "win32" else "asyncio",
        lifespan="on", access_log=False, server_header=False,
        log_level=options.pop("log_level", "warning"),
        timeout_graceful_shutdown=options.pop("timeout_graceful_shutdown", 1),
        backlog=options.pop("backlog", 4096), **options)


def serve(host: str = "127.0.0.1", port: int = 9100, scenario: str | None = None, seed: int = 0,
          time_scale: float | None = None, **options: Any) -> None:
    """Run the simulator until interrupted."""
    app = build_app(scenario, seed=seed, time_scale=time_scale)
    uvicorn.Server(make_config(app, host, port, **options)).run()
