"""The ingester: moves journaled exchanges into the database, off the hot path.

It reads what follows the journal's checkpoint in large batches, writes each batch in one
transaction (``Store.write_exchanges``: idempotent by exchange id, so a batch read twice after
a crash stores nothing twice), then moves the checkpoint on. While the database is unreachable it
waits and retries: the journal holds everything meanwhile, so nothing is lost, and nothing is
written twice when it comes back. A record the database refuses for any other reason (a bug, bad
data) is set aside in ``rejected.jsonl`` beside the journal, so it cannot hold the rest up.

The gateway runs it in a child process (``python -m outlast.store.ingest``) at a lower CPU
priority: it shares no GIL with the event loop, and when the machine is busy the hot path wins
and the store lags a little. ``outlast conversations ...`` drains a journal no gateway is
using before it reads.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import orjson

from outlast.store.base import Store, StoreUnavailable
from outlast.store.journal import JournalReader, lock

log = logging.getLogger("outlast.ingest")


class Ingester:
    """``Ingester(store, slot).run(stop)``: until ``stop`` is set, then drains what it can."""

    def __init__(self, store: Store, slot: Path, *, batch: int = 4000, idle: float = 0.05, retry: float = 0.5,
                 retention: Callable[[Store], object] | None = None, retention_interval: float = 3600.0) -> None:
        self.store = store
        self.slot = Path(slot)
        self.batch = batch
        self.idle = idle
        self.retry = retry
        self.retention = retention
        self.retention_interval = retention_interval
        self.ingested = 0  # exchanges written to the database
        self.transactions = 0
        self.available = False
        self._warned = False

    def run(self, stop: threading.Event) -> None:
        fd = lock(self.slot / "ingest.lock")  # one ingester per slot (a predecessor may be finishing)
        try:
            self._run(stop)
        finally:
            os.close(fd)

    def _run(self, stop: threading.Event) -> None:
        reader = JournalReader(self.slot)
        migrated = False
        next_retention = time.monotonic() + 5.0
        while True:
            if not migrated:
                try:
                    self.store.migrate()
                    migrated = self.available = True
                except Exception as error:
                    self._away(error)
                    if stop.wait(self.retry):
                        return
                    continue
            records, position = reader.read(self.batch)
            if records:
                try:
                    self._write(records)
                except StoreUnavailable as error:
                    self._away(error)
                    if stop.wait(self.retry):
                        return  # closing while the database is away: the journal keeps the rest
                    continue
                if not self.available:
                    log.info("store %s is back: ingesting the journal", _safe(self.store.url))
                    self.available = True
            if position != (reader.segment, reader.offset):
                reader.advance(position)
            if records:
                continue
            if self.retention is not None and time.monotonic() >= next_retention:
                next_retention = time.monotonic() + self.retention_interval
                try:
                    self.retention(self.store)
                except Exception:
                    log.exception("retention failed")
            if stop.wait(self.idle) and not reader.read(1)[0]:
                return  # stopping, and everything is stored

    def _away(self, error: BaseException) -> None:
        if self.available or not self._warned:
            log.warning("store %s unavailable (%s); exchanges wait in the journal %s",
                        _safe(self.store.url), error, self.slot)
            self._warned = True
        self.available = False

    def _write(self, records: list[dict[str, Any]]) -> None:
        try:
            self.store.write_exchanges(records)
        except StoreUnavailable:
            raise
        except Exception:
            log.exception("ingest: a batch failed; writing its records one by one")
            self._one_by_one(records)
        self.ingested += len(records)
        self.transactions += 1

    def _one_by_one(self, records: list[dict[str, Any]]) -> None:
        rejected = self.slot / "rejected.jsonl"
        for record in records:
            try:
                self.store.write_exchanges([record])
            except StoreUnavailable:
                raise
            except Exception:
                log.exception("exchange %s refused by the store; kept in %s", record.get("id"), rejected)
                with open(rejected, "ab") as file:
                    file.write(orjson.dumps(record) + b"\n")


def drain(store: Store, slot: Path) -> int:
    """Ingest everything in ``slot`` now (no gateway is using it); the number of exchanges stored."""
    stop = threading.Event()
    stop.set()
    ingester = Ingester(store, slot, idle=0.0, retry=0.0)
    ingester.run(stop)
    return ingester.ingested


def _safe(url: str) -> str:
    """A URL fit for a log line: no password."""
    try:
        import sqlalchemy as sa

        return sa.engine.make_url(url).render_as_string(hide_password=True)
    except Exception:
        return url.split("@")[-1]


def main(argv: list[str] | None = None) -> None:
    """The child process: ingest until standard input closes (the gateway stopped or died)."""
    parser = argparse.ArgumentParser(prog="python -m outlast.store.ingest")
    parser.add_argument("--url", required=True)
    parser.add_argument("--slot", required=True, type=Path)
    parser.add_argument("--max-age-days", type=float)
    parser.add_argument("--max-size-mb", type=float)
    parser.add_argument("--health-days", type=int)
    parser.add_argument("--nice", type=int, default=19)
    parser.add_argument("--idle", type=float, default=0.05)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    if args.nice:
        os.nice(args.nice)  # the gateway's event loop comes first when they share a core
    from outlast.store.sql import SqlStore

    retention = None
    if args.max_age_days is not None or args.max_size_mb is not None or args.health_days is not None:
        from outlast.store.recorder import apply_retention

        def retention(store: Store) -> object:
            return apply_retention(store, args.max_age_days, args.max_size_mb, health_days=args.health_days)

    stop = threading.Event()

    def watch_parent() -> None:
        while sys.stdin.buffer.read(4096):
            pass
        stop.set()

    threading.Thread(target=watch_parent, name="outlast-ingest-parent", daemon=True).start()
    store = SqlStore(args.url)
    try:
        Ingester(store, args.slot, idle=args.idle, retention=retention).run(stop)
    finally:
        store.close()


if __name__ == "__main__":
    main()
