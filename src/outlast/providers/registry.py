"""The closed table of provider adapters, by wire family."""

from __future__ import annotations

from typing import Any

from outlast.config import ProviderConfig
from outlast.providers.anthropic import AnthropicProvider
from outlast.providers.base import Provider
from outlast.providers.gemini import GeminiProvider
from outlast.providers.openai import OpenAIProvider


def build_provider(name: str, config: ProviderConfig) -> Provider:
    """An adapter for one configured provider. Its HTTP session opens on first use."""
    key = config.api_key.get_secret_value() if config.api_key is not None else None
    timeouts = config.timeouts.build()
    headers = dict(config.headers)
    kwargs: dict[str, Any] = {"base_url": config.base_url} if config.base_url else {}
    if config.kind == "anthropic":
        return AnthropicProvider(name, api_key=key, timeouts=timeouts, headers=headers, **kwargs)
    if config.kind == "openai":
        return OpenAIProvider(name, api_key=key, timeouts=timeouts, headers=headers,
                              max_tokens_field=config.max_tokens_field, **kwargs)
    if config.kind == "gemini":
        return GeminiProvider(name, api_key=key, timeouts=timeouts, headers=headers,
                              plain_json=config.plain_json, **kwargs)
    raise ValueError(f"unknown provider kind {config.kind!r}")  # unreachable: config validates kind
