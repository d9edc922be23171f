"""Anthropic Messages, written from Anthropic's API reference (messages, streaming, errors, models)."""

from __future__ import annotations

import time
from typing import Any

import orjson

from outlast.sim.answers import Conversation, Reply, split_words
from outlast.sim.catalog import ModelSpec, Vendor
from outlast.sim.wirebase import Ctx, WireError, as_text, dumps, pieces, sse

STOP = {"end": "end_turn", "max_tokens": "max_tokens", "tool": "tool_use", "filtered": "refusal"}
# What Anthropic answers when its safety system blocks a request: a 400 invalid_request_error.
CONTENT_POLICY = "Output blocked by content filtering policy"
BLOCK_TYPES = ("text", "image", "document", "tool_use", "tool_result", "thinking", "redacted_thinking",
               "server_tool_use", "web_search_tool_result", "search_result", "container_upload")
ERROR_TYPES = {400: "invalid_request_error", 401: "authentication_error", 402: "billing_error",
               403: "permission_error", 404: "not_found_error", 413: "request_too_large", 429: "rate_limit_error",
               500: "api_error", 504: "timeout_error", 529: "overloaded_error"}
MESSAGES = {
    400: "Invalid request.",
    401: "invalid x-api-key",
    402: "Your credit balance is too low to access the Anthropic API. Please go to Plans & Billing to upgrade or "
         "purchase credits.",
    403: "Your API key does not have permission to use the specified resource.",
    404: "Not found.",
    413: "Request exceeds the maximum allowed number of bytes.",
    429: "Number of request tokens has exceeded your per-minute rate limit (https://docs.claude.com/en/api/rate-limits);"
         " see the response headers for current usage. Please reduce the prompt length or the maximum tokens "
         "requested, or try again later. You may also contact sales at https://www.anthropic.com/contact-sales to "
         "discuss your options for a rate limit increase.",
    500: "Internal server error",
    504: "Request timed out",
    529: "Overloaded",
}
PREFILL = "This model does not support assistant message prefill. The conversation must end with a user message."


def _required(body: dict[str, Any], name: str) -> Any:
    if name not in body:
        raise WireError(400, f"{name}: Field required")
    return body[name]


def parse(body: dict[str, Any], count_only: bool = False) -> Conversation:
    model = _required(body, "model")
    if not isinstance(model, str):
        raise WireError(400, "model: Input should be a valid string")
    messages = _required(body, "messages")
    if not isinstance(messages, list):
        raise WireError(400, "messages: Input should be a valid list")
    limit = None
    if not count_only:
        limit = _required(body, "max_tokens")
        if isinstance(limit, bool) or not isinstance(limit, int):
            raise WireError(400, "max_tokens: Input should be a valid integer")
        if limit < 1:
            raise WireError(400, "max_tokens: Input should be greater than or equal to 1")
    system = body.get("system")
    if system is not None and not isinstance(system, str | list):
        raise WireError(400, "system: Input should be a valid string or a valid list")
    chars = len(as_text(system)) if system else 0
    for i, message in enumerate(messages):
        if not isinstance(message, dict) or message.get("role") not in ("user", "assistant", "system"):
            raise WireError(400, f"messages.{i}.role: Input should be 'user' or 'assistant'")
        content = message.get("content")
        if isinstance(content, list):
            for j, block in enumerate(content):
                kind = block.get("type") if isinstance(block, dict) else None
                if kind not in BLOCK_TYPES:
                    raise WireError(400, f"messages.{i}.content.{j}: Input tag '{kind}' found using 'type' does not "
                                    "match any of the expected tags: " + ", ".join(f"'{t}'" for t in BLOCK_TYPES))
                if kind == "tool_use":
                    chars += len(dumps(block.get("input", {})))
        elif not isinstance(content, str):
            raise WireError(400, f"messages.{i}.content: Input should be a valid string or a valid list")
        chars += len(as_text(content)) + 4
    tools: list[tuple[str, dict[str, Any]]] = []
    for tool in body.get("tools") or []:
        if isinstance(tool, dict) and isinstance(tool.get("name"), str) and "input_schema" in tool:
            tools.append((tool["name"], tool.get("input_schema") or {}))
    if tools:
        chars += len(dumps(body["tools"]))
    choice = body.get("tool_choice") or {}
    kind = str(choice.get("type", "auto"))
    tool_choice = {"auto": None, "any": "any", "none": "none"}.get(kind, choice.get("name"))
    dialogue = [m for m in messages if m.get("role") != "system"]
    last = dialogue[-1] if dialogue else {"role": "user", "content": ""}
    last_role = last["role"]
    results = [b for b in last.get("content") or [] if isinstance(b, dict) and b.get("type") == "tool_result"] \
        if isinstance(last.get("content"), list) else []
    if last_role == "user" and results:
        last_role = "tool"
    thinking = body.get("thinking") or {}
    return Conversation(
        model=model, stream=bool(body.get("stream")), max_tokens=limit, last_role=last_role,
        last_user_text=as_text(last.get("content")) if last_role == "user" else "",
        last_tool_result=as_text(results[-1].get("content")) if results else "",
        tools=tools, tool_choice=tool_choice, input_chars=chars,
        thinking=isinstance(thinking, dict) and thinking.get("type") == "enabled",
        fingerprint=orjson.dumps([model, system, messages, tools, tool_choice],
                                 option=orjson.OPT_SORT_KEYS),
    )


