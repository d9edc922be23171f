"""Chat Completions errors: error documents for callers (``error_body``) and upstream error answers
classified (``classify_error``)."""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

import orjson

from outlast.providers.errors import FailureKind, UpstreamError, kind_for_status, parse_retry_after

# OpenAI's error "type" for each Anthropic-style kind, with the code OpenAI puts beside it.
_ERROR_TYPES: dict[str, tuple[str, str | None]] = {
    "invalid_request_error": ("invalid_request_error", None),
    "authentication_error": ("invalid_request_error", "invalid_api_key"),
    "permission_error": ("invalid_request_error", None),
    "not_found_error": ("invalid_request_error", None),
    "request_too_large": ("invalid_request_error", "request_too_large"),
    "rate_limit_error": ("requests", "rate_limit_exceeded"),
    "api_error": ("server_error", None),
    "overloaded_error": ("server_error", None),
}


def error_body(status: int, kind: str, message: str, param: str | None = None,
               code: str | None = None) -> dict[str, Any]:
    """OpenAI's error document ``{"error": {"message", "type", "param", "code"}}``."""
    type_, default_code = _ERROR_TYPES.get(kind, ("server_error" if status >= 500 else "invalid_request_error",
                                                  None))
    return {"error": {"message": message, "type": type_, "param": param, "code": code or default_code}}


# =========================================================================== outbound: errors

# Vendor codes that say the prompt is over the model's window: OpenAI and Groq send
# ``context_length_exceeded``; llama.cpp ``exceed_context_size_error`` (as its type).
_CONTEXT_CODES = frozenset({"context_length_exceeded", "exceed_context_size_error", "string_above_max_length"})
# vLLM and older OpenAI models only say so in the message.
_CONTEXT_WORDS = ("maximum context length", "context length exceeded", "context window",
                  "exceeds the available context")
_FILTER_CODES = frozenset({"content_policy_violation", "content_filter", "content_policy_violation_error"})
# insufficient_quota (and OpenAI's billing codes) come as 429 but are not transient: the
# account is out of credit until a person acts, so the provider is treated as unusable.
_QUOTA_CODES = frozenset({"insufficient_quota", "billing_hard_limit_reached", "credit_balance_exhausted",
                          "organization_spend_limit_exceeded", "project_spend_limit_exceeded"})
_KEYLIKE = re.compile(r"\b(sk|key|gsk|xai)-[A-Za-z0-9_*\-]{6,}")
_MAX_MESSAGE = 300


def _safe(message: str) -> str:
    message = _KEYLIKE.sub(r"\1-***", " ".join(message.split()))
    return message if len(message) <= _MAX_MESSAGE else message[: _MAX_MESSAGE - 1] + "…"


def _classify_object(status: int | None, error: object, *, during_stream: bool) -> UpstreamError:
    """An OpenAI-style error object (or Ollama's plain string) as an :class:`UpstreamError`."""
    code = type_ = None
    if isinstance(error, dict):
        message = error.get("message")
        raw_code, raw_type = error.get("code"), error.get("type")
        code = raw_code if isinstance(raw_code, str) else None
        type_ = raw_type if isinstance(raw_type, str) else None
    else:
        message = error
    text = _safe(message) if isinstance(message, str) and message else "no error message"
    signals = {code, type_}
    if signals & _QUOTA_CODES:
        kind = FailureKind.AUTH_FAILED
    elif signals & _CONTEXT_CODES or any(w in text.lower() for w in _CONTEXT_WORDS):
        kind = FailureKind.CONTEXT_TOO_LONG
    elif signals & _FILTER_CODES:
        kind = FailureKind.CONTENT_FILTERED
    elif status is not None and status >= 400:
        kind = kind_for_status(status)
    elif type_ in ("rate_limit_error", "requests", "tokens") or code == "rate_limit_exceeded":
        kind = FailureKind.RATE_LIMITED
    elif type_ in ("invalid_request_error",):
        kind = FailureKind.BAD_REQUEST
    else:  # an in-stream or 200-status error without a telling type: the server failed
        kind = FailureKind.SERVER_ERROR
    return UpstreamError(kind, text, status=status, during_stream=during_stream, vendor_code=code or type_)


def classify_error(status: int, body: bytes, headers: Mapping[str, str]) -> UpstreamError:
    """An HTTP error response from an OpenAI-compatible server as an :class:`UpstreamError`.

    Reads OpenAI's ``{"error": {...}}``, Ollama's ``{"error": "..."}`` and vLLM's top-level
    ``{"message", "type", "code"}``; a body that is not JSON (a proxy's HTML page) is
    classified by status alone.
    """
    try:
        document = orjson.loads(body) if body else None
    except orjson.JSONDecodeError:
        document = None
    if isinstance(document, dict) and document.get("error") is not None:
        error = _classify_object(status, document["error"], during_stream=False)
    elif isinstance(document, dict) and isinstance(document.get("message"), str):
        error = _classify_object(status, document, during_stream=False)
    else:
        error = UpstreamError(kind_for_status(status), f"HTTP {status} with a body that is not an error document",
                              status=status)
    if error.kind is FailureKind.RATE_LIMITED or status in (429, 503):
        retry_ms = headers.get("retry-after-ms")
        if retry_ms:
            seconds = parse_retry_after(retry_ms)
            error.retry_after = None if seconds is None else seconds / 1000
        else:
            error.retry_after = parse_retry_after(headers.get("retry-after"))
    return error
