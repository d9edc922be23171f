"""Google Gemini (``generateContent`` / ``streamGenerateContent?alt=sse``) ⇄ canonical.

Outbound only for now: Gemini is a provider, not yet a caller dialect. Pure functions,
no I/O, no config.

Conventions:

- Roles: ``user`` stays ``user``, ``assistant`` becomes ``model``; a
  ``Message(role="system")`` in the conversation is folded into a user turn as text.
  Consecutive turns of the same role are merged (Gemini wants them alternating).
  ``Request.system`` becomes ``systemInstruction``, one text part per block.
- Tool calls: Gemini's ``functionCall`` parts often carry no id, so the parser
  synthesizes ``call_<random>_<n>`` ids (unique across turns, which Anthropic requires).
  A ``ToolResult`` becomes a ``functionResponse`` whose ``name`` is looked up from the
  ``ToolUse`` with that id earlier in the conversation, with ``response`` =
  ``{"result": text}`` (``{"error": text}`` when ``is_error``); images in a result follow
  it as ``inlineData`` parts.
- Thought signatures: Gemini 3 rejects a replayed ``functionCall`` without its
  ``thoughtSignature``. Signatures are not carried through the canonical model (they are
  only meaningful to Gemini), so the first ``functionCall`` of every model turn gets
  Google's documented ``skip_thought_signature_validator`` sentinel instead.
- Tool schemas: ``parameters`` accepts only Gemini's OpenAPI subset, so schemas are
  rewritten (:func:`gemini_schema`): unknown keywords (``$schema``,
  ``additionalProperties``, ``title``, ...) dropped, local ``$ref`` inlined, ``["x",
  "null"]`` types made ``nullable``, ``const`` made an ``enum``, unsupported ``format``
  values dropped, and an object with no properties sent without ``parameters``.
- ``Thinking`` parts are dropped outbound; ``thought: true`` text parts come back as
  thinking. ``disable_parallel`` has no Gemini equivalent. ``extra["gemini"]`` is merged
  into the body (``generationConfig`` key by key).
- Usage: ``promptTokenCount`` includes ``cachedContentTokenCount``, canonical
  ``input_tokens`` does not; output is ``candidatesTokenCount + thoughtsTokenCount``.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

import orjson

from outlast.dialects.canonical import (
    Event,
    Image,
    Part,
    Request,
    Response,
    Start,
    Stop,
    StopReason,
    Text,
    TextDelta,
    Thinking,
    ThinkingDelta,
    ToolCall,
    ToolResult,
    ToolUse,
    Usage,
    dumps,
)
from outlast.ids import random_hex
from outlast.providers.errors import FailureKind, UpstreamError, kind_for_status, parse_retry_after

__all__ = ["SKIP_SIGNATURE", "StreamParser", "classify_error", "gemini_schema", "parse_response", "render_request"]

SKIP_SIGNATURE = "skip_thought_signature_validator"

_FILTERED = frozenset({"SAFETY", "RECITATION", "PROHIBITED_CONTENT", "BLOCKLIST", "SPII", "IMAGE_SAFETY",
                       "LANGUAGE", "IMAGE_PROHIBITED_CONTENT", "IMAGE_RECITATION"})
_MODES = {"auto": "AUTO", "any": "ANY", "tool": "ANY", "none": "NONE"}
_EMPTY: Mapping[str, Any] = {}

# =========================================================================== tool schemas

# Gemini's Schema object (an OpenAPI 3.0 subset); any other key is rejected.
_SCHEMA_KEYS = frozenset({"type", "format", "description", "nullable", "enum", "maxItems", "minItems", "properties",
                          "required", "minProperties", "maxProperties", "minLength", "maxLength", "pattern",
                          "example", "anyOf", "propertyOrdering", "default", "items", "minimum", "maximum"})
_FORMATS = frozenset({"enum", "date-time", "int32", "int64", "float", "double"})
_MAX_REF_DEPTH = 8


def gemini_schema(schema: Mapping[str, Any], root: Mapping[str, Any] | None = None, depth: int = 0) -> dict[str, Any]:
    """A JSON schema rewritten into the subset Gemini's ``parameters`` accepts."""
    root = schema if root is None else root
    ref = schema.get("$ref")
    if isinstance(ref, str) and depth < _MAX_REF_DEPTH:
        target = _resolve(root, ref)
        if target is not None:
            merged = {**target, **{k: v for k, v in schema.items() if k != "$ref"}}
            return gemini_schema(merged, root, depth + 1)
    out: dict[str, Any] = {}
    for key, value in schema.items():
        if key == "type":
            if isinstance(value, list):
                kinds = [t for t in value if t != "null"]
                if len(kinds) < len(value):
                    out["nullable"] = True
                if kinds:
                    out["type"] = kinds[0]
            else:
                out["type"] = value
        elif key == "properties" and isinstance(value, dict):
            if value:
                out["properties"] = {name: gemini_schema(sub, root, depth) if isinstance(sub, dict) else {}
                                     for name, sub in value.items()}
        elif key in ("items",) and isinstance(value, dict):
            out["items"] = gemini_schema(value, root, depth)
        elif key in ("anyOf", "oneOf") and isinstance(value, list):
            out["anyOf"] = [gemini_schema(sub, root, depth) for sub in value if isinstance(sub, dict)]
        elif key == "const":
            out["enum"] = [value]
        elif key == "enum" and isinstance(value, list):
            if all(isinstance(v, str) for v in value):
                out["enum"] = value
        elif key == "format":
            if value in _FORMATS:
                out["format"] = value
        elif key in _SCHEMA_KEYS:
            out[key] = value
    if "enum" in out and not all(isinstance(v, str) for v in out["enum"]):
        del out["enum"]
    required = out.get("required")
    if isinstance(required, list):
        known = out.get("properties", {})
        out["required"] = [name for name in required if name in known]
        if not out["required"]:
            del out["required"]
    return out