def check_model(vendor: Vendor, model: str, conv: Conversation) -> ModelSpec:
    spec = vendor.models.get(model)
    if spec is None:
        raise WireError(404, f"model: {model}")
    if conv.last_role == "assistant" and not spec.prefill:
        raise WireError(400, PREFILL)
    prompt = (conv.input_chars + 3) // 4
    if prompt > spec.context_window:
        raise WireError(400, f"prompt is too long: {prompt} tokens > {spec.context_window} maximum")
    return spec


def _rfc3339(seconds_from_now: float) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(time.time() + seconds_from_now))


def error(vendor: Vendor, err: WireError, request_id: str) -> tuple[int, dict[str, str], bytes]:
    kind = err.kind or ERROR_TYPES.get(err.status, "api_error")
    message = err.message or MESSAGES.get(err.status, "Internal server error")
    headers = {"request-id": request_id, **err.headers}
    if err.retry_after is not None:
        headers["retry-after"] = f"{err.retry_after:g}"
    if err.status == 429:
        reset = _rfc3339(err.retry_after or 1)
        for name, limit in (("requests", "50"), ("tokens", "80000"), ("input-tokens", "40000"),
                            ("output-tokens", "8000")):
            headers[f"anthropic-ratelimit-{name}-limit"] = limit
            headers[f"anthropic-ratelimit-{name}-remaining"] = "0" if name == "requests" else limit
            headers[f"anthropic-ratelimit-{name}-reset"] = reset
    body = {"type": "error", "error": {"type": kind, "message": message}, "request_id": request_id}
    return err.status, headers, dumps(body)


def auth_error(present: bool, bearer: bool) -> WireError:
    if not present:
        return WireError(401, "x-api-key header is required")
    return WireError(401, "Invalid bearer token" if bearer else "invalid x-api-key")


_HEADERS: dict[int, list[tuple[bytes, bytes]]] = {}


def ok_headers(request_id: str) -> list[tuple[bytes, bytes]]:
    second = int(time.time())
    fixed = _HEADERS.get(second)
    if fixed is None:
        _HEADERS.clear()
        fixed = _HEADERS[second] = _limits(_rfc3339(1).encode())
    return [(b"request-id", request_id.encode()), *fixed]


def _limits(reset: bytes) -> list[tuple[bytes, bytes]]:
    return [(b"anthropic-organization-id", b"sim-org-0000"),
            (b"anthropic-ratelimit-requests-limit", b"4000"), (b"anthropic-ratelimit-requests-remaining", b"3999"),
            (b"anthropic-ratelimit-requests-reset", reset),
            (b"anthropic-ratelimit-input-tokens-limit", b"2000000"),
            (b"anthropic-ratelimit-input-tokens-remaining", b"2000000"),
            (b"anthropic-ratelimit-input-tokens-reset", reset),
            (b"anthropic-ratelimit-output-tokens-limit", b"400000"),
            (b"anthropic-ratelimit-output-tokens-remaining", b"400000"),
            (b"anthropic-ratelimit-output-tokens-reset", reset)]


