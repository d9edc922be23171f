"""The recorder: the :class:`ExchangeSink` that makes every answer durable before its last byte.

Journal first, database after:

1. ``commit(exchange)`` serialises the exchange once (orjson, on the event loop: microseconds)
   and adds the line to the pending batch, then awaits it. It wakes the journal thread only if
   that thread is idle: under load the thread is in an fsync and will find the line when it
   comes back, so a request costs no thread switch.
2. The journal thread takes everything pending, appends it to the journal with one ``write`` and
   one ``fdatasync`` (both release the GIL), and wakes every waiter of the batch with one
   ``call_soon_threadsafe`` per event loop. That fsync is the commit: the exchange survives a
   SIGKILL or a power cut from then on, and only then is the last byte released. What arrives
   during one fsync forms the next batch (group commit); and when other exchanges are being
   answered than the ones waiting (``siblings``), the thread first waits ``commit_delay`` (1 ms)
   for them to join, as PostgreSQL's ``commit_delay``/``commit_siblings`` do. A lone request
   never waits; under concurrent load one fsync serves several exchanges. And when an exchange
   is the only one being answered and the thread is idle, its commit appends and fsyncs right
   on the event loop (nobody else is waiting on it): no hand-off, two wake-ups fewer.
3. The ingester (:mod:`outlast.store.ingest`; a child process by default) moves the journal
   into the database in large transactions, threading conversations and indexing for search
   there, and checkpoints its progress. The database therefore lags the journal by a moment:
   ``flush()`` waits for it, and the memory commands drain or report what is pending.

Before an answer starts, ``conversation_for(exchange)`` names the conversation it belongs to
(:mod:`outlast.store.naming`: a new id, or the one it continues, found in memory), so the response
can say it; the name is journaled with the exchange and the ingester threads it there.

When the database is unreachable, nothing changes on the hot path: the journal grows, the
ingester retries, and catches up when the database is back; writes are idempotent by exchange
id, so nothing is stored twice.
"""

from __future__ import annotations

import asyncio
import logging
import subprocess
import sys
import threading
import time
from collections import deque
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import orjson

from outlast.routing.router import Exchange
from outlast.store.base import PruneResult, Store
from outlast.store.ingest import Ingester
from outlast.store.journal import JournalReader, JournalWriter
from outlast.store.naming import ConversationNames
from outlast.store.records import exchange_record
from outlast.store.threads import new_conversation_id

if TYPE_CHECKING:
    from outlast.config import Config

log = logging.getLogger("outlast.recorder")

_STOP = object()
Retention = tuple[float | None, float | None]  # (max_age_days, max_size_mb)


