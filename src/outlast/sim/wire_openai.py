"""OpenAI Chat Completions, written from OpenAI's API reference (and Ollama's compatible flavour of it)."""

from __future__ import annotations

from typing import Any

import orjson

from outlast.sim.answers import Conversation, Reply
from outlast.sim.catalog import ModelSpec, Vendor
from outlast.sim.wirebase import Ctx, WireError, as_text, dumps, pieces, sse

ROLES = ("system", "assistant", "user", "function", "tool", "developer")
FINISH = {"end": "stop", "max_tokens": "length", "tool": "tool_calls", "filtered": "content_filter"}
DONE = b"data: [DONE]\n\n"

ERROR_TYPES = {400: "invalid_request_error", 401: "invalid_request_error", 403: "request_forbidden",
               404: "invalid_request_error", 409: "invalid_request_error", 413: "invalid_request_error",
               422: "invalid_request_error", 429: "requests"}
MESSAGES = {
    400: "Invalid request.",
    403: "Country, region, or territory not supported",
    404: "The requested resource was not found.",
    409: "The request conflicted with another request.",
    413: "Request too large.",
    429: "Rate limit reached for {model} in organization org-sim on requests per min (RPM): Limit 500, Used 500, "
         "Requested 1. Please try again in {wait}. Visit https://platform.openai.com/account/rate-limits to learn "
         "more.",
    500: "The server had an error while processing your request. Sorry about that!",
    502: "Bad gateway.",
    503: "The engine is currently overloaded, please try again later.",
    504: "Gateway timeout.",
}
CODE_MESSAGES = {
    "context_length_exceeded": "This model's maximum context length is {limit} tokens. However, your messages "
                               "resulted in {tokens} tokens. Please reduce the length of the messages.",
    "content_policy_violation": "Your request was rejected as a result of our safety system. Your prompt may "
                                "contain text that is not allowed by our safety system.",
    "content_filter": "The response was filtered due to the prompt triggering Azure OpenAI's content management "
                      "policy.",
    "insufficient_quota": "You exceeded your current quota, please check your plan and billing details. For more "
                          "information on this error, read the docs: "
                          "https://platform.openai.com/docs/guides/error-codes/api-errors.",
}


def parse(body: dict[str, Any]) -> Conversation:
    model = body.get("model")
    if not isinstance(model, str) or not model:
        raise WireError(400, "you must provide a model parameter", param=None)
    messages = body.get("messages")
    if messages is None:
        raise WireError(400, "Missing required parameter: 'messages'.", param="messages",
                        code="missing_required_parameter")
    if not isinstance(messages, list) or not messages:
        raise WireError(400, f"Invalid {'type' if not isinstance(messages, list) else 'value'} for 'messages': "
                        "expected a non-empty array of message objects.", param="messages",
                        code="invalid_type" if not isinstance(messages, list) else "empty_array")
    chars = 0
    for i, message in enumerate(messages):
        if not isinstance(message, dict):
            raise WireError(400, f"Invalid type for 'messages[{i}]': expected an object.", param=f"messages[{i}]",
                            code="invalid_type")
        role = message.get("role")
        if role not in ROLES:
            raise WireError(400, f"Invalid value: '{role}'. Supported values are: 'system', 'assistant', 'user', "
                            "'function', 'tool', and 'developer'.", param=f"messages[{i}].role", code="invalid_value")
        chars += len(as_text(message.get("content"))) + 8
        for call in message.get("tool_calls") or []:
            chars += len(str(call))
    limit = body.get("max_completion_tokens", body.get("max_tokens"))
    if limit is not None and (isinstance(limit, bool) or not isinstance(limit, int) or limit < 1):
        name = "max_completion_tokens" if "max_completion_tokens" in body else "max_tokens"
        raise WireError(400, f"Invalid '{name}': integer below minimum value. Expected a value >= 1, but got "
                        f"{limit} instead.", param=name, code="integer_below_min_value")
    last = messages[-1]
    role = last.get("role")
    tools: list[tuple[str, dict[str, Any]]] = []
    for tool in body.get("tools") or []:
        function = tool.get("function") if isinstance(tool, dict) else None
        if isinstance(function, dict) and isinstance(function.get("name"), str):
            tools.append((function["name"], function.get("parameters") or {"type": "object", "properties": {}}))
    chars += len(dumps(body["tools"])) if tools else 0
    choice = body.get("tool_choice")
    tool_choice: str | None = None
    if choice in ("none", "required"):
        tool_choice = "none" if choice == "none" else "any"
    elif isinstance(choice, dict):
        tool_choice = (choice.get("function") or {}).get("name")
    stream_options = body.get("stream_options") or {}
    user_text = as_text(last.get("content")) if role in ("user", "developer", "system") else ""
    return Conversation(
        model=model, stream=bool(body.get("stream")), max_tokens=limit,
        last_role="tool" if role in ("tool", "function") else ("assistant" if role == "assistant" else "user"),
        last_user_text=user_text,
        last_tool_result=as_text(last.get("content")) if role in ("tool", "function") else "",
        tools=tools, tool_choice=tool_choice, input_chars=chars,
        thinking=False,
        fingerprint=orjson.dumps([model, messages, tools, tool_choice], option=orjson.OPT_SORT_KEYS),
    ) if isinstance(stream_options, dict) else _bad_stream_options()