def _tool_id(reply: Reply) -> str:
    return "toolu_01" + reply.digest.hex()[:22]


def _signature(reply: Reply) -> str:
    return "EqQBCkYIBxgCKkD" + reply.digest.hex() + "=="


def _usage(reply: Reply, output_tokens: int) -> dict[str, Any]:
    return {"input_tokens": reply.input_tokens, "cache_creation_input_tokens": 0, "cache_read_input_tokens": 0,
            "cache_creation": {"ephemeral_5m_input_tokens": 0, "ephemeral_1h_input_tokens": 0},
            "output_tokens": output_tokens, "service_tier": "standard"}


def _content(reply: Reply) -> list[dict[str, Any]]:
    blocks: list[dict[str, Any]] = []
    if reply.thinking:
        blocks.append({"type": "thinking", "thinking": reply.thinking, "signature": _signature(reply)})
    if reply.tool is not None:
        blocks.append({"type": "tool_use", "id": _tool_id(reply), "name": reply.tool.name,
                       "input": reply.tool.arguments})
    else:
        blocks.append({"type": "text", "text": reply.text})
    return blocks


def render_json(reply: Reply, ctx: Ctx) -> bytes:
    return dumps({"id": ctx.request_id, "type": "message", "role": "assistant", "model": ctx.model,
                  "content": _content(reply), "stop_reason": STOP[reply.stop], "stop_sequence": None,
                  "usage": _usage(reply, reply.output_tokens)})


def render_stream(reply: Reply, ctx: Ctx, terminate: bool = True) -> list[bytes]:
    start: dict[str, Any] = {"id": ctx.request_id, "type": "message", "role": "assistant", "model": ctx.model,
                             "content": [], "stop_reason": None, "stop_sequence": None, "usage": _usage(reply, 1)}
    events = [sse({"type": "message_start", "message": start}, "message_start")]
    index = 0

    def block(start_block: dict[str, Any], deltas: list[dict[str, Any]]) -> None:
        events.append(sse({"type": "content_block_start", "index": index, "content_block": start_block},
                          "content_block_start"))
        if len(events) == 2:
            events.append(sse({"type": "ping"}, "ping"))
        events.extend(sse({"type": "content_block_delta", "index": index, "delta": delta}, "content_block_delta")
                      for delta in deltas)
        events.append(sse({"type": "content_block_stop", "index": index}, "content_block_stop"))

    if reply.thinking:
        block({"type": "thinking", "thinking": "", "signature": ""},
              [*({"type": "thinking_delta", "thinking": p} for p in split_words(reply.thinking)),
               {"type": "signature_delta", "signature": _signature(reply)}])
        index += 1
    if reply.tool is not None:
        arguments = dumps(reply.tool.arguments).decode()
        block({"type": "tool_use", "id": _tool_id(reply), "name": reply.tool.name, "input": {}},
              [{"type": "input_json_delta", "partial_json": ""},
               *({"type": "input_json_delta", "partial_json": p} for p in pieces(arguments, 10))])
    else:
        block({"type": "text", "text": ""}, [{"type": "text_delta", "text": p} for p in reply.text_pieces()])
    events.append(sse({"type": "message_delta", "delta": {"stop_reason": STOP[reply.stop], "stop_sequence": None},
                       "usage": {"output_tokens": reply.output_tokens}}, "message_delta"))
    if terminate:
        events.append(sse({"type": "message_stop"}, "message_stop"))
    return events


def bad_event() -> bytes:
    return b'event: content_block_delta\ndata: {"type": "content_block_delta", "index": 0, "delta": {"type": "te\n\n'


def models_document(vendor: Vendor, limit: int = 20) -> bytes:
    data = [_model(spec) for spec in vendor.models.values()]
    page = data[:limit]
    return dumps({"data": page, "has_more": len(data) > len(page),
                  "first_id": page[0]["id"] if page else None, "last_id": page[-1]["id"] if page else None})


def _model(spec: ModelSpec) -> dict[str, Any]:
    created = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(spec.created))
    return {"type": "model", "id": spec.id, "display_name": spec.display_name, "created_at": created}


def model_document(vendor: Vendor, model: str) -> bytes:
    return dumps(_model(vendor.models[model]))
