"""Time to first body byte of streamed chat completions: N sequential requests on one keep-alive connection.

Each request is checked: status 200, an event-stream body that ends with ``data: [DONE]``. A failed
request is counted, never timed.
"""

from __future__ import annotations

import asyncio
import statistics
import time
from collections.abc import Mapping
from dataclasses import asdict, dataclass

import aiohttp


@dataclass(frozen=True)
class TTFBResult:
    requests: int
    failures: int
    p50_ms: float
    p90_ms: float
    first_failure: str | None

    @property
    def ok(self) -> bool:
        return self.failures == 0 and self.requests > 0

    def as_dict(self) -> dict[str, object]:
        return {**asdict(self), "ok": self.ok}


async def _measure(url: str, body: bytes, headers: Mapping[str, str], count: int, warmup: int) -> TTFBResult:
    timings: list[float] = []
    failures = 0
    first_failure: str | None = None
    timeout = aiohttp.ClientTimeout(total=30)
    connector = aiohttp.TCPConnector(limit=1)
    async with aiohttp.ClientSession(connector=connector, timeout=timeout, auto_decompress=False) as session:
        for i in range(warmup + count):
            started = time.perf_counter()
            try:
                async with session.post(url, data=body, headers=dict(headers)) as response:
                    first = await response.content.readany()
                    elapsed = time.perf_counter() - started
                    rest = first + await response.content.read()
                    kind = response.headers.get("content-type", "")
                    if response.status != 200 or not kind.startswith("text/event-stream"):
                        raise ValueError(f"status {response.status} {kind}: {rest[:200]!r}")
                    if b"data: [DONE]" not in rest:
                        raise ValueError(f"stream did not end with [DONE]: {rest[-200:]!r}")
            except (aiohttp.ClientError, TimeoutError, ValueError) as error:
                if i >= warmup:
                    failures += 1
                    first_failure = first_failure or f"{type(error).__name__}: {error}"
                continue
            if i >= warmup:
                timings.append(elapsed * 1000)
    if not timings:
        return TTFBResult(count, failures, float("nan"), float("nan"), first_failure)
    timings.sort()
    p90 = timings[min(len(timings) - 1, int(len(timings) * 0.9))]
    return TTFBResult(count, failures, statistics.median(timings), p90, first_failure)


def measure_ttfb(url: str, body: bytes, headers: Mapping[str, str], count: int, warmup: int = 20) -> TTFBResult:
    return asyncio.run(_measure(url, body, headers, count, warmup))