def _bad_stream_options() -> Conversation:
    raise WireError(400, "Invalid type for 'stream_options': expected an object.", param="stream_options",
                    code="invalid_type")


def check_model(vendor: Vendor, model: str, conv: Conversation) -> ModelSpec:
    spec = vendor.models.get(model)
    if spec is None:
        if vendor.flavour == "ollama":
            raise WireError(404, f'model "{model}" not found, try pulling it first', kind="api_error")
        raise WireError(404, f"The model `{model}` does not exist or you do not have access to it.",
                        code="model_not_found")
    prompt = (conv.input_chars + 3) // 4
    if prompt > spec.context_window:
        raise WireError(400, CODE_MESSAGES["context_length_exceeded"].format(limit=spec.context_window, tokens=prompt),
                        param="messages", code="context_length_exceeded")
    return spec


def error(vendor: Vendor, err: WireError, model: str = "") -> tuple[int, dict[str, str], bytes]:
    status = err.status
    message = err.message
    code = err.code
    kind = err.kind or ERROR_TYPES.get(status, "server_error")
    headers = dict(err.headers)
    if status == 401 and not message:
        refused = auth_error("sk-sim-unknown-key")
        message, code = refused.message, refused.code
    if status == 429:
        wait = f"{err.retry_after:g}s" if err.retry_after is not None else "120ms"
        code = code or "rate_limit_exceeded"
        if code == "insufficient_quota":
            kind = "insufficient_quota"
        message = message or MESSAGES[429].format(model=model or "this model", wait=wait)
        headers.update({"x-ratelimit-remaining-requests": "0", "x-ratelimit-reset-requests": wait})
    if not message and code in CODE_MESSAGES:
        message = CODE_MESSAGES[code].format(limit=128_000, tokens=130_000)
    if not message:
        message = MESSAGES.get(status, "The server had an error processing your request.")
    if err.retry_after is not None:
        headers["retry-after"] = f"{err.retry_after:g}"
        headers["retry-after-ms"] = str(int(err.retry_after * 1000))
    if vendor.flavour == "ollama":
        kind = err.kind or ("invalid_request_error" if status < 500 else "api_error")
    body = {"error": {"message": message, "type": kind, "param": err.param, "code": code}}
    return status, headers, dumps(body)


def auth_error(key: str | None) -> WireError:
    if not key:
        return WireError(401, "You didn't provide an API key. You need to provide your API key in an Authorization "
                         "header using Bearer auth (i.e. Authorization: Bearer YOUR_KEY), or as the password field "
                         "(with blank username) if you're accessing the API from your browser and are prompted for a "
                         "username and password. You can obtain an API key from "
                         "https://platform.openai.com/account/api-keys.")
    hint = f"{key[:3]}{'*' * 12}{key[-4:]}" if len(key) > 8 else "***"
    return WireError(401, f"Incorrect API key provided: {hint}. You can find your API key at "
                     "https://platform.openai.com/account/api-keys.", code="invalid_api_key")


