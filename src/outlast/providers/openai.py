"""The adapter for OpenAI and every OpenAI-compatible server (Ollama, vLLM, llama.cpp, Groq, ...).

It always asks the upstream for a stream (a non-streaming caller is served by a
collected stream), but accepts a plain ``chat.completion`` JSON answer too. It sends
the provider's own key, never the caller's, and no ``Authorization`` at all when it
has none (Ollama). Whether an answer is empty is the router's business, not this one's.
"""

from __future__ import annotations

from collections.abc import AsyncGenerator, Mapping
from urllib.parse import urlsplit

import orjson

from outlast.dialects import openai_chat
from outlast.dialects.canonical import Event, Request
from outlast.providers.base import Timeouts
from outlast.providers.http import Upstream

# Upstream.events is an async generator, though annotated as an iterator.


def default_max_tokens_field(base_url: str) -> str:
    """OpenAI's own API wants ``max_completion_tokens`` (reasoning models reject ``max_tokens``);
    the compatible servers (Ollama, vLLM, llama.cpp) know only ``max_tokens``."""
    host = urlsplit(base_url).hostname or ""
    return "max_completion_tokens" if host == "api.openai.com" else "max_tokens"


class OpenAIProvider:
    kind = "openai"

    def __init__(
        self,
        name: str,
        *,
        base_url: str = "https://api.openai.com/v1",
        api_key: str | None = None,
        timeouts: Timeouts = Timeouts(),  # noqa: B008 - frozen, so one shared default is safe
        headers: Mapping[str, str] | None = None,
        max_tokens_field: str | None = None,
    ) -> None:
        self.name = name
        self.base_url = base_url.rstrip("/")
        self.max_tokens_field = max_tokens_field or default_max_tokens_field(self.base_url)
        self._url = self.base_url + "/chat/completions"
        sent = {k: v for k, v in (headers or {}).items() if k.lower() != "authorization"}
        self._headers = {**sent, "content-type": "application/json", "accept": "text/event-stream"}
        if api_key:
            self._headers["authorization"] = f"Bearer {api_key}"
        self._upstream = Upstream(name, timeouts)

    def stream(self, request: Request, model: str) -> AsyncGenerator[Event, None]:
        body = orjson.dumps(openai_chat.render_request(request, model, stream=True,
                                                       max_tokens_field=self.max_tokens_field))
        return self._upstream.answer(self._url, body, self._headers, model=model,
                                     classify=openai_chat.classify_error, parser=openai_chat.StreamParser(),
                                     parse_response=openai_chat.parse_response)

    async def aclose(self) -> None:
        await self._upstream.aclose()
