"""Gemini generateContent / streamGenerateContent, written from Google's Gemini API reference.

The API accepts proto-JSON names in lowerCamelCase and in snake_case; both are read here.
"""

from __future__ import annotations

from typing import Any

import orjson

from outlast.sim.answers import Conversation, Reply
from outlast.sim.catalog import ModelSpec, Vendor
from outlast.sim.wirebase import Ctx, WireError, as_text, dumps, sse

FINISH = {"end": "STOP", "max_tokens": "MAX_TOKENS", "tool": "STOP", "filtered": "SAFETY"}
# The ratings Gemini attaches to a blocked prompt or candidate: one category over the threshold.
SAFETY_RATINGS = [
    {"category": "HARM_CATEGORY_SEXUALLY_EXPLICIT", "probability": "NEGLIGIBLE"},
    {"category": "HARM_CATEGORY_HATE_SPEECH", "probability": "NEGLIGIBLE"},
    {"category": "HARM_CATEGORY_HARASSMENT", "probability": "HIGH", "blocked": True},
    {"category": "HARM_CATEGORY_DANGEROUS_CONTENT", "probability": "NEGLIGIBLE"},
]
STATUS = {400: "INVALID_ARGUMENT", 401: "UNAUTHENTICATED", 403: "PERMISSION_DENIED", 404: "NOT_FOUND",
          409: "ABORTED", 413: "INVALID_ARGUMENT", 429: "RESOURCE_EXHAUSTED", 499: "CANCELLED", 500: "INTERNAL",
          501: "UNIMPLEMENTED", 503: "UNAVAILABLE", 504: "DEADLINE_EXCEEDED"}
MESSAGES = {
    400: "Request contains an invalid argument.",
    401: "Request had invalid authentication credentials. Expected OAuth 2 access token, login cookie or other valid "
         "authentication credential.",
    403: "The caller does not have permission",
    429: "You exceeded your current quota, please check your plan and billing details. For more information on this "
         "error, head to: https://ai.google.dev/gemini-api/docs/rate-limits.",
    500: "An internal error has occurred. Please retry or report in "
         "https://developers.generativeai.google/guide/troubleshooting",
    503: "The model is overloaded. Please try again later.",
    504: "Deadline expired before operation could complete.",
}
SSE_NEWLINE = b"\r\n"


def _get(d: dict[str, Any], camel: str, snake: str, default: Any = None) -> Any:
    return d.get(camel, d.get(snake, default))


def parse(body: dict[str, Any], model: str, stream: bool) -> Conversation:
    contents = body.get("contents")
    if contents is None:
        raise WireError(400, "* GenerateContentRequest.contents: contents is not specified\n")
    if not isinstance(contents, list) or not contents:
        raise WireError(400, "* GenerateContentRequest.contents: contents is not specified\n")
    chars = len(as_text(_get(body, "systemInstruction", "system_instruction", {}).get("parts", [])))
    for content in contents:
        if not isinstance(content, dict) or content.get("role", "user") not in ("user", "model", "function"):
            raise WireError(400, "Please use a valid role: user, model.")
        parts = content.get("parts")
        if not isinstance(parts, list):
            raise WireError(400, "* GenerateContentRequest.contents[0].parts: contents.parts must not be empty.\n")
        chars += len(as_text(parts)) + 4
        for part in parts:
            if isinstance(part, dict) and ("functionCall" in part or "functionResponse" in part
                                           or "function_call" in part or "function_response" in part):
                chars += len(dumps(part))
    tools: list[tuple[str, dict[str, Any]]] = []
    for tool in body.get("tools") or []:
        for declaration in _get(tool, "functionDeclarations", "function_declarations", []) or []:
            if isinstance(declaration, dict) and isinstance(declaration.get("name"), str):
                schema = declaration.get("parameters") or declaration.get("parametersJsonSchema") or {}
                tools.append((declaration["name"], schema))
    if tools:
        chars += len(dumps(body["tools"]))
    calling = _get(_get(body, "toolConfig", "tool_config", {}) or {}, "functionCallingConfig",
                   "function_calling_config", {}) or {}
    mode = str(calling.get("mode", "AUTO")).upper()
    allowed = _get(calling, "allowedFunctionNames", "allowed_function_names", []) or []
    tool_choice = {"NONE": "none", "ANY": allowed[0] if len(allowed) == 1 else "any"}.get(mode)
    generation = _get(body, "generationConfig", "generation_config", {}) or {}
    limit = _get(generation, "maxOutputTokens", "max_output_tokens")
    last = contents[-1]
    parts = last.get("parts") or []
    responses = [p for p in parts if isinstance(p, dict) and ("functionResponse" in p or "function_response" in p)]
    role = last.get("role", "user")
    last_role = "tool" if responses else ("assistant" if role == "model" else "user")
    result = ""
    if responses:
        response = _get(responses[-1], "functionResponse", "function_response", {})
        result = dumps(response.get("response", {})).decode()
    thinking = _get(generation, "thinkingConfig", "thinking_config", {}) or {}
    return Conversation(
        model=model, stream=stream, max_tokens=limit if isinstance(limit, int) and limit > 0 else None,
        last_role=last_role, last_user_text=as_text(parts) if last_role == "user" else "", last_tool_result=result,
        tools=tools, tool_choice=tool_choice, input_chars=chars,
        thinking=bool(_get(thinking, "includeThoughts", "include_thoughts", False)),
        fingerprint=orjson.dumps([model, body.get("systemInstruction"), contents, tools,
                                  tool_choice], option=orjson.OPT_SORT_KEYS),
    )


