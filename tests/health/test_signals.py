"""The signal listener's windows on a controllable clock: what counts as an error, what a skip
means, and buckets that slide."""

from __future__ import annotations

from outlast.health.signals import SignalListener
from outlast.providers.errors import FailureKind, RequestError, UpstreamError
from outlast.routing.exchange import AllAttemptsFailed, Attempt, Exchange
from outlast.routing.plan import Target

OPUS = Target("anthropic", "claude-opus-4-6")
GPT = Target("openai", "gpt-5.1")


class Clock:
    now = 1000.0

    def __call__(self) -> float:
        return self.now


def attempt(target: Target, kind: FailureKind | None = None, during_stream: bool = False) -> Attempt:
    error = None if kind is None else UpstreamError(kind, "x", during_stream=during_stream)
    return Attempt(target, 0.0, first_event=None if kind else 0.25, ended=0.3, error=error)


def test_errors_skips_and_caller_faults_are_counted_apart() -> None:
    clock = Clock()
    signals = SignalListener(clock, bucket=5.0, keep=60.0)
    exchange = Exchange("x", "openai", "r", 0.0, plan=(OPUS, GPT))
    for kind in (FailureKind.OVERLOADED, FailureKind.OVERLOADED, FailureKind.BAD_REQUEST, None):
        signals.attempt_finished(exchange, attempt(OPUS, kind))
    signals.attempt_finished(exchange, attempt(OPUS, FailureKind.CONNECTION_LOST, during_stream=True))
    exchange.skipped = [OPUS]
    exchange.served_by = GPT
    signals.exchange_finished(exchange)
    window = signals.series["anthropic/claude-opus-4-6"].window(clock.now, 30)
    assert window.samples == 5  # 5 attempts, the caller's own mistake left out, one skip
    assert window.errors == 4  # two 529s, one cut, the skip (attributed to the last failure)
    assert window.mix() == {"overloaded": 2, "bad_request": 1, "cut": 1}
    assert window.latency == 0.25
    assert signals.series["anthropic"].total_saved == 1 and signals.failovers == 1
    clock.now += 61  # everything slid out of the ring
    assert signals.series["anthropic/claude-opus-4-6"].window(clock.now, 30).samples == 0


def test_rate_limits_are_not_errors_and_a_refused_request_is_not_a_failure() -> None:
    clock = Clock()
    signals = SignalListener(clock)
    exchange = Exchange("x", "openai", "r", 0.0, plan=(GPT,))
    signals.attempt_finished(exchange, attempt(GPT, FailureKind.RATE_LIMITED))
    exchange.skipped = [GPT]  # waiting out the retry-after
    exchange.error = AllAttemptsFailed("r", [UpstreamError(FailureKind.RATE_LIMITED, "slow down")])
    signals.exchange_finished(exchange)
    window = signals.series["openai/gpt-5.1"].window(clock.now, 30)
    assert window.errors == 0 and window.rate_limited == 2 and window.rate_limited_rate == 1.0
    refused = Exchange("y", "openai", "nope", 0.0)
    refused.error = RequestError(404, "model 'nope' is not routed")
    signals.exchange_finished(refused)
    requests, errors, _ = signals.totals.window(clock.now, 60)
    assert requests == 2 and errors == 1  # the 429 exchange failed; the unknown model is the caller's
