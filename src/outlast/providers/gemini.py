"""The adapter for Google's Gemini API (``generativelanguage.googleapis.com``).

Always ``POST {base}/v1beta/models/{model}:streamGenerateContent?alt=sse`` with the
provider's key in ``x-goog-api-key``; a plain JSON answer is accepted too. Whether an
answer is empty is the router's business, not this one's.
"""

from __future__ import annotations

from collections.abc import AsyncGenerator, Mapping
from urllib.parse import quote

import orjson

from outlast.dialects import gemini
from outlast.dialects.canonical import Event, Request, Response
from outlast.providers.base import Timeouts
from outlast.providers.http import Upstream

# Upstream.events is an async generator, though annotated as an iterator.

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
    ) -> None:
        self.name = name
        self.base_url = base_url.rstrip("/")
        sent = {k: v for k, v in (headers or {}).items() if k.lower() not in _CREDENTIALS}
        self._headers = {**sent, "content-type": "application/json", "accept": "text/event-stream"}
        if api_key:
            self._headers["x-goog-api-key"] = api_key
        self._upstream = Upstream(name, timeouts)

    def url(self, model: str) -> str:
        model = model.removeprefix("models/")
        return f"{self.base_url}/v1beta/models/{quote(model, safe='-._~')}:streamGenerateContent?alt=sse"

    def stream(self, request: Request, model: str) -> AsyncGenerator[Event, None]:
        body = orjson.dumps(gemini.render_request(request, model, stream=True))
        return self._upstream.answer(self.url(model), body, self._headers, model=model,
                                     classify=gemini.classify_error, parser=gemini.StreamParser(),
                                     parse_response=_parse_json_answer)

    async def aclose(self) -> None:
        await self._upstream.aclose()
