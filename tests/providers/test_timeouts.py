"""The connect and total deadlines of every adapter, over loopback, on asyncio's own loop and on uvloop
(the loop ``outlast serve`` runs): a connection the upstream never accepts fails as ``timeout (connect)``;
an answer still arriving when ``total`` passes fails as ``timeout (total)``, and the provider's next
request is answered whole. (The first-token and idle deadlines are tested with each adapter's faults.)"""

from __future__ import annotations

import asyncio
import select
import socket
import sys
from collections.abc import Awaitable, Callable, Iterator
from typing import Any, TypeVar

import pytest
from tests.conftest import PROVIDER_KEYS
from tests.providers.support import expect_failure, stream_events

from outlast.dialects.canonical import Message, Request, Response, Text, collect
from outlast.providers.anthropic import AnthropicProvider
from outlast.providers.base import Provider, Timeouts
from outlast.providers.errors import FailureKind, TimeoutPhase, UpstreamError
from outlast.providers.gemini import GeminiProvider
from outlast.providers.openai import OpenAIProvider

T = TypeVar("T")

MODELS = {"openai": "gpt-5.1", "anthropic": "claude-sonnet-4-6", "gemini": "gemini-2.5-flash"}
VENDORS = sorted(MODELS)
# Each adapter pointed at ``origin`` laid out as the simulator serves its vendor.
ADAPTERS: dict[str, Callable[[str, Timeouts], Provider]] = {
    "openai": lambda origin, timeouts: OpenAIProvider(
        "openai", base_url=f"{origin}/openai/v1", api_key=PROVIDER_KEYS["openai"], timeouts=timeouts),
    "anthropic": lambda origin, timeouts: AnthropicProvider(
        "anthropic", base_url=f"{origin}/anthropic", api_key=PROVIDER_KEYS["anthropic"], timeouts=timeouts),
    "gemini": lambda origin, timeouts: GeminiProvider(
        "gemini", base_url=f"{origin}/gemini", api_key=PROVIDER_KEYS["gemini"], timeouts=timeouts),
}
# One event per word: at the slow fault's pace the answer takes seconds, far past the total deadline.
LONG_REPLY = "[[reply:" + " ".join(f"word{i}" for i in range(40)) + "]]"
# Only so that a regression fails instead of hanging the run: every deadline under test is far shorter.
GUARD_SECONDS = 60


def uvloop_factory() -> asyncio.AbstractEventLoop:
    import uvloop

    return uvloop.new_event_loop()


LOOPS = [
    pytest.param(asyncio.new_event_loop, id="asyncio"),
    pytest.param(uvloop_factory, id="uvloop",
                 marks=pytest.mark.skipif(sys.platform == "win32", reason="uvloop does not run on Windows")),
]


def ask(text: str) -> Request:
    return Request(model="caller-name", messages=(Message("user", (Text(text),)),), max_tokens=200)


def run_on(loop_factory: Callable[[], asyncio.AbstractEventLoop], main: Callable[[], Awaitable[T]]) -> T:
    """``main()`` on a fresh loop made by ``loop_factory``."""
    async def guarded() -> T:
        return await asyncio.wait_for(main(), GUARD_SECONDS)

    with asyncio.Runner(loop_factory=loop_factory) as runner:
        return runner.run(guarded())


@pytest.fixture(scope="module")
def unaccepting() -> Iterator[str]:
    """The origin of a loopback listener that never accepts, with its accept queue already full.

    With a backlog of 0 the queue is full once one connection waits in it, and Linux then drops
    every new SYN unanswered, so a client's connect neither succeeds nor is refused: it waits.
    """
    listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    filler: socket.socket | None = None
    try:
        listener.bind(("127.0.0.1", 0))
        listener.listen(0)
        address = listener.getsockname()
        filler = socket.create_connection(address, timeout=10)
        queued, _, _ = select.select([listener], [], [], 10)
        if not queued:
            pytest.fail("the filler connection never reached the listener's accept queue")
        yield f"http://{address[0]}:{address[1]}"
    finally:
        if filler is not None:
            filler.close()
        listener.close()