def _resolve(root: Mapping[str, Any], ref: str) -> Mapping[str, Any] | None:
    if not ref.startswith("#/"):
        return None
    node: Any = root
    for name in ref[2:].split("/"):
        if not isinstance(node, Mapping) or name not in node:
            return None
        node = node[name]
    return node if isinstance(node, Mapping) else None


# =========================================================================== requests


def _image(image: Image) -> dict[str, Any]:
    if image.data is not None:
        return {"inlineData": {"mimeType": image.media_type or "application/octet-stream", "data": image.data}}
    return {"fileData": {"mimeType": image.media_type or "image/*", "fileUri": image.url}}


def _contents(request: Request) -> list[dict[str, Any]]:
    contents: list[dict[str, Any]] = []
    names: dict[str, str] = {}  # tool-use id -> function name, for functionResponse
    for message in request.messages:
        role = "model" if message.role == "assistant" else "user"
        parts: list[dict[str, Any]] = []
        signed = False
        for part in message.content:
            if isinstance(part, Text):
                if part.text:
                    parts.append({"text": part.text})
            elif isinstance(part, ToolUse):
                names[part.id] = part.name
                call: dict[str, Any] = {"functionCall": {"name": part.name, "args": dict(part.input)}}
                if not signed:
                    call["thoughtSignature"] = SKIP_SIGNATURE
                    signed = True
                parts.append(call)
            elif isinstance(part, ToolResult):
                text = "".join(c.text for c in part.content if isinstance(c, Text))
                parts.append({"functionResponse": {"name": names.get(part.tool_use_id, part.tool_use_id),
                                                   "response": {"error" if part.is_error else "result": text}}})
                parts.extend(_image(c) for c in part.content if isinstance(c, Image))
            elif isinstance(part, Image):
                parts.append(_image(part))
        if not parts:
            continue
        if contents and contents[-1]["role"] == role:
            contents[-1]["parts"].extend(parts)
        else:
            contents.append({"role": role, "parts": parts})
    return contents


def _function(tool: Any) -> dict[str, Any]:
    declaration: dict[str, Any] = {"name": tool.name}
    if tool.description is not None:
        declaration["description"] = tool.description
    parameters = gemini_schema(tool.input_schema)
    if parameters.get("properties") or parameters.get("type") not in (None, "object"):
        declaration["parameters"] = parameters
    return declaration