class Recorder:
    """``Recorder(store, journal_dir)``; ``await recorder.commit(exchange)``; ``await recorder.aclose()``.

    ``ingest``: ``"process"`` (a child process, the default), ``"thread"`` (in this process:
    simpler, but its Python work then shares the GIL with the event loop) or ``None`` (journal
    only; something else ingests).
    """

    def __init__(self, store: Store, journal: Path, *, ingest: str | None = "process",
                 retention: Retention | None = None, health_days: int | None = None, ingest_idle: float = 0.05,
                 max_batch: int = 4096, commit_delay: float = 0.001, audit_key: str | None = None,
                 note_delay: float = 0.005) -> None:
        self.store = store
        # Which conversation a request continues, from memory (the database only on a miss).
        self.names = ConversationNames(store.conversation_heads)
        self.journal = JournalWriter(Path(journal))
        self.slot = self.journal.slot
        self.max_batch = max_batch
        self.retention = retention
        self.journaled = 0  # exchanges made durable in the journal
        self.noted = 0  # notes (audit records) journaled
        self.batches = 0  # journal appends (fsyncs)
        self.unrecorded = 0  # exchanges answered without a record: the journal could not be written
        self.journal_failures = 0  # journal appends that failed (disk full, I/O error)
        self._pending: deque[Any] = deque()
        # Lines journaled without anyone waiting on them (audit records, :meth:`note`): they go with
        # the next append, or on their own ``note_delay`` seconds later when no commit comes first.
        self._notes: deque[bytes] = deque()
        self.note_delay = note_delay
        self._notes_due = False
        # How many exchanges are being answered right now (the gateway sets it); see commit_delay.
        self.siblings: Callable[[], int] | None = None
        self.commit_delay = commit_delay
        self._idle = True  # the journal thread is waiting for _wake (else it will look at _pending again)
        self._wake = threading.Event()
        self._writing = threading.Lock()  # one appender at a time: the journal thread, or a lone commit
        self._closed = False
        self._journal_thread = threading.Thread(target=self._run_journal, name="outlast-journal", daemon=True)
        self._journal_thread.start()
        self.ingester: Ingester | None = None
        self._ingest_stop = threading.Event()
        self._ingest_thread: threading.Thread | None = None
        self._ingest_process: subprocess.Popen[bytes] | None = None
        limits: Retention = retention if retention is not None else (None, None)
        if ingest == "thread":
            prune = None
            if retention is not None or health_days is not None:
                def prune(s: Store) -> object:
                    return apply_retention(s, *limits, health_days=health_days)
            self.ingester = Ingester(store, self.slot, idle=ingest_idle, retention=prune, audit_key=audit_key)
            self._ingest_thread = threading.Thread(target=self.ingester.run, args=(self._ingest_stop,),
                                                   name="outlast-ingest", daemon=True)
            self._ingest_thread.start()
        elif ingest == "process":
            argv = [sys.executable, "-m", "outlast.store.ingest", "--url", store.url, "--slot", str(self.slot),
                    "--idle", str(ingest_idle), "--audit-key-on-stdin"]
            for flag, value in zip(("--max-age-days", "--max-size-mb", "--health-days"), (*limits, health_days),
                                   strict=True):
                if value is not None:
                    argv += [flag, str(value)]
            self._ingest_process = subprocess.Popen(argv, stdin=subprocess.PIPE)
            # The audit chain's key, if configured, goes by the pipe (never argv, which anyone can read);
            # the pipe then stays open until the gateway stops, which is how the child knows.
            assert self._ingest_process.stdin is not None
            self._ingest_process.stdin.write((audit_key or "").encode().hex().encode() + b"\n")
            self._ingest_process.stdin.flush()
        elif ingest is not None:
            raise ValueError(f"ingest must be 'process', 'thread' or None, not {ingest!r}")

    # ------------------------------------------------------------------ the event loop's side

    async def commit(self, exchange: Exchange) -> None:
        if self._closed:
            log.warning("exchange %s finished after the recorder closed: not recorded", exchange.id)
            return
        conversation_id = exchange.conversation_id  # named by the client, or by conversation_for
        if conversation_id is None and exchange.response is not None and not _has_history(exchange):
            # Nothing to continue: a new conversation, named now so a response can carry it.
            conversation_id = new_conversation_id()
        self.names.committed(exchange, conversation_id)
        record = exchange_record(exchange, conversation_id)
        for name in ("request", "response"):
            value = record[name]
            if value is not None:
                record[name] = orjson.Fragment(value)  # already JSON: embedded as is
        line = orjson.dumps(record, option=orjson.OPT_APPEND_NEWLINE)
        siblings = self.siblings
        if (self._idle and not self._pending and siblings is not None and siblings() <= 1
                and self._writing.acquire(blocking=False)):
            # Alone: nothing else is being answered and the journal thread is idle, so nobody
            # waits on the event loop while it fsyncs; a hand-off to the thread and back would
            # only add two wake-ups to this exchange's last byte.
            try:
                notes = self._take_notes()
                self._write([*notes, line], notes=len(notes))
            finally:
                self._writing.release()
        else:
            await self._via_thread(line)
        if conversation_id:
            exchange.conversation_id = conversation_id

    async def conversation_for(self, exchange: Exchange) -> str | None:
        """The conversation ``exchange`` will be threaded into, before its answer: the gateway
        says it in ``x-outlast-conversation-id`` (see :mod:`outlast.store.naming`)."""
        return await self.names.name(exchange)

    async def _via_thread(self, line: bytes) -> None:
        loop = asyncio.get_running_loop()
        future: asyncio.Future[None] = loop.create_future()
        self._queue_notes()  # ahead of the line: written in the same append
        self._pending.append((line, loop, future))
        self._wake_writer()
        await future

    def note(self, document: dict[str, Any]) -> None:
        """Journal ``document`` without waiting for it (an audit record: ``{"kind": "audit", ...}``; the
        ingester appends those to the audit chain). It is written with the next exchange's commit, or
        on its own ``note_delay`` seconds later if none comes first: durable within milliseconds,
        without an fsync or a thread wake-up of its own under load. Safe from any thread."""
        if self._closed:
            log.warning("a %s record came after the recorder closed: not journaled", document.get("kind"))
            return
        self._notes.append(orjson.dumps(document, option=orjson.OPT_APPEND_NEWLINE))
        if self._notes_due:
            return
        self._notes_due = True
        try:
            asyncio.get_running_loop().call_later(self.note_delay, self.flush_notes)
        except RuntimeError:  # no event loop in this thread: hand it to the journal thread now
            self.flush_notes()

    def _take_notes(self) -> list[bytes]:
        notes = self._notes
        taken = []
        while notes:  # popleft, not copy-and-clear: another thread may be adding one meanwhile
            taken.append(notes.popleft())
        return taken

    def _queue_notes(self) -> None:
        """Move the notes to the journal thread's queue, as lines nobody waits on."""
        self._pending.extend((note, None, None) for note in self._take_notes())

    def _wake_writer(self) -> None:
        if self._idle:
            self._idle = False
            self._wake.set()

    def flush_notes(self) -> None:
        """Hand the notes no commit has taken yet to the journal thread."""
        self._notes_due = False
        if not self._notes or self._closed:
            return
        self._queue_notes()
        self._wake_writer()

    def wait_journaled(self, timeout: float = 10.0) -> bool:
        """Wait until every note and commit so far is in the journal (for a caller without an event
        loop: a test, a CLI); False if that takes longer than ``timeout`` seconds."""
        self.flush_notes()
        deadline = time.monotonic() + timeout
        while self._pending or not self._idle:
            if time.monotonic() > deadline:
                return False
            time.sleep(0.005)
        return True

    def wait_stored(self, timeout: float = 10.0) -> bool:
        """:meth:`wait_journaled`, then :meth:`wait_ingested`: everything so far is in the database."""
        deadline = time.monotonic() + timeout
        return self.wait_journaled(timeout) and self.wait_ingested(max(0.0, deadline - time.monotonic()))

    def metric_lines(self) -> list[str]:
        """Prometheus lines for /metrics: exchanges made durable, and the fsyncs that did it
        (their ratio is the group commit's batch size)."""
        return [
            "# HELP outlast_journal_exchanges_total Exchanges committed to the journal.",
            "# TYPE outlast_journal_exchanges_total counter",
            f"outlast_journal_exchanges_total {self.journaled}",
            "# HELP outlast_journal_audit_records_total Audit records journaled (the ingester appends them "
            "to the audit chain).",
            "# TYPE outlast_journal_audit_records_total counter",
            f"outlast_journal_audit_records_total {self.noted}",
            "# HELP outlast_journal_fsyncs_total Journal appends, one fsync each (group commit).",
            "# TYPE outlast_journal_fsyncs_total counter",
            f"outlast_journal_fsyncs_total {self.batches}",
            "# HELP outlast_journal_write_failures_total Journal appends that failed (disk full, I/O error).",
            "# TYPE outlast_journal_write_failures_total counter",
            f"outlast_journal_write_failures_total {self.journal_failures}",
            "# HELP outlast_journal_unrecorded_exchanges_total Exchanges answered but not recorded: "
            "their journal append failed.",
            "# TYPE outlast_journal_unrecorded_exchanges_total counter",
            f"outlast_journal_unrecorded_exchanges_total {self.unrecorded}",
        ]

    @property
    def pending(self) -> int:
        """Exchanges in the journal not yet in the database."""
        return JournalReader(self.slot).pending_records()

    async def flush(self, within: float = 30.0) -> bool:
        """Wait until everything committed so far is in the database; False if it takes longer
        than ``within`` seconds."""
        deadline = time.monotonic() + within
        while JournalReader(self.slot).pending_bytes():
            if time.monotonic() > deadline:
                return False
            await asyncio.sleep(0.01)
        return True

    def wait_ingested(self, timeout: float = 30.0) -> bool:
        """:meth:`flush` for a caller without an event loop (a test, a CLI)."""
        deadline = time.monotonic() + timeout
        while JournalReader(self.slot).pending_bytes():
            if time.monotonic() > deadline:
                return False
            time.sleep(0.01)
        return True

    async def aclose(self) -> None:
        await asyncio.to_thread(self.close)

    def close(self, timeout: float = 30.0) -> None:
        """Journal what is queued, let the ingester drain what it can, then stop. Whatever is
        left in the journal (the database was away, or the drain took too long) is ingested by
        the next start."""
        if self._closed:
            return
        self._queue_notes()
        self._closed = True
        self._pending.append(_STOP)
        self._idle = False
        self._wake.set()
        self._journal_thread.join(timeout)
        self._ingest_stop.set()
        if self._ingest_thread is not None:
            self._ingest_thread.join(timeout)
        if self._ingest_process is not None:
            process = self._ingest_process
            if process.stdin is not None:
                process.stdin.close()  # the child drains, then exits
            try:
                process.wait(timeout)
            except subprocess.TimeoutExpired:
                log.warning("the ingester is still draining after %.0f s: stopped; the rest waits in %s",
                            timeout, self.slot)
                process.kill()
                process.wait()
        self.journal.close()
        self.store.close()

    # ------------------------------------------------------------------ the journal thread

    def _run_journal(self) -> None:
        pending = self._pending
        stopping = False
        while not stopping:
            self._wake.wait()
            self._wake.clear()
            siblings = self.siblings
            if self.commit_delay and siblings is not None and siblings() > len(pending):
                time.sleep(self.commit_delay)  # others are on their way: one fsync for all of them
            while True:
                batch: list[tuple[bytes, Any, Any]] = []
                while pending and len(batch) < self.max_batch:
                    item = pending.popleft()
                    if item is _STOP:
                        stopping = True  # but journal anything that raced in behind it
                    else:
                        batch.append(item)
                if batch:
                    self._append(batch)
                    continue
                if stopping:
                    return
                # Idle from here; a commit that raced in before the flag was set is seen below,
                # one after it sees the flag and sets _wake.
                self._idle = True
                if not pending:
                    break
                self._idle = False

    def _write(self, lines: list[bytes], notes: int = 0) -> None:
        """Append and fsync (the caller holds ``_writing``); a failure is logged and counted
        (``outlast_journal_unrecorded_exchanges_total`` on /metrics), never raised: the answer
        goes out even when it cannot be recorded, since refusing it would not make it stored."""
        try:
            self.journal.append(b"".join(lines))
            self.journaled += len(lines) - notes
            self.noted += notes
            self.batches += 1
        except OSError:
            self.journal_failures += 1
            self.unrecorded += len(lines) - notes
            log.exception("cannot write the journal in %s: %d exchanges (and %d audit records) not recorded",
                          self.slot, len(lines) - notes, notes)

    def _append(self, batch: list[tuple[bytes, Any, Any]]) -> None:
        with self._writing:
            self._write([line for line, _, _ in batch], notes=sum(1 for _, loop, _ in batch if loop is None))
        by_loop: dict[asyncio.AbstractEventLoop, list[asyncio.Future[None]]] = {}
        for _, loop, future in batch:
            if loop is not None:  # None: a note, which nobody waits on
                by_loop.setdefault(loop, []).append(future)
        for loop, futures in by_loop.items():
            try:
                loop.call_soon_threadsafe(_resolve, futures)  # one wake-up per loop, not per exchange
            except RuntimeError:  # that loop has closed: nobody is waiting any more
                pass


