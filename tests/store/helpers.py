"""Exchanges built the way the router and endpoint build them, for the store's tests."""

from __future__ import annotations

import itertools
import os
import time
from typing import Any

from outlast.dialects.canonical import Message, Request, Response, StopReason, Text, ToolUse, Usage
from outlast.providers.errors import FailureKind, UpstreamError
from outlast.routing.plan import Target
from outlast.routing.router import Attempt, Exchange

_ids = itertools.count()


def exchange_id() -> str:
    return f"{int(time.time() * 1000):012x}{next(_ids):04x}{os.urandom(8).hex()}"


def user(text: str) -> Message:
    return Message("user", (Text(text),))


def assistant(text: str, *tools: ToolUse) -> Message:
    return Message("assistant", (Text(text), *tools))


def make_exchange(messages: list[Message], answer: str | None, *, model: str = "m", fallback: bool = False,
                  system: str = "", tools: tuple[ToolUse, ...] = (), **extra: Any) -> Exchange:
    """A finished exchange: ``messages`` asked, ``answer`` given (``None``: every attempt failed)."""
    started = time.monotonic() - 0.25
    first, second = Target("anthropic", "claude-x"), Target("openai", "gpt-x")
    exchange = Exchange(exchange_id(), "anthropic", model, started)
    exchange.plan = (first, second)
    exchange.request = Request(model, tuple(messages), system=(Text(system),) if system else (),
                               headers={"anthropic-version": "2023-06-01"})
    failed = Attempt(first, started, ended=started + 0.05,
                     error=UpstreamError(FailureKind.OVERLOADED, "overloaded (529)", provider="anthropic"))
    exchange.attempts.append(failed)
    if answer is not None:
        served = second if fallback else first
        ok = Attempt(served, started + 0.06, first_event=started + 0.1, ended=started + 0.2)
        exchange.attempts.append(ok)
        exchange.served_by = served
        exchange.served_model = served.model + "-2026"
        exchange.usage = Usage(11, 7)
        exchange.stop_reason = StopReason.TOOL_USE if tools else StopReason.END_TURN
        exchange.response = Response("r-" + exchange.id, served.model, (Text(answer), *tools),
                                     exchange.stop_reason, usage=Usage(11, 7))
    else:
        exchange.error = RuntimeError("every candidate failed")
    exchange.ended = started + 0.25
    for name, value in extra.items():
        setattr(exchange, name, value)
    return exchange