def check_model(vendor: Vendor, model: str, conv: Conversation, method: str) -> ModelSpec:
    spec = vendor.models.get(model)
    if spec is None:
        raise not_found(model, method)
    prompt = (conv.input_chars + 3) // 4
    if prompt > spec.context_window:
        raise WireError(400, f"The input token count ({prompt}) exceeds the maximum number of tokens allowed "
                        f"({spec.context_window}).")
    return spec


def not_found(model: str, method: str = "generateContent") -> WireError:
    return WireError(404, f"models/{model} is not found for API version v1beta, or is not supported for {method}. "
                     "Call ListModels to see the list of available models and their supported methods.")


def auth_error(key: str | None) -> WireError:
    """What Gemini really answers: 403 without a key, 400 API_KEY_INVALID with a wrong one."""
    if not key:
        return WireError(403, "Method doesn't allow unregistered callers (callers without established identity). "
                         "Please use API Key or other form of API consumer identity to call this API.")
    return WireError(400, "API key not valid. Please pass a valid API key.", code="API_KEY_INVALID")


def error(err: WireError) -> tuple[int, dict[str, str], bytes]:
    status = err.status
    body: dict[str, Any] = {"code": status, "message": err.message or MESSAGES.get(status, MESSAGES[500]),
                            "status": err.kind or STATUS.get(status, "UNAVAILABLE" if status >= 500 else
                                                             "FAILED_PRECONDITION")}
    details: list[dict[str, Any]] = []
    if err.code:
        details.append({"@type": "type.googleapis.com/google.rpc.ErrorInfo", "reason": err.code,
                        "domain": "googleapis.com", "metadata": {"service": "generativelanguage.googleapis.com"}})
    if status == 429:
        details.append({"@type": "type.googleapis.com/google.rpc.QuotaFailure", "violations": [{
            "quotaMetric": "generativelanguage.googleapis.com/generate_content_free_tier_requests",
            "quotaId": "GenerateRequestsPerMinutePerProjectPerModel-FreeTier"}]})
        details.append({"@type": "type.googleapis.com/google.rpc.Help", "links": [
            {"description": "Learn more about Gemini API quotas",
             "url": "https://ai.google.dev/gemini-api/docs/rate-limits"}]})
    if err.retry_after is not None:
        details.append({"@type": "type.googleapis.com/google.rpc.RetryInfo", "retryDelay": f"{err.retry_after:g}s"})
    if details:
        body["details"] = details
    headers = dict(err.headers)
    if err.retry_after is not None:
        headers["retry-after"] = f"{err.retry_after:g}"
    return status, headers, dumps({"error": body})


def _usage(reply: Reply, final: bool) -> dict[str, Any]:
    usage: dict[str, Any] = {"promptTokenCount": reply.input_tokens}
    if final:
        usage["candidatesTokenCount"] = reply.output_tokens
    usage["totalTokenCount"] = reply.input_tokens + (reply.output_tokens if final else 0)
    usage["promptTokensDetails"] = [{"modality": "TEXT", "tokenCount": reply.input_tokens}]
    return usage


def _parts(reply: Reply) -> list[dict[str, Any]]:
    parts: list[dict[str, Any]] = []
    if reply.thinking:
        parts.append({"text": reply.thinking, "thought": True})
    if reply.tool is not None:
        parts.append({"functionCall": {"name": reply.tool.name, "args": reply.tool.arguments}})
    else:
        parts.append({"text": reply.text})
    return parts


