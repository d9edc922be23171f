"""The adapter for Anthropic Messages upstreams (api.anthropic.com and compatible servers).

Every request is sent with ``stream: true``; a non-streaming caller is served by the
collected stream. An upstream that answers with a whole JSON message instead is
accepted and replayed as events. Headers sent: ``x-api-key`` (the provider's key,
never the caller's), ``anthropic-version`` (the caller's own, else ``2023-06-01``),
``anthropic-beta`` (the caller's, joined with any configured), ``content-type`` and
``accept``. Failures leave as :class:`UpstreamError` with ``provider`` and ``model``
set. Whether an answer is empty is the router's business, not this adapter's.
"""

from __future__ import annotations

from collections.abc import AsyncGenerator, Mapping
from contextlib import aclosing
from typing import Any

import orjson

from outlast.dialects import anthropic_messages as wire
from outlast.dialects.canonical import Event, Request
from outlast.providers.base import Timeouts
from outlast.providers.errors import FailureKind, UpstreamError
from outlast.providers.http import JSONBody, Upstream
from outlast.providers.sse import SSEEvent

DEFAULT_BASE_URL = "https://api.anthropic.com"
DEFAULT_VERSION = "2023-06-01"


def _encode_default(value: object) -> Any:
    # canonical values hold Mappings; orjson only knows dicts
    if isinstance(value, Mapping):
        return dict(value)
    raise TypeError(f"cannot encode {type(value).__name__}")


def _encode(body: dict[str, Any]) -> bytes:
    return orjson.dumps(body, default=_encode_default)


class AnthropicProvider:
    kind = "anthropic"

    def __init__(
        self,
        name: str,
        *,
        base_url: str = DEFAULT_BASE_URL,
        api_key: str | None = None,
        timeouts: Timeouts = Timeouts(),  # noqa: B008 - frozen value
        headers: Mapping[str, str] | None = None,
    ) -> None:
        self.name = name
        base = base_url.rstrip("/")
        if base.endswith("/v1"):  # tolerate a base URL given with the version path
            base = base[:-3]
        self.base_url = base
        self._messages_url = f"{base}/v1/messages"
        self._count_url = f"{base}/v1/messages/count_tokens"
        self._api_key = api_key
        self._static = {k.lower(): v for k, v in (headers or {}).items()}
        self.upstream = Upstream(name, timeouts)

    def __repr__(self) -> str:  # never shows the key
        return f"AnthropicProvider({self.name!r}, base_url={self.base_url!r})"

    def _headers(self, request: Request, *, stream: bool) -> dict[str, str]:
        headers = dict(self._static)
        wanted = request.headers
        headers["anthropic-version"] = wanted.get("anthropic-version") or headers.get(
            "anthropic-version", DEFAULT_VERSION)
        beta = ",".join(b for b in (headers.get("anthropic-beta"), wanted.get("anthropic-beta")) if b)
        if beta:
            headers["anthropic-beta"] = ",".join(dict.fromkeys(p.strip() for p in beta.split(",") if p.strip()))
        if self._api_key is not None:
            headers["x-api-key"] = self._api_key
        headers["content-type"] = "application/json"
        headers["accept"] = "text/event-stream" if stream else "application/json"
        return headers

    def _send(self, url: str, body: bytes, request: Request, model: str, *,
              stream: bool) -> AsyncGenerator[list[SSEEvent] | JSONBody, None]:
        return self.upstream.events("POST", url, body, self._headers(request, stream=stream), model=model,
                                    classify=wire.classify_error)

    def _own(self, error: UpstreamError, model: str) -> UpstreamError:
        error.provider, error.model = self.name, model
        return error

    def stream(self, request: Request, model: str) -> AsyncGenerator[Event, None]:
        """The answer to ``request`` from ``model`` as canonical events; raises :class:`UpstreamError`."""
        body = _encode(wire.render_request(request, model, stream=True))
        return self.upstream.answer(self._messages_url, body, self._headers(request, stream=True), model=model,
                                    classify=wire.classify_error, parser=wire.StreamParser(),
                                    parse_response=wire.parse_response)

    async def count_tokens(self, request: Request, model: str) -> int:
        """Exact input tokens from ``POST /v1/messages/count_tokens``."""
        body = _encode(wire.render_count_tokens_request(request, model))
        try:
            async with aclosing(self._send(self._count_url, body, request, model, stream=False)) as received:
                async for item in received:
                    value = item.value if isinstance(item, JSONBody) else None
                    tokens = value.get("input_tokens") if isinstance(value, dict) else None
                    if isinstance(tokens, int) and not isinstance(tokens, bool):
                        return tokens
                    break
        except UpstreamError as error:
            raise self._own(error, model) from None
        raise self._own(UpstreamError(FailureKind.MALFORMED, "count_tokens answer has no input_tokens"), model)

    async def aclose(self) -> None:
        await self.upstream.aclose()
