"""What the provider tests share: reading one answer, and expecting one typed failure."""

from __future__ import annotations

from contextlib import aclosing

import pytest

from outlast.dialects.canonical import Event, Request
from outlast.providers.base import Provider
from outlast.providers.errors import UpstreamError


async def stream_events(provider: Provider, request: Request, model: str) -> list[Event]:
    async with aclosing(provider.stream(request, model)) as events:
        return [e async for e in events]


async def expect_failure(provider: Provider, request: Request, model: str, *, key: str) -> UpstreamError:
    """The one :class:`UpstreamError` the answer fails with, owned by ``provider`` and ``model``
    and never showing the provider's ``key``."""
    with pytest.raises(UpstreamError) as caught:
        await stream_events(provider, request, model)
    error = caught.value
    assert (error.provider, error.model) == (provider.name, model)
    assert key not in error.describe()
    return error