def render_request(request: Request, model: str, *, stream: bool) -> dict[str, Any]:
    """A ``generateContent`` body. The model and ``stream`` go in the URL, not the body."""
    body: dict[str, Any] = {"contents": _contents(request)}
    if request.system:
        body["systemInstruction"] = {"parts": [{"text": t.text} for t in request.system]}
    if request.tools:
        body["tools"] = [{"functionDeclarations": [_function(t) for t in request.tools]}]
        choice = request.tool_choice
        if choice is not None:
            config: dict[str, Any] = {"mode": _MODES[choice.type]}
            if choice.type == "tool" and choice.name:
                config["allowedFunctionNames"] = [choice.name]
            body["toolConfig"] = {"functionCallingConfig": config}
    generation: dict[str, Any] = {}
    if request.max_tokens is not None:
        generation["maxOutputTokens"] = request.max_tokens
    if request.temperature is not None:
        generation["temperature"] = request.temperature
    if request.top_p is not None:
        generation["topP"] = request.top_p
    if request.top_k is not None:
        generation["topK"] = request.top_k
    if request.stop:
        generation["stopSequences"] = list(request.stop)
    for key, value in request.extra.get("gemini", _EMPTY).items():
        if key == "generationConfig" and isinstance(value, dict):
            generation = {**value, **generation}
        elif key not in body:
            body[key] = value
    if generation:
        body["generationConfig"] = generation
    return body


# =========================================================================== responses


def _usage(value: object) -> Usage:
    if not isinstance(value, dict):
        return Usage()
    cached = value.get("cachedContentTokenCount") or 0
    return Usage(
        input_tokens=max(0, (value.get("promptTokenCount") or 0) - cached),
        output_tokens=(value.get("candidatesTokenCount") or 0) + (value.get("thoughtsTokenCount") or 0),
        cache_read_input_tokens=cached,
    )


def _stop_reason(finish: object, saw_tools: bool) -> StopReason:
    if finish == "MAX_TOKENS":
        return StopReason.MAX_TOKENS
    if finish in _FILTERED:
        return StopReason.CONTENT_FILTER
    return StopReason.TOOL_USE if saw_tools else StopReason.END_TURN


def _check(body: object, *, during_stream: bool) -> dict[str, Any]:
    """The response object, or the UpstreamError it stands for."""
    if not isinstance(body, dict):
        raise UpstreamError(FailureKind.MALFORMED, "upstream answer is not a JSON object", during_stream=during_stream)
    if body.get("error") is not None:
        error = _classify_object(None, body["error"])
        error.during_stream = during_stream
        raise error
    feedback = body.get("promptFeedback")
    if isinstance(feedback, dict) and feedback.get("blockReason"):
        raise UpstreamError(FailureKind.CONTENT_FILTERED, f"the prompt was blocked ({feedback['blockReason']})",
                            during_stream=during_stream, vendor_code=str(feedback["blockReason"]))
    return body


def _candidate(body: Mapping[str, Any]) -> Mapping[str, Any] | None:
    candidates = body.get("candidates")
    if isinstance(candidates, list) and candidates and isinstance(candidates[0], dict):
        return candidates[0]
    return None


def _parts(candidate: Mapping[str, Any] | None, *, during_stream: bool) -> list[Any]:
    if candidate is None:
        return []
    if candidate.get("finishReason") == "MALFORMED_FUNCTION_CALL":
        raise UpstreamError(FailureKind.MALFORMED, "the model produced a malformed function call",
                            during_stream=during_stream, vendor_code="MALFORMED_FUNCTION_CALL")
    content = candidate.get("content")
    parts = content.get("parts") if isinstance(content, dict) else None
    return parts if isinstance(parts, list) else []


def _call_id(prefix: str, count: int, call: Mapping[str, Any]) -> str:
    given = call.get("id")
    return given if isinstance(given, str) and given else f"call_{prefix}_{count}"


