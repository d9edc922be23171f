"""The adapter for Google's Gemini API (``generativelanguage.googleapis.com``).

``POST {base}/v1beta/models/{model}:streamGenerateContent?alt=sse`` with the provider's
key in ``x-goog-api-key``; a plain JSON answer to it is accepted too. With
``plain_json=True``, a caller that did not ask for a stream is sent to
``:generateContent`` instead, and the one JSON answer is replayed as canonical events.

Streaming stays the default for every caller, as in the other adapters, because the
router's adaptive first-token deadline and its first-token latency statistics assume a
stream: a ``generateContent`` answer arrives only when it is complete, so its whole
generation time would count as time to first token (and a long answer could miss the
deadline and be failed over). Whether an answer is empty is the router's business.
"""

from __future__ import annotations

from collections.abc import AsyncGenerator, Mapping
from urllib.parse import quote

import orjson

from outlast.dialects import gemini
from outlast.dialects.canonical import Event, Request, Response
from outlast.providers.base import Timeouts
from outlast.providers.http import Upstream

_CREDENTIALS = frozenset({"authorization", "x-goog-api-key"})


def _parse_json_answer(value: object) -> Response:
    if isinstance(value, list) and len(value) == 1:  # a JSON-array stream of one
        value = value[0]
    return gemini.parse_response(value)


class GeminiProvider:
    kind = "gemini"

    def __init__(
        self,
        name: str,
        *,
        base_url: str = "https://generativelanguage.googleapis.com",
        api_key: str | None = None,
        timeouts: Timeouts = Timeouts(),  # noqa: B008 - frozen, so one shared default is safe
        headers: Mapping[str, str] | None = None,
        plain_json: bool = False,
    ) -> None:
        self.name = name
        self.base_url = base_url.rstrip("/")
        self.plain_json = plain_json
        sent = {k: v for k, v in (headers or {}).items() if k.lower() not in _CREDENTIALS}
        self._headers = {**sent, "content-type": "application/json", "accept": "text/event-stream"}
        if api_key:
            self._headers["x-goog-api-key"] = api_key
        self._json_headers = {**self._headers, "accept": "application/json"}
        self._upstream = Upstream(name, timeouts)

    def url(self, model: str, *, stream: bool = True) -> str:
        """``:streamGenerateContent?alt=sse``, or ``:generateContent`` when ``stream`` is false."""
        model = quote(model.removeprefix("models/"), safe="-._~")
        if stream:
            return f"{self.base_url}/v1beta/models/{model}:streamGenerateContent?alt=sse"
        return f"{self.base_url}/v1beta/models/{model}:generateContent"

    def stream(self, request: Request, model: str) -> AsyncGenerator[Event, None]:
        stream = request.stream or not self.plain_json
        body = orjson.dumps(gemini.render_request(request, model, stream=stream))
        return self._upstream.answer(self.url(model, stream=stream), body,
                                     self._headers if stream else self._json_headers, model=model,
                                     classify=gemini.classify_error, parser=gemini.StreamParser(),
                                     parse_response=_parse_json_answer)

    async def aclose(self) -> None:
        await self._upstream.aclose()
