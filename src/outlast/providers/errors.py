"""The one failure taxonomy.

Everything routing, circuit breakers, incidents and reports know about upstream
failures lives in this file. Each provider adapter maps what its vendor sends
(status codes, error types, broken sockets, silent streams) to exactly one
:class:`FailureKind` at the seam, and nothing downstream ever looks at a vendor's
status code or message text again.

::

    UpstreamError(kind=...)
    ├── overloaded         529 (Anthropic overloaded_error), 503 with "overloaded"/UNAVAILABLE (Gemini)
    ├── rate_limited       429, with retry_after when the vendor says
    ├── server_error       500, 502, 504 and other 5xx; in-stream "api_error" events
    ├── timeout            connect / first_token / idle / total deadline passed (see ``phase``)
    ├── connection_lost    reset or closed before the answer, or mid-stream (``during_stream``)
    ├── auth_failed        401, 403 (the provider's key, never the client's)
    ├── bad_request        400/422 the caller must fix; 413 request too large
    ├── context_too_long   400 whose vendor code says the prompt is over the window
    ├── content_filtered   400 content-policy refusals, finish_reason content_filter
    ├── not_found          404: unknown model or deployment
    ├── empty_response     a well-formed answer with no content
    └── malformed          the upstream's JSON or SSE could not be read (counts like server_error)
"""

from __future__ import annotations

import math
from enum import StrEnum


class FailureKind(StrEnum):
    OVERLOADED = "overloaded"
    RATE_LIMITED = "rate_limited"
    SERVER_ERROR = "server_error"
    TIMEOUT = "timeout"
    CONNECTION_LOST = "connection_lost"
    AUTH_FAILED = "auth_failed"
    BAD_REQUEST = "bad_request"
    CONTEXT_TOO_LONG = "context_too_long"
    CONTENT_FILTERED = "content_filtered"
    NOT_FOUND = "not_found"
    EMPTY_RESPONSE = "empty_response"
    MALFORMED = "malformed"

    @property
    def caller_fault(self) -> bool:
        """True when the request itself is wrong, so no other provider should be asked."""
        return self is FailureKind.BAD_REQUEST


class TimeoutPhase(StrEnum):
    CONNECT = "connect"
    FIRST_TOKEN = "first_token"
    IDLE = "idle"
    TOTAL = "total"


class UpstreamError(Exception):
    """An attempt at one provider failed. ``message`` is safe to show a caller: adapters
    build it from the vendor's error text and never include a key or header."""

    def __init__(
        self,
        kind: FailureKind,
        message: str,
        *,
        status: int | None = None,
        retry_after: float | None = None,
        phase: TimeoutPhase | None = None,
        during_stream: bool = False,
        provider: str | None = None,
        model: str | None = None,
        vendor_code: str | None = None,
    ) -> None:
        super().__init__(message)
        self.kind = kind
        self.message = message
        self.status = status
        self.retry_after = retry_after
        self.phase = phase
        self.during_stream = during_stream
        self.provider = provider
        self.model = model
        self.vendor_code = vendor_code

    def __repr__(self) -> str:
        return f"UpstreamError({self.kind.value!r}, {self.message!r}, status={self.status})"

    def describe(self) -> str:
        """One line for an error message or a log: what failed and how."""
        where = f"{self.provider}/{self.model}" if self.provider else "upstream"
        detail = self.kind.value
        if self.phase is not None:
            detail += f" ({self.phase.value})"
        if self.status is not None:
            detail += f", HTTP {self.status}"
        if self.during_stream:
            detail += ", mid-stream"
        return f"{where}: {detail}: {self.message}"


def kind_for_status(status: int) -> FailureKind:
    """The default class of an HTTP error status when the body says nothing more specific."""
    if status == 429:
        return FailureKind.RATE_LIMITED
    if status == 529:
        return FailureKind.OVERLOADED
    if status in (401, 403):
        return FailureKind.AUTH_FAILED
    if status == 404:
        return FailureKind.NOT_FOUND
    if status in (408, 504):
        return FailureKind.TIMEOUT
    if status == 503:
        return FailureKind.OVERLOADED
    if status >= 500:
        return FailureKind.SERVER_ERROR
    return FailureKind.BAD_REQUEST


def parse_retry_after(value: str | None) -> float | None:
    """Seconds from a ``retry-after`` header (delta-seconds form; HTTP dates are rare from APIs)."""
    if not value:
        return None
    try:
        seconds = float(value)
    except ValueError:
        from datetime import UTC, datetime
        from email.utils import parsedate_to_datetime

        try:
            when = parsedate_to_datetime(value)
        except (TypeError, ValueError):
            return None
        if when.tzinfo is None:  # "-0000": UTC, says RFC 5322
            when = when.replace(tzinfo=UTC)
        seconds = (when - datetime.now(UTC)).total_seconds()
    if not math.isfinite(seconds):  # "1e400", "inf", "nan": no usable wait
        return None
    return max(0.0, seconds)


class RequestError(Exception):
    """The caller's request cannot be served as sent (gateway-level 4xx): malformed JSON,
    a missing field, an unknown model. Rendered in the caller's dialect."""

    def __init__(self, status: int, message: str, *, kind: str = "invalid_request_error",
                 param: str | None = None, code: str | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        # Anthropic error type names: invalid_request_error, authentication_error, not_found_error, ...
        self.kind = kind
        self.param = param
        self.code = code
