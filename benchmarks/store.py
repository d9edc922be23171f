"""The recorder on the hot path: how many exchanges a second it sustains, and what the commit
adds before a client's last byte, on SQLite and on PostgreSQL, against recording off.

    .venv/bin/python benchmarks/store.py                 # both backends, 3 repetitions
    .venv/bin/python benchmarks/store.py --pg ""         # SQLite only
    .venv/bin/python benchmarks/store.py --ingest process,thread --repeat 5 --json results/store.json

Three measurements, each repeated and reported as the median of the repetitions:

1. throughput: ``--concurrency`` coroutines commit realistic exchanges (a one- or
   three-message request, a paragraph of answer) back to back. ``committed_per_s``: commits
   (journal fsyncs) a second, with commit p50/p99; ``stored_per_s``: the same exchanges
   divided by the time until the last of them is in the database (journal and ingester
   running together: what the recorder sustains); ``per_fsync``: exchanges per journal append;
2. commit latency at a steady offered load (``--rate`` exchanges/s, paced): p50/p99 of the
   ``await recorder.commit(exchange)`` that every answer waits for before its last byte, and
   how long the database then took to hold the last of them (``store_lag_after_ms``);
3. end to end: streamed requests through the gateway in front of ``outlast sim``, time to the
   last byte, p50/p99, with recording on (each backend) and off, interleaved per repetition.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

import sqlalchemy as sa
import uvloop

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # tests.store.helpers builds the exchanges

from tests.store.helpers import assistant, make_exchange, user

from outlast.store.recorder import Recorder
from outlast.store.sql import SqlStore, engine_url

ANSWER = ("Use exponential backoff with full jitter, cap the delay, and honour retry-after when the "
          "provider sends it; after a few tries, fail over to the next candidate. ") * 4


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


TURNS = 1


def exchanges(n: int) -> list[Any]:
    """``TURNS`` 1: a one-question request (a new conversation of two messages); 3: a request
    with history that matches no stored conversation, the costliest case (four messages)."""
    if TURNS == 1:
        return [make_exchange([user(f"How should I retry 529s? ({i})")], ANSWER) for i in range(n)]
    return [make_exchange([user(f"How should I retry 529s? ({i})"), assistant("With backoff."),
                           user("And when the stream is cut mid-answer?")], ANSWER) for i in range(n)]


class Backend:
    def __init__(self, name: str, url: str, cleanup: Any = None) -> None:
        self.name, self.url, self.cleanup = name, url, cleanup


def backends(pg: str) -> list[Backend]:
    out = []
    directory = Path(tempfile.mkdtemp(prefix="outlast-bench-"))
    out.append(Backend("sqlite", f"sqlite:///{directory / 'outlast.db'}"))
    if pg:
        schema = f"outlast_bench_{uuid.uuid4().hex[:8]}"
        admin = sa.create_engine(engine_url(pg), isolation_level="AUTOCOMMIT")
        with admin.connect() as conn:
            conn.exec_driver_sql(f"CREATE SCHEMA {schema}")

        def drop() -> None:
            with admin.connect() as conn:
                conn.exec_driver_sql(f"DROP SCHEMA {schema} CASCADE")
            admin.dispose()

        separator = "&" if "?" in pg else "?"
        out.append(Backend("postgresql", f"{pg}{separator}options=-csearch_path%3D{schema}", drop))
    for backend in out:
        SqlStore(backend.url).migrate()
    return out


def journal_dir() -> Path:
    return Path(tempfile.mkdtemp(prefix="outlast-bench-journal-"))


async def throughput(url: str, n: int, concurrency: int, ingest: str) -> dict[str, float]:
    recorder = Recorder(SqlStore(url), journal_dir(), ingest=ingest)
    items = exchanges(n)
    latencies: list[float] = []
    await recorder.commit(items.pop())
    assert await recorder.flush(60)  # the ingester is up and has migrated
    batches = recorder.batches

    async def worker(mine: list[Any]) -> None:
        for exchange in mine:
            started = time.perf_counter()
            await recorder.commit(exchange)
            latencies.append(time.perf_counter() - started)

    started = time.perf_counter()
    await asyncio.gather(*(worker(items[i::concurrency]) for i in range(concurrency)))
    committed = time.perf_counter() - started
    fsyncs = recorder.batches - batches
    assert await recorder.flush(300)
    stored = time.perf_counter() - started
    await recorder.aclose()
    return {"committed_per_s": len(items) / committed, "stored_per_s": len(items) / stored,
            "commit_p50_ms": pct(latencies, 0.5) * 1e3, "commit_p99_ms": pct(latencies, 0.99) * 1e3,
            "per_fsync": len(items) / max(1, fsyncs)}


async def steady(url: str, rate: float, seconds: float, ingest: str) -> dict[str, float]:
    recorder = Recorder(SqlStore(url), journal_dir(), ingest=ingest)
    items = exchanges(int(rate * seconds) + 1)
    await recorder.commit(items.pop())
    assert await recorder.flush(60)
    latencies: list[float] = []
    lag: list[float] = []

    async def one(exchange: Any) -> None:
        started = time.perf_counter()
        await recorder.commit(exchange)
        latencies.append(time.perf_counter() - started)

    tasks = []
    start = time.perf_counter()
    for i, exchange in enumerate(items):
        due = start + i / rate
        delay = due - time.perf_counter()
        if delay > 0:
            await asyncio.sleep(delay)
        lag.append(max(0.0, time.perf_counter() - due))
        tasks.append(asyncio.create_task(one(exchange)))
    await asyncio.gather(*tasks)
    done = time.perf_counter()
    assert await recorder.flush(300)
    lag_after = time.perf_counter() - done
    await recorder.aclose()
    return {"store_lag_after_ms": lag_after * 1e3,
            "commit_p50_ms": pct(latencies, 0.5) * 1e3, "commit_p99_ms": pct(latencies, 0.99) * 1e3,
            "loop_lag_p99_ms": pct(lag, 0.99) * 1e3}


def end_to_end(urls: dict[str, str | None], requests: int, concurrency: int) -> dict[str, dict[str, float]]:
    """Time to the last byte through the gateway, per store (``None``: recording off)."""
    import httpx
    from tests.conftest import MASTER_KEY, gateway_document

    from outlast.app import build_gateway
    from outlast.config import validate
    from outlast.serving import BackgroundServer
    from outlast.sim.testing import running_sim

    results: dict[str, dict[str, float]] = {}
    with running_sim() as sim:
        for name, url in urls.items():
            document = gateway_document(sim.url, store=url) if url else gateway_document(sim.url, record=False)
            gateway = build_gateway(validate(document))
            with BackgroundServer(gateway) as server:
                async def run(server_url: str = server.url) -> list[float]:
                    timings: list[float] = []
                    async with httpx.AsyncClient(timeout=30, limits=httpx.Limits(max_connections=concurrency)) as c:
                        async def one(n: int) -> None:
                            body = {"model": "to-openai", "stream": True,
                                    "messages": [{"role": "user", "content": f"bench {n}"}]}
                            started = time.perf_counter()
                            async with c.stream("POST", f"{server_url}/v1/chat/completions", json=body,
                                                headers={"authorization": f"Bearer {MASTER_KEY}"}) as response:
                                async for _ in response.aiter_bytes():
                                    pass
                            timings.append(time.perf_counter() - started)

                        semaphore = asyncio.Semaphore(concurrency)

                        async def limited(n: int) -> None:
                            async with semaphore:
                                await one(n)

                        await asyncio.gather(*(limited(n) for n in range(50)))  # warm up
                        timings.clear()
                        await asyncio.gather(*(limited(n) for n in range(requests)))
                    return timings

                timings = asyncio.run(run())
            results[name] = {"ttlb_p50_ms": pct(timings, 0.5) * 1e3, "ttlb_p99_ms": pct(timings, 0.99) * 1e3}
    return results


def median_of(runs: list[dict[str, float]]) -> dict[str, float]:
    return {key: round(statistics.median(r[key] for r in runs), 3) for key in runs[0]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--pg", default=os.environ.get("OUTLAST_TEST_PG", "postgresql://postgres@127.0.0.1:5432/test"),
                        help="PostgreSQL to measure ('' to skip)")
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--exchanges", type=int, default=20_000)
    parser.add_argument("--concurrency", type=int, default=256)
    parser.add_argument("--rate", type=float, default=1000.0)
    parser.add_argument("--seconds", type=float, default=3.0)
    parser.add_argument("--requests", type=int, default=600, help="end-to-end requests per repetition")
    parser.add_argument("--turns", type=int, choices=(1, 3), default=1, help="messages in each request")
    parser.add_argument("--ingest", default="process", help="ingester modes to compare, e.g. process,thread")
    parser.add_argument("--no-end-to-end", action="store_true")
    parser.add_argument("--json", type=Path, help="also write the results here")
    args = parser.parse_args()
    # The gateway's journal, audit key and spool go to a directory of the run's own, never the user's.
    os.environ["OUTLAST_DATA_DIR"] = tempfile.mkdtemp(prefix="outlast-bench-store-")
    global TURNS
    TURNS = args.turns
    chosen = backends(args.pg)
    report: dict[str, Any] = {"turns": args.turns, "repeat": args.repeat, "python": sys.version.split()[0],
                              "cpus": os.cpu_count()}
    try:
        for backend in chosen:
            for mode in args.ingest.split(","):
                name = f"{backend.name}_{mode}"
                runs = [uvloop.run(throughput(backend.url, args.exchanges, args.concurrency, mode))
                        for _ in range(args.repeat)]
                report[f"throughput_{name}"] = median_of(runs)
                print(f"throughput {name}: {report[f'throughput_{name}']}", flush=True)
                runs = [uvloop.run(steady(backend.url, args.rate, args.seconds, mode)) for _ in range(args.repeat)]
                report[f"steady_{name}_{int(args.rate)}_per_s"] = median_of(runs)
                print(f"steady {args.rate:.0f}/s {name}: {report[f'steady_{name}_{int(args.rate)}_per_s']}",
                      flush=True)
        urls: dict[str, str | None] = {"off": None, **{b.name: b.url for b in chosen}}
        if not args.no_end_to_end:
            e2e_runs = [end_to_end(urls, args.requests, 16) for _ in range(args.repeat)]
            for name in urls:
                report[f"end_to_end_{name}"] = median_of([r[name] for r in e2e_runs])
                print(f"end to end, recording {name}: {report[f'end_to_end_{name}']}", flush=True)
    finally:
        for backend in chosen:
            if backend.cleanup:
                backend.cleanup()
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(report, indent=2))
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
