"""The audit log: every routing decision, append-only, in a hash chain.

Each record's ``hash`` is HMAC-SHA256 (key: ``governance.audit_key``, or a fixed one) over the
previous record's hash and the record's canonical JSON, which includes its sequence number.
A separate head row holds the last sequence number and hash. :func:`verify` walks the chain
and reports a record whose content was edited (its hash no longer matches), a record inserted
or deleted (a gap, a broken link, a record beyond the head), and a deleted tail (the head
names a record that is gone).

Writes never wait on the request: :class:`AuditWriter` collects records and a thread appends
them in batches (one transaction each, every ``interval`` seconds).
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import threading
import time
from collections import deque
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import orjson
import sqlalchemy as sa

from outlast.governance.tables import audit, audit_head, writing

log = logging.getLogger("outlast.governance")
GENESIS = "0" * 64
DEFAULT_KEY = b"outlast-audit-v1"


def chain_hash(key: bytes, prev: str, body: bytes) -> str:
    return hmac.new(key, prev.encode() + b"\n" + body, hashlib.sha256).hexdigest()


def _body(seq: int, at: float, record: dict[str, Any]) -> bytes:
    return orjson.dumps({"seq": seq, "at": at, **record}, option=orjson.OPT_SORT_KEYS)


def append(engine: sa.Engine, records: list[tuple[float, dict[str, Any]]], key: bytes = DEFAULT_KEY) -> int:
    """Append records to the chain in one transaction (the head row is locked while it runs)."""
    if not records:
        return 0
    with writing(engine) as conn:
        head = conn.execute(sa.select(audit_head.c.seq, audit_head.c.hash).where(audit_head.c.id == 1)
                            .with_for_update()).first()
        seq, prev = (int(head.seq), str(head.hash)) if head is not None else (0, GENESIS)
        rows = []
        for at, record in records:
            seq += 1
            body = _body(seq, at, record)
            digest = chain_hash(key, prev, body)
            rows.append({"seq": seq, "at": at, "record": body.decode(), "prev": prev, "hash": digest})
            prev = digest
        conn.execute(audit.insert(), rows)
        if head is None:
            conn.execute(audit_head.insert().values(id=1, seq=seq, hash=prev))
        else:
            conn.execute(audit_head.update().where(audit_head.c.id == 1).values(seq=seq, hash=prev))
    return len(rows)


@dataclass
class Verification:
    records: int = 0
    problems: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems


def verify(engine: sa.Engine, key: bytes = DEFAULT_KEY) -> Verification:
    result = Verification()
    expected_seq, prev = 1, GENESIS
    with engine.connect() as conn:
        head = conn.execute(sa.select(audit_head.c.seq, audit_head.c.hash).where(audit_head.c.id == 1)).first()
        for row in conn.execute(sa.select(audit).order_by(audit.c.seq)):
            result.records += 1
            seq = int(row.seq)
            if seq != expected_seq:
                if seq > expected_seq:
                    result.problems.append(f"records {expected_seq}..{seq - 1} are missing (deleted)")
                else:
                    result.problems.append(f"record {seq} is out of order")
            if row.prev != prev:
                result.problems.append(f"record {seq}: does not follow the record before it "
                                       "(a record was inserted or deleted here)")
            try:
                stored = orjson.loads(row.record)
            except orjson.JSONDecodeError:
                stored = None
            if not isinstance(stored, dict) or stored.get("seq") != seq or stored.get("at") != row.at \
                    or chain_hash(key, row.prev, row.record.encode()) != row.hash:
                result.problems.append(f"record {seq}: content does not match its hash (edited or forged)")
            expected_seq, prev = seq + 1, row.hash
    if head is None:
        if result.records:
            result.problems.append("the chain's head is missing")
    else:
        if int(head.seq) > expected_seq - 1:
            result.problems.append(f"records {expected_seq}..{head.seq} are missing at the end (deleted)")
        elif int(head.seq) < expected_seq - 1:
            result.problems.append(f"records {int(head.seq) + 1}..{expected_seq - 1} are beyond the chain's "
                                   "head (inserted)")
        elif head.hash != prev:
            result.problems.append("the last record does not match the chain's head (edited or replaced)")
    return result


def export(engine: sa.Engine) -> Iterator[bytes]:
    """Every record as a JSON line, with its chain fields, oldest first."""
    with engine.connect() as conn:
        for row in conn.execute(sa.select(audit).order_by(audit.c.seq)):
            record = orjson.loads(row.record)
            record["prev"], record["hash"] = row.prev, row.hash
            yield orjson.dumps(record, option=orjson.OPT_SORT_KEYS) + b"\n"


class AuditWriter:
    """Collects audit records from the event loop; a thread appends them in batches.

    ``add`` is a deque append: it never wakes the thread, which sleeps ``interval`` seconds
    between batches (a wake-up per record would cost the request path a thread switch)."""

    def __init__(self, engine: sa.Engine, key: bytes = DEFAULT_KEY, *, interval: float = 0.1,
                 batch: int = 1000) -> None:
        self.engine = engine
        self.key = key
        self.interval = interval
        self.batch = batch
        self.pending: deque[tuple[float, dict[str, Any]]] = deque()
        self.added = 0
        self.written = 0  # records written, or given up on after retries
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def add(self, record: dict[str, Any], at: float | None = None) -> None:
        self.added += 1
        self.pending.append((time.time() if at is None else at, record))

    def start(self) -> None:
        if self._thread is None:
            self._stop.clear()
            self._thread = threading.Thread(target=self._run, name="outlast-audit", daemon=True)
            self._thread.start()

    def _run(self) -> None:
        while True:
            stopping = self._stop.wait(self.interval)
            self._drain()
            if stopping:
                return

    def _drain(self) -> None:
        pending = self.pending
        while pending:
            records: list[tuple[float, dict[str, Any]]] = []
            try:
                while len(records) < self.batch:
                    records.append(pending.popleft())
            except IndexError:
                pass
            self._write(records)

    def _write(self, pending: list[tuple[float, dict[str, Any]]]) -> None:
        for attempt in range(5):
            try:
                self.written += append(self.engine, pending, self.key)
                return
            except Exception:
                if attempt == 4:
                    log.exception("audit: %d records could not be written", len(pending))
                    self.written += len(pending)
                    return
                time.sleep(0.1 * (attempt + 1))

    def flush(self, timeout: float = 5.0) -> None:
        """Wait until everything queued so far is written (tests, shutdown)."""
        target = self.added
        deadline = time.monotonic() + timeout
        while self.written < target and time.monotonic() < deadline:
            time.sleep(0.01)

    def close(self) -> None:
        if self._thread is not None:
            self._stop.set()
            self._thread.join(timeout=10)
            self._thread = None
        self._drain()  # whatever was added after the thread's last look (or with no thread at all)
