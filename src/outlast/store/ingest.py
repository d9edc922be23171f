"""The ingester: moves journaled exchanges into the database, off the hot path.

It reads what follows the journal's checkpoint in large batches, writes each batch in one
transaction (``Store.write_exchanges``: idempotent by exchange id, so a batch read twice after
a crash stores nothing twice), then moves the checkpoint on. While the database is unreachable it
waits and retries: the journal holds everything meanwhile, so nothing is lost, and nothing is
written twice when it comes back. A record the database refuses for any other reason (a bug, bad
data) is set aside in ``rejected.jsonl`` beside the journal, so it cannot hold the rest up.

The journal also carries the gateway's audit records (lines of ``"kind": "audit"``): the ingester
appends them to the audit chain (:func:`outlast.governance.audit.append`) after the batch's
exchanges, skipping any the chain already has by their ``entry`` id, so that they too are stored
exactly once. It signs them with ``governance.audit_key`` when the gateway passes it one, else with
the key file in the data directory (the journal's grandparent), as the gateway itself would.

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
AUDIT = "audit"  # the kind of a journal line that is an audit record (an exchange's has no kind)


class Ingester:
    """``Ingester(store, slot).run(stop)``: until ``stop`` is set, then drains what it can."""

    def __init__(self, store: Store, slot: Path, *, batch: int = 4000, idle: float = 0.05, retry: float = 0.5,
                 retention: Callable[[Store], object] | None = None, retention_interval: float = 3600.0,
                 audit_key: str | None = None) -> None:
        self.store = store
        self.slot = Path(slot)
        self.batch = batch
        self.idle = idle
        self.retry = retry
        self.retention = retention
        self.retention_interval = retention_interval
        self.ingested = 0  # exchanges written to the database
        self.audited = 0  # audit records appended to the chain
        self._audit_secret = audit_key  # governance.audit_key, when configured
        # journal/<store>/<slot> lives in the data directory, where the audit key file is
        self.data_dir = self.slot.resolve().parents[2]
        self.rejected = self.slot / "rejected.jsonl"
        self._audit_key: bytes | None = None
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
        exchanges = [r for r in records if r.get("kind") is None]
        notes = [r for r in records if r.get("kind") == AUDIT]
        if exchanges:
            try:
                self.store.write_exchanges(exchanges)
            except StoreUnavailable:
                raise
            except Exception:
                log.exception("ingest: a batch failed; writing its records one by one")
                self._one_by_one(exchanges)
            self.ingested += len(exchanges)
        if notes:
            self._append_audit(notes)
        self.transactions += 1

    def _append_audit(self, notes: list[dict[str, Any]]) -> None:
        from outlast.governance.audit import append
        from outlast.store.sql import unavailable_when_unreachable

        engine = getattr(self.store, "engine", None)
        if engine is None:  # a store without a database engine has no audit chain
            return
        try:
            records = [(float(n["at"]), n["record"]) for n in notes]
            entries = [str(n["entry"]) for n in notes]
        except (KeyError, TypeError, ValueError):
            log.error("ingest: %d malformed audit records; kept in %s", len(notes), self.rejected)
            self._reject(notes)
            return
        try:
            with unavailable_when_unreachable():
                if self._audit_key is None:
                    self._audit_key = self._resolve_audit_key(engine)
                self.audited += append(engine, records, self._audit_key, entries=entries)
        except StoreUnavailable:
            raise  # the database (or the key file) is away: the journal keeps them, and this is retried
        except Exception:
            log.exception("ingest: the audit chain refused %d records; kept in %s", len(notes), self.rejected)
            self._reject(notes)

    def _resolve_audit_key(self, engine: Any) -> bytes:
        from outlast.governance.audit import resolve_key

        try:
            return resolve_key(self._audit_secret, self.data_dir, engine, create=True).key
        except (OSError, ValueError) as error:
            raise StoreUnavailable(f"the audit key cannot be read: {error}") from error

    def _one_by_one(self, records: list[dict[str, Any]]) -> None:
        for record in records:
            try:
                self.store.write_exchanges([record])
            except StoreUnavailable:
                raise
            except Exception:
                log.exception("exchange %s refused by the store; kept in %s", record.get("id"), self.rejected)
                self._reject([record])

    def _reject(self, records: list[dict[str, Any]]) -> None:
        """Set ``records`` aside in ``rejected.jsonl``, so they cannot hold the rest up (never dropped)."""
        with open(self.rejected, "ab") as file:
            for record in records:
                file.write(orjson.dumps(record) + b"\n")


def drain(store: Store, slot: Path, *, audit_key: str | None = None) -> int:
    """Ingest everything in ``slot`` now (no gateway is using it); the number of exchanges stored.
    ``audit_key``: ``governance.audit_key``, for the audit records the journal holds."""
    stop = threading.Event()
    stop.set()
    ingester = Ingester(store, slot, idle=0.0, retry=0.0, audit_key=audit_key)
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
    parser.add_argument("--audit-key-on-stdin", action="store_true",
                        help="the first line of standard input is governance.audit_key, hex-encoded (empty: none)")
    args = parser.parse_args(argv)
    audit_key = None
    if args.audit_key_on_stdin:
        audit_key = bytes.fromhex(sys.stdin.buffer.readline().strip().decode()).decode() or None
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
        Ingester(store, args.slot, idle=args.idle, retention=retention, audit_key=audit_key).run(stop)
    finally:
        store.close()


if __name__ == "__main__":
    main()
