"""The HTTP server's write coalescing (outlast.web.server), over a raw socket on loopback: what one
loop turn writes leaves in one write, and a response's last write leaves at once, not when the
request's task gets round to yielding. No assertion is about how long anything took."""

from __future__ import annotations

import socket
import threading
from typing import Any

from outlast.serving import BackgroundServer
from tests.web.test_limits import WAIT, read_response


class HoldsTheLoop:
    """An ASGI app that, once its answer is sent, blocks its event loop until the client says it has
    the whole answer (or ``WAIT`` runs out): only a write made before the task yields can arrive."""

    def __init__(self, chunks: list[bytes]) -> None:
        self.chunks = chunks
        self.client_has_it = threading.Event()
        self.seen_while_held: list[bool] = []

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] == "lifespan":
            while True:
                message = await receive()
                await send({"type": message["type"] + ".complete"})
                if message["type"] == "lifespan.shutdown":
                    return
        await receive()
        body = b"".join(self.chunks)
        await send({"type": "http.response.start", "status": 200,
                    "headers": [(b"content-type", b"text/plain"), (b"content-length", str(len(body)).encode())]})
        for i, chunk in enumerate(self.chunks):
            await send({"type": "http.response.body", "body": chunk, "more_body": i < len(self.chunks) - 1})
        # Still inside the loop turn that sent the answer: a blocking wait, as a slow bit of bookkeeping
        # after the answer would be.
        self.seen_while_held.append(self.client_has_it.wait(WAIT))


def _ask(server: BackgroundServer, app: HoldsTheLoop) -> tuple[int, bytes]:
    with socket.create_connection((server.host, server.port), timeout=WAIT) as client:
        client.settimeout(WAIT)
        client.sendall(b"GET / HTTP/1.1\r\nhost: test\r\n\r\n")
        status, _, body = read_response(client)
        app.client_has_it.set()
        return status, body


def test_the_last_write_of_a_response_leaves_before_the_task_yields() -> None:
    app = HoldsTheLoop([b"all of the answer but its last byte", b"!"])
    with BackgroundServer(app) as server:
        status, body = _ask(server, app)
        assert (status, body) == (200, b"all of the answer but its last byte!")
    # The client read the whole answer while the app still held the event loop: so it was written at
    # the final body, not at the end of the loop turn (the app would have timed out waiting).
    assert app.seen_while_held == [True]


def test_a_kept_alive_connection_answers_again_after_an_early_flush() -> None:
    app = HoldsTheLoop([b"first"])
    with BackgroundServer(app) as server, socket.create_connection((server.host, server.port),
                                                                    timeout=WAIT) as client:
        client.settimeout(WAIT)
        for _ in range(2):
            app.client_has_it.clear()
            client.sendall(b"GET / HTTP/1.1\r\nhost: test\r\n\r\n")
            assert read_response(client)[::2] == (200, b"first")
            app.client_has_it.set()
    assert app.seen_while_held == [True, True]