def rate_headers(vendor: Vendor, request_id: str) -> list[tuple[bytes, bytes]]:
    if vendor.flavour == "ollama":
        return []
    return [(b"x-request-id", request_id.encode()), (b"openai-processing-ms", b"42"),
            (b"openai-version", b"2020-10-01"), (b"openai-organization", b"org-sim"),
            (b"x-ratelimit-limit-requests", b"10000"), (b"x-ratelimit-remaining-requests", b"9999"),
            (b"x-ratelimit-reset-requests", b"6ms"), (b"x-ratelimit-limit-tokens", b"30000000"),
            (b"x-ratelimit-remaining-tokens", b"29999000"), (b"x-ratelimit-reset-tokens", b"2ms")]


def _usage(reply: Reply) -> dict[str, Any]:
    return {"prompt_tokens": reply.input_tokens, "completion_tokens": reply.output_tokens,
            "total_tokens": reply.input_tokens + reply.output_tokens,
            "prompt_tokens_details": {"cached_tokens": 0, "audio_tokens": 0},
            "completion_tokens_details": {"reasoning_tokens": 0, "audio_tokens": 0,
                                          "accepted_prediction_tokens": 0, "rejected_prediction_tokens": 0}}


def _call_id(reply: Reply) -> str:
    return "call_" + reply.digest.hex()[:24]


def _fingerprint(ctx: Ctx) -> str:
    return "fp_ollama" if ctx.flavour == "ollama" else "fp_5c1b3d0e2a"


def render_json(reply: Reply, ctx: Ctx) -> bytes:
    message: dict[str, Any] = {"role": "assistant", "content": reply.text if reply.tool is None else None,
                               "refusal": None, "annotations": []}
    if reply.tool is not None:
        message["tool_calls"] = [{"id": _call_id(reply), "type": "function",
                                  "function": {"name": reply.tool.name,
                                               "arguments": dumps(reply.tool.arguments).decode()}}]
    return dumps({
        "id": ctx.request_id, "object": "chat.completion", "created": ctx.created, "model": ctx.model,
        "choices": [{"index": 0, "message": message, "logprobs": None, "finish_reason": FINISH[reply.stop]}],
        "usage": _usage(reply), "service_tier": "default", "system_fingerprint": _fingerprint(ctx),
    })


def render_stream(reply: Reply, ctx: Ctx, terminate: bool = True) -> list[bytes]:
    base = {"id": ctx.request_id, "object": "chat.completion.chunk", "created": ctx.created, "model": ctx.model,
            "service_tier": "default", "system_fingerprint": _fingerprint(ctx)}

    def chunk(delta: dict[str, Any], finish: str | None = None) -> bytes:
        body: dict[str, Any] = {**base, "choices": [{"index": 0, "delta": delta, "logprobs": None,
                                                     "finish_reason": finish}]}
        if ctx.include_usage:
            body["usage"] = None
        return sse(body)

    events = []
    if reply.tool is not None:
        arguments = dumps(reply.tool.arguments).decode()
        events.append(chunk({"role": "assistant", "content": None, "refusal": None, "tool_calls": [
            {"index": 0, "id": _call_id(reply), "type": "function",
             "function": {"name": reply.tool.name, "arguments": ""}}]}))
        events.extend(chunk({"tool_calls": [{"index": 0, "function": {"arguments": fragment}}]})
                      for fragment in pieces(arguments, 12))
    else:
        events.append(chunk({"role": "assistant", "content": "", "refusal": None}))
        events.extend(chunk({"content": piece}) for piece in reply.text_pieces())
    events.append(chunk({}, FINISH[reply.stop]))
    if ctx.include_usage:
        events.append(sse({**base, "choices": [], "usage": _usage(reply)}))
    if terminate:
        events.append(DONE)
    return events


def bad_event(ctx: Ctx) -> bytes:
    return b'data: {"id": "' + ctx.request_id.encode() + b'", "object": "chat.completion.chunk", "choices": [{"del\n\n'


def models_document(vendor: Vendor) -> bytes:
    owner = "library" if vendor.flavour == "ollama" else ("openai" if vendor.name == "openai" else "system")
    return dumps({"object": "list", "data": [
        {"id": spec.id, "object": "model", "created": spec.created, "owned_by": owner}
        for spec in vendor.models.values()]})


def model_document(vendor: Vendor, model: str) -> bytes:
    spec = vendor.models[model]
    owner = "library" if vendor.flavour == "ollama" else ("openai" if vendor.name == "openai" else "system")
    return dumps({"id": spec.id, "object": "model", "created": spec.created, "owned_by": owner})
