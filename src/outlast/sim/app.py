"""The simulator as one raw ASGI application: vendors under their prefixes, their status pages, and the
``/_sim`` control API.  Raw ASGI (no framework) because the simulator must never be what limits a benchmark."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

import orjson

from outlast.sim.delivery import deliver
from outlast.sim.handlers import Outcome, Request, handle, parse_query
from outlast.sim.scenario import Scenario
from outlast.sim.state import SimState

JSON_HEADERS = [(b"content-type", b"application/json")]
Send = Callable[[dict[str, Any]], Awaitable[None]]
Receive = Callable[[], Awaitable[dict[str, Any]]]


async def read_body(receive: Receive) -> bytes:
    message = await receive()
    body = message.get("body", b"")
    if not message.get("more_body"):
        return bytes(body)
    chunks = [body]
    while message.get("more_body"):
        message = await receive()
        chunks.append(message.get("body", b""))
    return b"".join(chunks)


async def send_json(send: Send, status: int, value: Any, headers: list[tuple[bytes, bytes]] | None = None) -> None:
    body = orjson.dumps(value)
    await send({"type": "http.response.start", "status": status,
                "headers": [*JSON_HEADERS, (b"content-length", str(len(body)).encode()), *(headers or [])]})
    await send({"type": "http.response.body", "body": body})


async def send_bytes(send: Send, status: int, body: bytes, content_type: bytes) -> None:
    await send({"type": "http.response.start", "status": status,
                "headers": [(b"content-type", content_type), (b"content-length", str(len(body)).encode())]})
    await send({"type": "http.response.body", "body": body})


class SimApp:
    """``SimApp(state)`` is an ASGI 3 callable; ``.state`` is the :class:`SimState` it serves."""

    def __init__(self, state: SimState) -> None:
        self.state = state

    async def __call__(self, scope: dict[str, Any], receive: Receive, send: Send) -> None:
        kind = scope["type"]
        if kind == "lifespan":
            await self._lifespan(receive, send)
            return
        if kind != "http":
            return
        path: str = scope["path"]
        prefix, _, rest = path[1:].partition("/")
        vendor = self.state.vendors.get(prefix)
        if vendor is not None:
            if rest.startswith("status/"):
                await self._status_page(prefix, rest[len("status/"):], send)
                return
            raw = await read_body(receive)
            headers = {k.decode("latin-1"): v.decode("latin-1") for k, v in scope["headers"]}
            query_string = scope.get("query_string", b"")
            record = self.state.record({
                "vendor": prefix, "method": scope["method"], "path": path, "query": query_string.decode("latin-1"),
                "headers": headers, "body": None, "model": None, "stream": False, "endpoint": None,
                "fault": None, "status": None})
            outcome = handle(self.state, Request(vendor, scope["method"], "/" + rest, parse_query(query_string),
                                                 headers, raw, record))
            record["status"] = None if outcome.action else outcome.status
            await deliver(outcome, scope, receive, send)
            return
        if prefix == "_sim":
            raw = await read_body(receive)
            await self._control(scope["method"], rest, parse_query(scope.get("query_string", b"")), raw, send)
            return
        await send_json(send, 404, {"error": {"message": f"no simulated vendor at {path}",
                                              "vendors": sorted(self.state.vendors)}})

    async def _lifespan(self, receive: Receive, send: Send) -> None:
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                await send({"type": "lifespan.shutdown.complete"})
                return

    async def _status_page(self, vendor: str, rest: str, send: Send) -> None:
        page = self.state.status_page(vendor)
        documents: dict[str, Callable[[], Any]] = {
            "api/v2/summary.json": page.summary,
            "api/v2/status.json": lambda: {"page": page.page(), "status": page.status()},
            "api/v2/components.json": lambda: {"page": page.page(), "components": page.components()},
            "api/v2/incidents.json": page.incidents_document,
            "api/v2/incidents/unresolved.json": lambda: page.incidents_document(unresolved_only=True),
        }
        if rest in documents:
            await send_json(send, 200, documents[rest]())
        elif rest == "history.atom":
            await send_bytes(send, 200, page.atom().encode(), b"application/atom+xml; charset=utf-8")
        else:
            await send_json(send, 404, {"error": "Not Found"})

    async def _control(self, method: str, rest: str, query: dict[str, list[str]], raw: bytes, send: Send) -> None:
        try:
            body = orjson.loads(raw) if raw else {}
        except orjson.JSONDecodeError:
            await send_json(send, 400, {"error": "body is not valid JSON"})
            return
        try:
            result = self._dispatch(method, rest.rstrip("/"), query, body)
        except ValueError as error:
            await send_json(send, 400, {"error": str(error)})
            return
        except LookupError as error:
            await send_json(send, 404, {"error": str(error.args[0]) if error.args else "not found"})
            return
        if result is None:
            await send_json(send, 404, {"error": f"no control endpoint {method} /_sim/{rest}"})
            return
        await send_json(send, 200, result)

    def _dispatch(self, method: str, rest: str, query: dict[str, list[str]], body: Any) -> Any:
        state = self.state
        if rest == "faults":
            if method == "POST":
                return state.faults.add(body).to_dict()
            if method == "DELETE":
                cleared = len(state.faults.active())
                state.faults.clear()
                return {"cleared": cleared}
            if method == "GET":
                return [f.to_dict() for f in state.faults.active()]
        if rest.startswith("faults/") and method == "DELETE":
            if not state.faults.remove(rest[len("faults/"):]):
                raise LookupError(f"no fault {rest[len('faults/'):]!r}")
            return {"deleted": rest[len("faults/"):]}
        if rest == "requests" and method == "GET":
            vendor = next(iter(query.get("vendor") or []), None)
            since = int((query.get("since") or ["0"])[0])
            return [e for e in state.requests(vendor) if e["seq"] > since]
        if rest == "reset" and method == "POST":
            state.reset()
            return {"reset": True, "clock": state.clock.now()}
        if rest == "state" and method == "GET":
            return state.describe()
        if rest == "clock" and method == "POST":
            if not isinstance(body, dict) or not ({"advance", "set"} & set(body)):
                raise ValueError('POST /_sim/clock takes {"advance": seconds} or {"set": seconds}')
            value = body.get("advance", body.get("set"))
            if isinstance(value, bool) or not isinstance(value, int | float):
                raise ValueError("the clock moves by a number of seconds")
            now = state.clock.advance(value) if "advance" in body else state.clock.set(value)
            return state.describe()["clock"] | {"seconds": now}
        if rest == "status" and method == "POST":
            post = state.post_status(body)
            return {"vendor": post.vendor, "incident": post.incident, "status": post.status, "at": post.at}
        if rest == "pace" and method == "POST":
            if not isinstance(body, dict) or set(body) - {"ttft_ms", "tokens_per_s"}:
                raise ValueError("POST /_sim/pace takes ttft_ms and tokens_per_s")
            state.pace = {k: float(v) for k, v in body.items()}
            return state.pace
        return None


def build_app(scenario: str | Scenario | None = None, *, seed: int = 0, time_scale: float | None = None,
              clock: Callable[[], float] | None = None) -> SimApp:
    """The simulator as an ASGI app.  ``scenario`` is a shipped scenario's name, a YAML path or a parsed
    :class:`Scenario`; ``time_scale`` overrides the scenario's; ``clock`` is the real-time source (default
    ``time.monotonic``), which tests may replace."""
    return SimApp(SimState(scenario, seed=seed, time_scale=time_scale, clock=clock))


__all__ = ["Outcome", "SimApp", "build_app"]
