"""Anthropic Messages errors: upstream error answers classified (``classify_error``) and error
documents rendered for callers (``error_body``)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import orjson

from outlast.providers.errors import FailureKind, UpstreamError, kind_for_status, parse_retry_after

_TYPE_KIND = {
    "overloaded_error": FailureKind.OVERLOADED,
    "rate_limit_error": FailureKind.RATE_LIMITED,
    "api_error": FailureKind.SERVER_ERROR,
    "timeout_error": FailureKind.TIMEOUT,
    "authentication_error": FailureKind.AUTH_FAILED,
    "permission_error": FailureKind.AUTH_FAILED,
    "billing_error": FailureKind.AUTH_FAILED,  # the provider's account, not the caller's request
    "not_found_error": FailureKind.NOT_FOUND,
    "request_too_large": FailureKind.BAD_REQUEST,
    "invalid_request_error": FailureKind.BAD_REQUEST,
}
_SPECIFIC_SERVER_SIDE = (FailureKind.OVERLOADED, FailureKind.TIMEOUT)
_CONTEXT_PHRASES = ("prompt is too long", "exceed context limit", "context window", "context length")
_FILTER_PHRASES = ("content filtering policy", "usage policy")


def _from_error_payload(error: Mapping[str, Any], status: int | None, retry_after: float | None, *,
                       during_stream: bool = False) -> UpstreamError:
    vendor_type = error.get("type")
    vendor_type = vendor_type if isinstance(vendor_type, str) else None
    message = error.get("message")
    message = message if isinstance(message, str) and message else None
    by_type = _TYPE_KIND.get(vendor_type) if vendor_type else None
    if status == 429:
        kind = FailureKind.RATE_LIMITED
    elif status == 529:
        kind = FailureKind.OVERLOADED
    elif status is not None and status >= 500:
        # A 5xx is the server's problem whatever its body claims, and "api_error" (Anthropic's
        # generic type) says less than the status: 503 is overload, 504 a timeout.
        kind = by_type if by_type in _SPECIFIC_SERVER_SIDE else kind_for_status(status)
    elif by_type is not None:
        kind = by_type
    elif status is not None:
        kind = kind_for_status(status)
    else:
        kind = FailureKind.SERVER_ERROR
    if kind is FailureKind.BAD_REQUEST and message is not None:
        lowered = message.lower()
        if any(p in lowered for p in _CONTEXT_PHRASES):
            kind = FailureKind.CONTEXT_TOO_LONG
        elif any(p in lowered for p in _FILTER_PHRASES):
            kind = FailureKind.CONTENT_FILTERED
    if message is None:
        message = f"upstream answered HTTP {status}" if status is not None else "upstream sent an error event"
        if vendor_type:
            message += f" ({vendor_type})"
    return UpstreamError(kind, message, status=status, retry_after=retry_after, during_stream=during_stream,
                         vendor_code=vendor_type)


def classify_error(status: int, body: bytes, headers: Mapping[str, str]) -> UpstreamError:
    """An HTTP error answer from a Messages upstream as one :class:`UpstreamError`.

    The vendor's error type refines the status (``invalid_request_error`` saying the
    prompt is too long is ``CONTEXT_TOO_LONG``); a body that is not an Anthropic
    error document is classified by status alone. The message is the vendor's own.
    """
    error: Mapping[str, Any] = {}
    try:
        document = orjson.loads(body)
    except orjson.JSONDecodeError:
        document = None
    if isinstance(document, dict) and isinstance(document.get("error"), dict):
        error = document["error"]
    retry_after = parse_retry_after(headers.get("retry-after") or headers.get("Retry-After"))
    return _from_error_payload(error, status, retry_after)


_GENERIC_TYPES = {
    "invalid_request": "invalid_request_error",
    "bad_request": "invalid_request_error",
    "authentication": "authentication_error",
    "auth_failed": "authentication_error",
    "permission": "permission_error",
    "permission_denied": "permission_error",
    "not_found": "not_found_error",
    "rate_limited": "rate_limit_error",
    "rate_limit": "rate_limit_error",
    "overloaded": "overloaded_error",
    "server_error": "api_error",
    "internal_error": "api_error",
    "timeout": "timeout_error",
    "request_too_large": "request_too_large",
}
_ANTHROPIC_TYPES = frozenset(_TYPE_KIND)
_STATUS_TYPES = {400: "invalid_request_error", 401: "authentication_error", 403: "permission_error",
                 404: "not_found_error", 413: "request_too_large", 429: "rate_limit_error",
                 504: "timeout_error", 529: "overloaded_error"}


def _error_type(kind: str, status: int) -> str:
    if kind in _ANTHROPIC_TYPES:
        return kind
    if (mapped := _GENERIC_TYPES.get(kind)) is not None:
        return mapped
    if status >= 500:
        return _STATUS_TYPES.get(status, "api_error")
    return _STATUS_TYPES.get(status, "invalid_request_error")


def error_body(status: int, kind: str, message: str, param: str | None = None,
               code: str | None = None) -> dict[str, Any]:
    """An Anthropic error document. ``kind`` is an Anthropic error type; a few generic names
    (``server_error``, ``rate_limited``, ...) are mapped, anything else is taken from the
    status. The API has no ``param`` or ``code`` fields, so they are left out."""
    return {"type": "error", "error": {"type": _error_type(kind, status), "message": message}}
