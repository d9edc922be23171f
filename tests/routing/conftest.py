"""Redis for the shared health state: a real server; CI (OUTLAST_REQUIRE_SERVICES=1) fails without one."""

from __future__ import annotations

import os
import socket
from collections.abc import Iterator

import pytest

from tests.routing.tcp_proxy import TCPProxy

REDIS = (os.environ.get("OUTLAST_REDIS_HOST", "127.0.0.1"), int(os.environ.get("OUTLAST_REDIS_PORT", "6379")))


def _redis_up() -> bool:
    try:
        with socket.create_connection(REDIS, timeout=1) as sock:
            sock.sendall(b"PING\r\n")
            return sock.recv(16).startswith(b"+PONG")
    except OSError:
        return False


@pytest.fixture
def redis_proxy() -> Iterator[TCPProxy]:
    """A proxy in front of the shared Redis that the test can cut."""
    if not _redis_up():
        message = f"Redis is not reachable at {REDIS[0]}:{REDIS[1]}"
        if os.environ.get("OUTLAST_REQUIRE_SERVICES") == "1":
            pytest.fail(message)
        pytest.skip(message)
    proxy = TCPProxy(*REDIS)
    try:
        yield proxy
    finally:
        proxy.close()
