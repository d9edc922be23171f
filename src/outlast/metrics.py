"""Prometheus metrics, kept as plain dict increments so the hot path pays next to nothing.

:class:`Metrics` is a router listener; ``render()`` produces the text exposition
format (version 0.0.4) for ``GET /metrics``.
"""

from __future__ import annotations

from bisect import bisect_left
from collections import defaultdict

from outlast.routing.plan import Target
from outlast.routing.router import Attempt, Exchange

# Distinct model labels kept per provider; later ones are counted as "other". A route pattern
# (``gpt-*: [openai/{model}]``) or a directly named target lets callers choose the model name.
MAX_MODELS = 100
_LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0)


def _escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')


class Counter:
    def __init__(self, name: str, help: str, labels: tuple[str, ...]) -> None:
        self.name, self.help, self.labels = name, help, labels
        self.values: defaultdict[tuple[str, ...], float] = defaultdict(float)

    def inc(self, key: tuple[str, ...], amount: float = 1.0) -> None:
        self.values[key] += amount

    def render(self) -> list[str]:
        lines = [f"# HELP {self.name} {self.help}", f"# TYPE {self.name} counter"]
        for key, value in sorted(self.values.items()):
            lines.append(f"{self.name}{{{_labels(self.labels, key)}}} {value:g}")
        return lines


class Histogram:
    def __init__(self, name: str, help: str, labels: tuple[str, ...],
                 buckets: tuple[float, ...] = _LATENCY_BUCKETS) -> None:
        self.name, self.help, self.labels, self.buckets = name, help, labels, buckets
        self.counts: dict[tuple[str, ...], list[int]] = {}
        self.sums: defaultdict[tuple[str, ...], float] = defaultdict(float)

    def observe(self, key: tuple[str, ...], value: float) -> None:
        counts = self.counts.get(key)
        if counts is None:
            counts = self.counts[key] = [0] * (len(self.buckets) + 1)
        counts[bisect_left(self.buckets, value)] += 1
        self.sums[key] += value

    def render(self) -> list[str]:
        lines = [f"# HELP {self.name} {self.help}", f"# TYPE {self.name} histogram"]
        for key in sorted(self.counts):
            counts = self.counts[key]
            labels = _labels(self.labels, key)
            sep = "," if labels else ""
            cumulative = 0
            for bound, count in zip(self.buckets, counts, strict=False):
                cumulative += count
                lines.append(f'{self.name}_bucket{{{labels}{sep}le="{bound:g}"}} {cumulative}')
            cumulative += counts[-1]
            lines.append(f'{self.name}_bucket{{{labels}{sep}le="+Inf"}} {cumulative}')
            lines.append(f"{self.name}_sum{{{labels}}} {self.sums[key]:.6f}")
            lines.append(f"{self.name}_count{{{labels}}} {cumulative}")
        return lines


def _labels(names: tuple[str, ...], values: tuple[str, ...]) -> str:
    return ",".join(f'{n}="{_escape(v)}"' for n, v in zip(names, values, strict=True))


class Metrics:
    """Counts requests, attempts and failures by provider, model and failure class."""

    def __init__(self) -> None:
        self.requests = Counter(
            "outlast_requests_total",
            "Requests served, by caller dialect, route (the matched route key, or unrouted), outcome and fallback.",
            ("dialect", "route", "outcome", "fallback"))
        self.attempts = Counter(
            "outlast_attempts_total", "Upstream attempts, by provider, model and outcome (ok or failure class).",
            ("provider", "model", "outcome"))
        self.failures = Counter(
            "outlast_upstream_failures_total", "Failed upstream attempts, by provider, model and failure class.",
            ("provider", "model", "kind"))
        self.tokens = Counter(
            "outlast_tokens_total", "Tokens reported by the provider that served, by direction.",
            ("provider", "model", "direction"))
        self.request_seconds = Histogram(
            "outlast_request_duration_seconds", "Time from request to last byte, by dialect.", ("dialect",))
        self.first_token_seconds = Histogram(
            "outlast_first_token_seconds", "Time from request to the first answer piece, by provider.",
            ("provider",))
        self.attempt_seconds = Histogram(
            "outlast_attempt_duration_seconds", "Duration of each upstream attempt, by provider and model.",
            ("provider", "model"))
        self._models: dict[str, set[str]] = {}

    def _model(self, target: Target) -> str:
        """The model label: the target's model, or ``other`` once a provider has ``MAX_MODELS``."""
        seen = self._models.get(target.provider)
        if seen is None:
            seen = self._models[target.provider] = set()
        model = target.model
        if model in seen:
            return model
        if len(seen) < MAX_MODELS:
            seen.add(model)
            return model
        return "other"

    def attempt_finished(self, exchange: Exchange, attempt: Attempt) -> None:
        target = attempt.target
        key = (target.provider, self._model(target))
        self.attempts.inc((*key, attempt.outcome))
        if attempt.error is not None:
            self.failures.inc((*key, attempt.error.kind.value))
        if attempt.ended is not None:
            self.attempt_seconds.observe(key, attempt.ended - attempt.started)

    def exchange_finished(self, exchange: Exchange) -> None:
        if exchange.error is None and not exchange.client_disconnected:
            outcome = "ok"
        elif exchange.client_disconnected:
            outcome = "client_disconnected"
        else:
            outcome = "error"
        # The route key, never the name the caller sent: every made-up model name would otherwise
        # be a new series, and a client (or an attacker) could grow the scrape without bound.
        self.requests.inc((exchange.dialect, exchange.route or "unrouted", outcome,
                           "true" if exchange.fallback else "false"))
        if exchange.ended is not None:
            self.request_seconds.observe((exchange.dialect,), exchange.ended - exchange.started)
        served = exchange.served_by
        if served is not None:
            ttft = exchange.first_token_latency
            if ttft is not None:
                self.first_token_seconds.observe((served.provider,), ttft)
            if exchange.usage is not None:
                model = self._model(served)
                self.tokens.inc((served.provider, model, "input"), exchange.usage.input_tokens)
                self.tokens.inc((served.provider, model, "output"), exchange.usage.output_tokens)

    def render(self) -> str:
        lines: list[str] = []
        for metric in (self.requests, self.attempts, self.failures, self.tokens,
                       self.request_seconds, self.first_token_seconds, self.attempt_seconds):
            lines.extend(metric.render())
        return "\n".join(lines) + "\n"