def _response(parts: list[dict[str, Any]], reply: Reply, ctx: Ctx, final: bool, finish: bool = True) -> dict[str, Any]:
    # A candidate the safety system stopped has no content of its own, only its ratings.
    candidate: dict[str, Any] = {"content": {"parts": parts, "role": "model"}} if parts else {}
    if final and finish:
        candidate["finishReason"] = FINISH[reply.stop]
    candidate["index"] = 0
    if final and reply.stop == "filtered":
        candidate["safetyRatings"] = SAFETY_RATINGS
    return {"candidates": [candidate], "usageMetadata": _usage(reply, final), "modelVersion": ctx.model,
            "responseId": ctx.request_id}


def render_json(reply: Reply, ctx: Ctx) -> bytes:
    return dumps(_response([] if reply.stop == "filtered" else _parts(reply), reply, ctx, final=True))


def blocked(reply: Reply, ctx: Ctx) -> dict[str, Any]:
    """A prompt refused by the safety system: ``promptFeedback.blockReason`` and no candidates (HTTP 200)."""
    return {"promptFeedback": {"blockReason": "SAFETY", "safetyRatings": SAFETY_RATINGS},
            "usageMetadata": {"promptTokenCount": reply.input_tokens, "totalTokenCount": reply.input_tokens,
                              "promptTokensDetails": [{"modality": "TEXT", "tokenCount": reply.input_tokens}]},
            "modelVersion": ctx.model, "responseId": ctx.request_id}


def chunks(reply: Reply, ctx: Ctx, terminate: bool = True) -> list[dict[str, Any]]:
    """The stream as GenerateContentResponse chunks; without ``terminate`` the last lacks its finishReason."""
    groups: list[list[dict[str, Any]]] = []
    if reply.thinking:
        groups.append([{"text": reply.thinking, "thought": True}])
    if reply.tool is not None:
        groups.append([{"functionCall": {"name": reply.tool.name, "args": reply.tool.arguments}}])
    elif reply.stop == "filtered":  # what got through, then a last candidate with no content
        words = reply.text_pieces()
        groups.extend([{"text": "".join(words[i:i + 4])}] for i in range(0, len(words), 4))
        groups.append([])
    else:
        words = reply.text_pieces() or [""]
        groups.extend([{"text": "".join(words[i:i + 4])}] for i in range(0, len(words), 4))
    last = len(groups) - 1
    return [_response(parts, reply, ctx, final=i == last, finish=terminate) for i, parts in enumerate(groups)]


def render_stream(reply: Reply, ctx: Ctx, terminate: bool = True) -> list[bytes]:
    return [sse(chunk, newline=SSE_NEWLINE) for chunk in chunks(reply, ctx, terminate)]


def render_array(reply: Reply, ctx: Ctx, terminate: bool = True) -> list[bytes]:
    """streamGenerateContent without ``alt=sse``: one JSON array, sent element by element."""
    out = [b"[" + dumps(c) if i == 0 else b",\r\n" + dumps(c)
           for i, c in enumerate(chunks(reply, ctx, terminate))]
    out.append(b"]")
    return out


def render_blocked(reply: Reply, ctx: Ctx, as_sse: bool) -> list[bytes]:
    """The stream of a blocked prompt: its one chunk, as SSE or as a one-element JSON array."""
    if as_sse:
        return [sse(blocked(reply, ctx), newline=SSE_NEWLINE)]
    return [b"[" + dumps(blocked(reply, ctx)), b"]"]


def bad_event() -> bytes:
    return b'data: {"candidates": [{"content": {"parts": [{"te\r\n\r\n'


def _model(spec: ModelSpec) -> dict[str, Any]:
    return {"name": f"models/{spec.id}", "version": "001", "displayName": spec.display_name,
            "description": f"Simulated {spec.display_name}", "inputTokenLimit": spec.context_window,
            "outputTokenLimit": spec.max_output,
            "supportedGenerationMethods": ["generateContent", "countTokens", "createCachedContent",
                                           "batchGenerateContent"],
            "temperature": 1, "topP": 0.95, "topK": 64, "maxTemperature": 2, "thinking": True}


def models_document(vendor: Vendor) -> bytes:
    return dumps({"models": [_model(spec) for spec in vendor.models.values()]})


def model_document(vendor: Vendor, model: str) -> bytes:
    return dumps(_model(vendor.models[model]))


def count_document(conv: Conversation) -> bytes:
    total = (conv.input_chars + 3) // 4 or 1
    return dumps({"totalTokens": total, "promptTokensDetails": [{"modality": "TEXT", "tokenCount": total}]})