def parse_response(body: object) -> Response:
    """A ``GenerateContentResponse`` as a :class:`Response`; raises ``UpstreamError`` for a
    blocked prompt (CONTENT_FILTERED) or a wrong shape (MALFORMED)."""
    body = _check(body, during_stream=False)
    candidate = _candidate(body)
    if candidate is None:
        raise UpstreamError(FailureKind.MALFORMED, "upstream answer has no candidates")
    prefix = random_hex(4)
    content: list[Part] = []
    for part in _parts(candidate, during_stream=False):
        if not isinstance(part, dict):
            continue
        call = part.get("functionCall")
        if isinstance(call, dict) and isinstance(call.get("name"), str):
            args = call.get("args")
            content.append(ToolUse(_call_id(prefix, len(content), call), call["name"],
                                   args if isinstance(args, dict) else {}))
        elif isinstance(part.get("text"), str):
            if part.get("thought"):
                content.append(Thinking(part["text"]))
            elif content and isinstance(content[-1], Text):
                content[-1] = Text(content[-1].text + part["text"])
            else:
                content.append(Text(part["text"]))
    saw_tools = any(isinstance(p, ToolUse) for p in content)
    return Response(
        id=str(body.get("responseId") or ""),
        model=str(body.get("modelVersion") or ""),
        content=tuple(content),
        stop_reason=_stop_reason(candidate.get("finishReason"), saw_tools),
        usage=_usage(body.get("usageMetadata")),
    )


class StreamParser:
    """``streamGenerateContent?alt=sse`` chunks into canonical events.

    Every chunk is a whole ``GenerateContentResponse``; there is no terminator, so the
    :class:`Stop` comes from :meth:`finish` once the stream ends, if a ``finishReason``
    was seen. A ``functionCall`` part is always complete and becomes one :class:`ToolCall`.
    """

    __slots__ = ("_block", "_calls", "_finish", "_index", "_prefix", "_started", "_usage")

    def __init__(self) -> None:
        self._started = False
        self._index = -1
        self._block: str | None = None
        self._calls = 0
        self._finish: object = None
        self._usage: Usage | None = None
        self._prefix = random_hex(4)

    def _open(self, kind: str) -> int:
        if self._block != kind or kind == "tool":
            self._index += 1
            self._block = kind
        return self._index

    @property
    def done(self) -> bool:
        """Always False: a Gemini stream has no terminator; it is over when the body ends."""
        return False

    def feed(self, event_name: str | None, data: str) -> list[Event]:
        try:
            value = orjson.loads(data)
        except orjson.JSONDecodeError:
            raise UpstreamError(FailureKind.MALFORMED, "upstream sent a stream chunk that is not JSON",
                                during_stream=True) from None
        body = _check(value, during_stream=self._index >= 0)
        out: list[Event] = []
        if not self._started:
            self._started = True
            out.append(Start(str(body.get("responseId") or ""), str(body.get("modelVersion") or "")))
        if body.get("usageMetadata") is not None:
            self._usage = _usage(body["usageMetadata"])
        candidate = _candidate(body)
        for part in _parts(candidate, during_stream=True):
            if not isinstance(part, dict):
                continue
            call = part.get("functionCall")
            if isinstance(call, dict) and isinstance(call.get("name"), str):
                args = call.get("args")
                out.append(ToolCall(self._open("tool"), _call_id(self._prefix, self._calls, call), call["name"],
                                    dumps(args if isinstance(args, dict) else {})))
                self._calls += 1
            elif isinstance(part.get("text"), str) and part["text"]:
                if part.get("thought"):
                    out.append(ThinkingDelta(self._open("thinking"), part["text"]))
                else:
                    out.append(TextDelta(self._open("text"), part["text"]))
        if candidate is not None and candidate.get("finishReason"):
            self._finish = candidate["finishReason"]
        return out

    def finish(self) -> list[Event]:
        """The stream ended: complete if a ``finishReason`` arrived, cut off otherwise."""
        if self._finish is None:
            raise UpstreamError(FailureKind.CONNECTION_LOST, "stream ended before a finishReason",
                                during_stream=True)
        return [Stop(_stop_reason(self._finish, self._calls > 0), self._usage or Usage())]


