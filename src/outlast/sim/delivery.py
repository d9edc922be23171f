"""Sending an :class:`Outcome` over ASGI, including the ways a real connection goes wrong.

``reset`` and ``cut`` need the connection itself: the simulator's server puts the asyncio transport in
``scope["extensions"]["outlast.transport"]`` (see :mod:`outlast.sim.server`).  Under another ASGI server they
fall back to raising, which makes the server drop the connection.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import struct
from typing import Any

from outlast.sim.handlers import Outcome

HANG_LIMIT = 600.0  # a hung request is answered by nothing, but is not kept forever


class DroppedConnection(Exception):
    """Raised to make a server without the transport extension close the connection."""


def transport_of(scope: dict[str, Any]) -> Any:
    return (scope.get("extensions") or {}).get("outlast.transport")


async def wait_disconnect(receive: Any, limit: float) -> None:
    async def loop() -> None:
        while (await receive())["type"] != "http.disconnect":
            pass

    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(loop(), limit)


async def _close(scope: dict[str, Any], reset: bool) -> None:
    transport = transport_of(scope)
    if transport is None:
        raise DroppedConnection("connection dropped by a simulated fault")
    if reset:
        sock = transport.get_extra_info("socket")
        if sock is not None:
            with contextlib.suppress(OSError):
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        transport.abort()
    else:
        transport.close()
    for _ in range(3):  # let the server see connection_lost before the handler returns
        await asyncio.sleep(0)


async def deliver(outcome: Outcome, scope: dict[str, Any], receive: Any, send: Any) -> None:
    if outcome.action == "hang":
        await wait_disconnect(receive, HANG_LIMIT)
        return
    if outcome.action == "reset":
        await _close(scope, reset=True)
        return
    if outcome.ttft:
        await asyncio.sleep(outcome.ttft)
    events = outcome.events
    headers = [(b"content-type", outcome.content_type), *outcome.headers]
    if events is None:
        body = outcome.body
        if outcome.cut_after is None:
            headers.append((b"content-length", str(len(body)).encode()))
            await send({"type": "http.response.start", "status": outcome.status, "headers": headers})
            await send({"type": "http.response.body", "body": body})
            return
        headers.append((b"content-length", str(len(body)).encode()))
        await send({"type": "http.response.start", "status": outcome.status, "headers": headers})
        await send({"type": "http.response.body", "body": body[: outcome.cut_after], "more_body": True})
        await _stall_then_close(outcome, scope, receive)
        return
    await send({"type": "http.response.start", "status": outcome.status, "headers": headers})
    if outcome.cut_after is None and not outcome.gap and not outcome.gaps:
        await send({"type": "http.response.body", "body": b"".join(events)})
        return
    for index, event in enumerate(events):
        if index == outcome.cut_after:
            await _stall_then_close(outcome, scope, receive)
            return
        delay = (outcome.gaps[index - 1] if outcome.gaps else outcome.gap) if index else 0.0
        if delay:
            await asyncio.sleep(delay)
        await send({"type": "http.response.body", "body": event, "more_body": True})
    await send({"type": "http.response.body", "body": b""})


async def _stall_then_close(outcome: Outcome, scope: dict[str, Any], receive: Any) -> None:
    if outcome.stall_seconds:
        await wait_disconnect(receive, outcome.stall_seconds)
    await _close(scope, reset=False)