def fail_once(provider: Any, vendor: str, loop_factory: Callable[[], asyncio.AbstractEventLoop]) -> UpstreamError:
    """Ask once, on a loop of ``loop_factory``'s making, and return the failure (closing the provider)."""

    async def attempt() -> UpstreamError:
        try:
            return await expect_failure(provider, ask("hi"), MODELS[vendor], key=PROVIDER_KEYS[vendor])
        finally:
            await provider.aclose()

    return run_on(loop_factory, attempt)


@pytest.mark.parametrize("loop_factory", LOOPS)
@pytest.mark.parametrize("vendor", VENDORS)
def test_a_connection_never_accepted_times_out_in_the_connect_phase(
        vendor: str, loop_factory: Callable[[], asyncio.AbstractEventLoop], unaccepting: str) -> None:
    provider = ADAPTERS[vendor](unaccepting, Timeouts(connect=0.2, first_token=30, idle=30, total=60))
    error = fail_once(provider, vendor, loop_factory)
    assert error.kind is FailureKind.TIMEOUT and error.phase is TimeoutPhase.CONNECT, error.describe()
    assert not error.during_stream
    assert error.message == "no connection within the connect deadline of 0.2 s"


@pytest.mark.parametrize("loop_factory", LOOPS)
@pytest.mark.parametrize("vendor", VENDORS)
def test_an_answer_still_streaming_at_the_total_deadline_times_out_and_the_next_request_is_whole(
        vendor: str, loop_factory: Callable[[], asyncio.AbstractEventLoop], sim: Any) -> None:
    # Each gap is far inside the idle deadline; only the whole attempt outlasts its bound.
    sim.add_fault(vendor=vendor, mode="slow", gap_ms=100, count=1)
    provider = ADAPTERS[vendor](sim.url, Timeouts(connect=5, first_token=5, idle=5, total=0.5))
    model, key = MODELS[vendor], PROVIDER_KEYS[vendor]

    async def attempts() -> tuple[UpstreamError, Response]:
        try:
            error = await expect_failure(provider, ask(LONG_REPLY), model, key=key)
            # At once, while the slow answer is still being sent: were its connection back in the pool
            # half-read, this request would get the rest of that answer instead of its own.
            answer = collect(await stream_events(provider, ask("[[reply:whole again]]"), model))
        finally:
            await provider.aclose()
        return error, answer

    error, answer = run_on(loop_factory, attempts)
    assert error.kind is FailureKind.TIMEOUT and error.phase is TimeoutPhase.TOTAL, error.describe()
    assert error.during_stream
    assert error.message == "no answer within the total deadline of 0.5 s"
    assert answer.text() == "whole again" and answer.model == model
    slow, again = sim.requests(vendor)
    assert slow["fault"]["mode"] == "slow" and again["fault"] is None


@pytest.mark.parametrize("loop_factory", LOOPS)
@pytest.mark.parametrize("vendor", VENDORS)
def test_a_total_deadline_before_the_first_token_deadline_is_reported_as_total(
        vendor: str, loop_factory: Callable[[], asyncio.AbstractEventLoop], sim: Any) -> None:
    # A silent upstream: the total deadline passes first, and the failure must say so (a first-token
    # silence opens the target's breaker at once; a total that ran out does not).
    sim.add_fault(vendor=vendor, mode="hang", count=1)
    provider = ADAPTERS[vendor](sim.url, Timeouts(connect=5, first_token=30, idle=30, total=0.3))
    error = fail_once(provider, vendor, loop_factory)
    assert error.kind is FailureKind.TIMEOUT and error.phase is TimeoutPhase.TOTAL, error.describe()
    assert not error.during_stream
    assert error.message == "no answer within the total deadline of 0.3 s"