# =========================================================================== errors

_STATUS_KINDS = {
    "RESOURCE_EXHAUSTED": FailureKind.RATE_LIMITED,
    "UNAVAILABLE": FailureKind.OVERLOADED,
    "INTERNAL": FailureKind.SERVER_ERROR,
    "UNKNOWN": FailureKind.SERVER_ERROR,
    "DEADLINE_EXCEEDED": FailureKind.TIMEOUT,
    "UNAUTHENTICATED": FailureKind.AUTH_FAILED,
    "PERMISSION_DENIED": FailureKind.AUTH_FAILED,
    # "User location is not supported", billing not enabled: not the caller's fault, and no
    # retry here will help, so the provider is treated as unusable (and the router fails over).
    "FAILED_PRECONDITION": FailureKind.AUTH_FAILED,
    "NOT_FOUND": FailureKind.NOT_FOUND,
    "INVALID_ARGUMENT": FailureKind.BAD_REQUEST,
}
# "The input token count (1200000) exceeds the maximum number of tokens allowed (1048576)."
_CONTEXT = re.compile(r"token count.*exceeds|exceeds the maximum number of tokens|context (window|length)", re.I)
_DELAY = re.compile(r"^\s*([0-9.]+)s\s*$")
_KEYLIKE = re.compile(r"AIza[0-9A-Za-z_\-]{10,}")
_MAX_MESSAGE = 300


def _safe(message: str) -> str:
    message = _KEYLIKE.sub("AIza***", " ".join(message.split()))
    return message if len(message) <= _MAX_MESSAGE else message[: _MAX_MESSAGE - 1] + "…"


def _classify_object(http_status: int | None, error: object) -> UpstreamError:
    status = code = message = None
    details: list[Any] = []
    if isinstance(error, dict):
        status, code, message = error.get("status"), error.get("code"), error.get("message")
        details = error.get("details") if isinstance(error.get("details"), list) else []  # type: ignore[assignment]
    elif isinstance(error, str):
        message = error
    if http_status is None and isinstance(code, int):
        http_status = code
    text = _safe(message) if isinstance(message, str) and message else "no error message"
    reasons = {d.get("reason") for d in details if isinstance(d, dict)}
    kind = _STATUS_KINDS.get(status) if isinstance(status, str) else None
    if "API_KEY_INVALID" in reasons or text.startswith("API key not valid"):
        kind = FailureKind.AUTH_FAILED
    elif kind in (FailureKind.BAD_REQUEST, None) and _CONTEXT.search(text):
        kind = FailureKind.CONTEXT_TOO_LONG
    elif kind is None:
        kind = kind_for_status(http_status) if http_status and http_status >= 400 else FailureKind.SERVER_ERROR
    retry_after = None
    for detail in details:
        if isinstance(detail, dict) and isinstance(detail.get("retryDelay"), str):
            match = _DELAY.match(detail["retryDelay"])
            if match:
                retry_after = float(match.group(1))
    return UpstreamError(kind, text, status=http_status, retry_after=retry_after,
                         vendor_code=status if isinstance(status, str) else None)


def classify_error(status: int, body: bytes, headers: Mapping[str, str]) -> UpstreamError:
    """An HTTP error response from the Gemini API as an :class:`UpstreamError`.

    Reads ``{"error": {"code", "message", "status", "details"}}`` (also wrapped in a list, as
    the streaming endpoint sometimes sends it); anything else is classified by status.
    """
    try:
        document = orjson.loads(body) if body else None
    except orjson.JSONDecodeError:
        document = None
    if isinstance(document, list) and document:
        document = document[0]
    if isinstance(document, dict) and document.get("error") is not None:
        error = _classify_object(status, document["error"])
    else:
        error = UpstreamError(kind_for_status(status), f"HTTP {status} with a body that is not an error document",
                              status=status)
    error.status = status
    if error.retry_after is None and error.kind in (FailureKind.RATE_LIMITED, FailureKind.OVERLOADED):
        error.retry_after = parse_retry_after(headers.get("retry-after"))
    return error