def _resolve(futures: list[asyncio.Future[None]]) -> None:
    for future in futures:
        if not future.done():
            future.set_result(None)


def _has_history(exchange: Exchange) -> bool:
    """Whether the request carries an earlier answer, so it may continue a stored conversation."""
    request = exchange.request
    return request is not None and any(m.role == "assistant" for m in request.messages)


def apply_retention(store: Store, max_age_days: float | None, max_size_mb: float | None, *,
                    health_days: int | None = None, now: float | None = None) -> PruneResult | None:
    """Prune by the configured age and size (``None``: no limit; ``0`` days: everything recorded
    so far), and the health history (uptime, incidents, reports) beyond ``health_days``."""
    now = time.time() if now is None else now
    result = None
    if max_age_days is not None or max_size_mb is not None:
        older_than = now - max_age_days * 86400 if max_age_days is not None else None
        max_bytes = int(max_size_mb * 1024 * 1024) if max_size_mb is not None else None
        result = store.prune(older_than=older_than, max_bytes=max_bytes)
        log.info("retention: removed %d exchanges and %d conversations", result.exchanges, result.conversations)
    engine = getattr(store, "engine", None)  # the health history lives in the same database
    if health_days is not None and engine is not None:
        from outlast.health.persist import HealthStore

        pruned = HealthStore(engine).prune(now, health_days)
        log.info("retention: removed %d days of uptime, %d incidents and %d reports older than %d days",
                 pruned.uptime_days, pruned.incidents, pruned.reports, health_days)
    return result


def open_recorder(config: Config, directory: Path | None = None) -> Recorder:
    """The recorder ``outlast serve`` runs: the configured store (default: SQLite in the data
    directory), its journal beside it, and the configured retention (with the health history's
    ``uptime_days``) applied hourly."""
    from outlast.config import data_dir
    from outlast.store import journal_path, store_url
    from outlast.store.sql import SqlStore

    directory = directory or data_dir()
    retention = config.retention
    limits: Retention | None = None
    if retention.max_age_days is not None or retention.max_size_mb is not None:
        limits = (retention.max_age_days, retention.max_size_mb)
    url = store_url(config.store, directory)
    audit_key = config.governance.audit_key
    return Recorder(SqlStore(url), journal_path(url, directory), retention=limits,
                    health_days=config.health.uptime_days,
                    audit_key=audit_key.get_secret_value() if audit_key is not None else None)
