"""A vendor request, from bytes to an :class:`Outcome`: route, authenticate, pick a fault, answer, render.

Each wire format module does the format's own work; this module only strings the steps together.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qs

import orjson

from outlast.sim import wire_anthropic, wire_gemini, wire_openai
from outlast.sim.answers import Conversation, Reply, answer, filtered
from outlast.sim.catalog import Vendor
from outlast.sim.faults import Fault, Latency
from outlast.sim.state import SimState
from outlast.sim.wirebase import Ctx, WireError, dumps, new_id

JSON = b"application/json"
SSE = b"text/event-stream; charset=utf-8"


@dataclass
class Outcome:
    status: int = 200
    headers: list[tuple[bytes, bytes]] = field(default_factory=list)
    body: bytes = b""
    events: list[bytes] | None = None  # a stream, sent event by event
    content_type: bytes = JSON
    action: str | None = None  # "hang" or "reset": no response at all
    cut_after: int | None = None  # events (stream) or bytes (JSON) before the connection closes
    stall_seconds: float = 0.0
    ttft: float = 0.0
    gap: float = 0.0
    gaps: list[float] | None = None  # a delay before each event after the first, when they differ


@dataclass
class Request:
    vendor: Vendor
    method: str
    path: str  # below the vendor prefix, e.g. /v1/messages
    query: dict[str, list[str]]
    headers: dict[str, str]
    raw: bytes
    record: dict[str, Any]


def parse_query(raw: bytes) -> dict[str, list[str]]:
    return parse_qs(raw.decode("latin-1")) if raw else {}


def handle(state: SimState, req: Request) -> Outcome:
    try:
        return _handle(state, req)
    except WireError as err:
        return error_outcome(req.vendor, err, req.record.get("model") or "")


def error_outcome(vendor: Vendor, err: WireError, model: str = "") -> Outcome:
    request_id = new_id("req_011C")
    if vendor.format == "anthropic":
        status, headers, body = wire_anthropic.error(vendor, err, request_id)
    elif vendor.format == "gemini":
        status, headers, body = wire_gemini.error(err)
    else:
        status, headers, body = wire_openai.error(vendor, err, model)
        if vendor.flavour != "ollama":
            headers.setdefault("x-request-id", request_id)
    return Outcome(status=status, body=body, headers=[(k.encode(), v.encode()) for k, v in headers.items()])


def _json(req: Request) -> dict[str, Any]:
    try:
        body = orjson.loads(req.raw) if req.raw else None
    except orjson.JSONDecodeError:
        body = None
        req.record["body"] = req.raw.decode("utf-8", "replace")
        raise WireError(400, _bad_json(req.vendor.format)) from None
    req.record["body"] = body
    if not isinstance(body, dict):
        raise WireError(400, _bad_json(req.vendor.format))
    return body


def _bad_json(fmt: str) -> str:
    if fmt == "openai":
        return ("We could not parse the JSON body of your request. (HINT: This likely means you aren't using your "
                "HTTP library correctly. The OpenAI API expects a JSON payload, but what was sent was not valid JSON. "
                "If you have trouble figuring out how to fix this, please contact us through our help center at "
                "help.openai.com.)")
    if fmt == "anthropic":
        return "There was an error parsing the body of your request. Please check that the body is valid JSON."
    return "Invalid JSON payload received. Unexpected token."


def _key(req: Request) -> tuple[str | None, bool]:
    """The API key presented, and whether it came as a bearer token."""
    h = req.headers
    auth = h.get("authorization", "")
    bearer = auth[7:].strip() if auth[:7].lower() == "bearer " else None
    if req.vendor.format == "anthropic":
        return (h.get("x-api-key") or bearer or None), bearer is not None and not h.get("x-api-key")
    if req.vendor.format == "gemini":
        return (h.get("x-goog-api-key") or next(iter(req.query.get("key") or []), None) or bearer), False
    return bearer, True


def _auth(req: Request, key: str | None, bearer: bool) -> None:
    if req.vendor.format == "anthropic" and "anthropic-version" not in req.headers:
        raise WireError(400, "anthropic-version: header is required")
    if key or not req.vendor.requires_key:
        return
    raise _auth_error(req.vendor, None, bearer)


def _auth_error(vendor: Vendor, key: str | None, bearer: bool) -> WireError:
    if vendor.format == "anthropic":
        return wire_anthropic.auth_error(bool(key), bearer)
    if vendor.format == "gemini":
        return wire_gemini.auth_error(key)
    return wire_openai.auth_error(key)


def _not_found(req: Request) -> WireError:
    if req.vendor.format == "openai":
        return WireError(404, f"Invalid URL ({req.method} {req.path})")
    if req.vendor.format == "anthropic":
        return WireError(404, "Not Found")
    return WireError(404, f"Method not found: {req.method} {req.path}")


def _handle(state: SimState, req: Request) -> Outcome:
    fmt = req.vendor.format
    key, bearer = _key(req)
    endpoint, model = _route(req)
    req.record.update(endpoint=endpoint, model=model, stream=endpoint == "stream")
    if endpoint is None:
        raise _not_found(req)
    _auth(req, key, bearer)
    if endpoint in ("models", "model"):
        return _models(req.vendor, model)
    body = _json(req)
    if fmt != "gemini":
        model = body.get("model") if isinstance(body.get("model"), str) else ""
    stream = endpoint == "stream" or (fmt != "gemini" and bool(body.get("stream")))
    req.record.update(model=model, stream=stream)
    fault = state.pick_fault(req.vendor.name, model or "", key)
    if fault is not None:
        req.record["fault"] = {"id": fault.id, "mode": fault.mode}
        if fault.mode == "status" and not _blocks_prompt(fmt, fault):
            raise _status_error(req.vendor, fault, model or "")
        if fault.mode == "auth":
            raise _auth_error(req.vendor, key or "sk-sim-bad-key", bearer)
        if fault.mode in ("hang", "reset"):
            return Outcome(action=fault.mode)
    if fmt == "openai":
        conv = wire_openai.parse(body)
        wire_openai.check_model(req.vendor, conv.model, conv)
    elif fmt == "anthropic":
        conv = wire_anthropic.parse(body, count_only=endpoint == "count")
        wire_anthropic.check_model(req.vendor, conv.model, conv)
    else:
        method = {"count": "countTokens", "stream": "streamGenerateContent"}.get(endpoint, "generateContent")
        conv = wire_gemini.parse(body, model or "", stream)
        wire_gemini.check_model(req.vendor, conv.model, conv, method)
    if endpoint == "count":
        if fmt == "gemini":
            return Outcome(body=wire_gemini.count_document(conv))
        return Outcome(body=dumps({"input_tokens": (conv.input_chars + 3) // 4 or 1}),
                       headers=wire_anthropic.ok_headers(new_id("req_011C")))
    reply = answer(conv, state.seed, blank=fault is not None and fault.mode == "blank")
    if fault is not None and fault.mode == "status":  # Gemini refuses a prompt with a 200 and no candidates
        return _blocked(req, conv, reply, stream)
    if fault is not None and fault.mode == "filtered":
        reply = filtered(reply)
    outcome = _render(req, conv, reply, fault, stream)
    pace = state.pace
    if stream and (pace.get("ttft_ms") or pace.get("tokens_per_s")):
        outcome.ttft = pace.get("ttft_ms", 0.0) / 1000
        rate = pace.get("tokens_per_s", 0.0)
        outcome.gap = 1.5 / rate if rate else 0.0  # about 1.5 tokens an event
    if fault is not None and fault.mode == "slow":
        _slow(outcome, fault, state, req.record)
    return outcome


def _blocks_prompt(fmt: str, fault: Fault) -> bool:
    """Gemini has no content-policy error status: a blocked prompt is a 200 carrying ``promptFeedback``."""
    return fmt == "gemini" and fault.code == "content_policy"


def _blocked(req: Request, conv: Conversation, reply: Reply, stream: bool) -> Outcome:
    ctx = Ctx(req.vendor.name, conv.model, request_id=new_id("", 22))
    if not stream:
        return Outcome(body=dumps(wire_gemini.blocked(reply, ctx)))
    sse = "sse" in req.query.get("alt", [])
    return Outcome(events=wire_gemini.render_blocked(reply, ctx, sse), content_type=SSE if sse else JSON,
                   headers=[(b"cache-control", b"no-cache")])


def _slow(outcome: Outcome, fault: Fault, state: SimState, record: dict[str, Any]) -> None:
    """The delays of a ``slow`` fault; drawn ones are written to the request log, so a test can read them."""
    rng = state.faults.rng(fault)
    ttft = fault.ttft_ms.draw(rng) if isinstance(fault.ttft_ms, Latency) else fault.ttft_ms
    outcome.ttft = ttft / 1000
    record["fault"]["ttft_ms"] = round(ttft, 3)
    if isinstance(fault.gap_ms, Latency):
        count = max(len(outcome.events) - 1, 0) if outcome.events is not None else 0
        gaps = [fault.gap_ms.draw(rng) for _ in range(count)]
        outcome.gaps = [gap / 1000 for gap in gaps]
        outcome.gap = 0.0
        record["fault"]["gap_ms"] = [round(gap, 3) for gap in gaps]
    else:
        outcome.gap = fault.gap_ms / 1000
        record["fault"]["gap_ms"] = fault.gap_ms


def _route(req: Request) -> tuple[str | None, str | None]:
    """(endpoint, model from the path): endpoint is gen, stream, count, models, model or None."""
    path, method = req.path.rstrip("/"), req.method
    if req.vendor.format == "gemini":
        if not path.startswith("/v1beta/models"):
            return None, None
        rest = path[len("/v1beta/models"):]
        if rest == "" and method == "GET":
            return "models", None
        if not rest.startswith("/"):
            return None, None
        name, _, verb = rest[1:].partition(":")
        if not verb and method == "GET":
            return "model", name
        endpoint = {"generateContent": "gen", "streamGenerateContent": "stream", "countTokens": "count"}.get(verb)
        return (endpoint, name) if method == "POST" and endpoint else (None, None)
    if path == "/v1/models" and method == "GET":
        return "models", None
    if path.startswith("/v1/models/") and method == "GET":
        return "model", path[len("/v1/models/"):]
    if req.vendor.format == "anthropic":
        if method == "POST" and path == "/v1/messages":
            return "gen", None
        if method == "POST" and path == "/v1/messages/count_tokens":
            return "count", None
        return None, None
    if method == "POST" and path == "/v1/chat/completions":
        return "gen", None
    return None, None


def _models(vendor: Vendor, model: str | None) -> Outcome:
    fmt = vendor.format
    module: Any = {"openai": wire_openai, "anthropic": wire_anthropic, "gemini": wire_gemini}[fmt]
    if model is None:
        return Outcome(body=module.models_document(vendor))
    if model not in vendor.models:
        if fmt == "gemini":
            raise WireError(404, f"models/{model} is not found for API version v1beta, or is not supported for "
                            "GetModel. Call ListModels to see the list of available models and their supported "
                            "methods.")
        if fmt == "anthropic":
            raise WireError(404, f"model: {model}")
        raise WireError(404, f"The model '{model}' does not exist", code="model_not_found", param="model")
    return Outcome(body=module.model_document(vendor, model))


def _status_error(vendor: Vendor, fault: Fault, model: str) -> WireError:
    message = fault.message or ""
    code = fault.code
    kind = None
    if code == "content_policy":
        if vendor.format == "anthropic":
            message, code = message or wire_anthropic.CONTENT_POLICY, None
        else:
            code = "content_policy_violation"
    if code == "context_length_exceeded" and not message:
        spec = vendor.models.get(model)
        limit = spec.context_window if spec else 200_000
        if vendor.format == "anthropic":
            message, code = f"prompt is too long: {limit + 1234} tokens > {limit} maximum", None
        elif vendor.format == "gemini":
            message = (f"The input token count ({limit + 1234}) exceeds the maximum number of tokens allowed "
                       f"({limit}).")
            code = None
        else:
            message = wire_openai.CODE_MESSAGES[code].format(limit=limit, tokens=limit + 1234)
    if vendor.format == "anthropic" and code:
        kind, code = (code if code.endswith("_error") else None), None
    return WireError(fault.status, message, code=code, kind=kind, retry_after=fault.retry_after,
                     param="messages" if code == "context_length_exceeded" else None)


def _render(req: Request, conv: Conversation, reply: Reply, fault: Fault | None, stream: bool) -> Outcome:
    vendor = req.vendor
    fmt = vendor.format
    created = int(time.time())
    terminate = fault is None or fault.mode != "no_terminator"
    if fmt == "anthropic":
        request_id = new_id("req_011C")
        ctx = Ctx(vendor.name, conv.model, request_id=new_id("msg_01"), created=created)
        headers = wire_anthropic.ok_headers(request_id)
        events = wire_anthropic.render_stream(reply, ctx, terminate) if stream else None
        body = b"" if stream else wire_anthropic.render_json(reply, ctx)
        bad = wire_anthropic.bad_event()
    elif fmt == "gemini":
        ctx = Ctx(vendor.name, conv.model, request_id=new_id("", 22), created=created)
        headers = []
        sse = "sse" in req.query.get("alt", [])
        if stream:
            events = wire_gemini.render_stream(reply, ctx, terminate) if sse else \
                wire_gemini.render_array(reply, ctx, terminate)
        else:
            events = None
        body = b"" if stream else wire_gemini.render_json(reply, ctx)
        bad = wire_gemini.bad_event()
    else:
        options = req.record["body"].get("stream_options") or {}
        ollama = vendor.flavour == "ollama"
        ctx = Ctx(vendor.name, conv.model, flavour=vendor.flavour,
                  request_id=f"chatcmpl-{new_id('', 3 if ollama else 29)}", created=created,
                  include_usage=bool(options.get("include_usage")))
        headers = wire_openai.rate_headers(vendor, new_id("req_", 32))
        events = wire_openai.render_stream(reply, ctx, terminate) if stream else None
        body = b"" if stream else wire_openai.render_json(reply, ctx)
        bad = wire_openai.bad_event(ctx)
    outcome = Outcome(headers=headers, body=body, events=events)
    if events is not None:
        outcome.content_type = SSE if (fmt != "gemini" or "sse" in req.query.get("alt", [])) else JSON
        outcome.headers = [*headers, (b"cache-control", b"no-cache")]
    if fault is not None:
        _shape(outcome, fault, bad)
    return outcome


def _shape(outcome: Outcome, fault: Fault, bad: bytes) -> None:
    """Apply a delivery fault to a rendered answer."""
    mode = fault.mode
    events = outcome.events
    if mode == "malformed":
        outcome.events = None
        outcome.body = (b"".join(events) if events else outcome.body)[:37] + b"<!-- upstream connect error -->"
    elif mode == "bad_event":
        if events is not None:
            index = min(max(fault.at_event - 1, 0), len(events) - 1)
            events.insert(index, bad)
        else:
            outcome.body = outcome.body[: len(outcome.body) // 2]
    elif mode in ("cut", "stall"):
        if events is not None:
            outcome.cut_after = min(max(fault.after_events, 0), len(events) - 1)
        else:
            outcome.cut_after = len(outcome.body) // 2
        outcome.stall_seconds = fault.seconds if mode == "stall" else 0.0
