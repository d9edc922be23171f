"""A loopback TCP proxy the test controls: ``cut()`` drops every connection and refuses new ones,
``restore()`` accepts again. It stands between the gateways and the shared Redis server, or between
a gateway and the simulator, where ``connections`` tells a test which side closed each one and when."""

from __future__ import annotations

import contextlib
import socket
import threading
from dataclasses import dataclass, field


@dataclass
class Connection:
    """One proxied connection: what came back from upstream, and whether the client closed it."""

    from_upstream: int = 0  # bytes
    client_closed: threading.Event = field(default_factory=threading.Event)
    from_upstream_at_client_close: int | None = None  # bytes the client had been sent when it closed


class TCPProxy:
    def __init__(self, target_host: str, target_port: int) -> None:
        self.target = (target_host, target_port)
        probe = socket.socket()
        probe.bind(("127.0.0.1", 0))
        self.port = probe.getsockname()[1]
        probe.close()
        self._lock = threading.Lock()
        self._sockets: list[socket.socket] = []
        self.connections: list[Connection] = []
        self._listener: socket.socket | None = None
        self.restore()

    def restore(self) -> None:
        listener = socket.socket()
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind(("127.0.0.1", self.port))
        listener.listen(64)
        self._listener = listener
        threading.Thread(target=self._accept, args=(listener,), daemon=True).start()

    def cut(self) -> None:
        with self._lock:
            listener, self._listener = self._listener, None
            sockets, self._sockets = self._sockets, []
        if listener is not None:
            with contextlib.suppress(OSError):
                listener.shutdown(socket.SHUT_RDWR)
            listener.close()
        for sock in sockets:
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)
            sock.close()

    close = cut

    def _accept(self, listener: socket.socket) -> None:
        while True:
            try:
                client, _ = listener.accept()
            except OSError:
                return
            try:
                upstream = socket.create_connection(self.target, timeout=2)
            except OSError:
                client.close()
                continue
            upstream.settimeout(None)
            with self._lock:
                if self._listener is not listener:
                    client.close()
                    upstream.close()
                    return
                self._sockets += [client, upstream]
                connection = Connection()
                self.connections.append(connection)
            threading.Thread(target=self._pipe, args=(client, upstream, connection, False), daemon=True).start()
            threading.Thread(target=self._pipe, args=(upstream, client, connection, True), daemon=True).start()

    @staticmethod
    def _pipe(source: socket.socket, sink: socket.socket, connection: Connection, from_upstream: bool) -> None:
        try:
            while True:
                data = source.recv(65536)
                if not data:
                    break
                if from_upstream:
                    connection.from_upstream += len(data)
                sink.sendall(data)
        except OSError:
            pass
        finally:
            if not from_upstream:  # the client closed (or the proxy cut it)
                connection.from_upstream_at_client_close = connection.from_upstream
                connection.client_closed.set()
            with contextlib.suppress(OSError):
                sink.shutdown(socket.SHUT_WR)
