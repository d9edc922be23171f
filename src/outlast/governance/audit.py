"""The audit log: every routing decision, append-only, in a hash chain with a signed head.

Each record's ``hash`` is HMAC-SHA256 over the previous record's hash and the record's canonical
JSON, which includes its sequence number. A separate head row holds the last sequence number and
a signature: HMAC-SHA256 over that number and the last record's hash. :func:`verify` walks the
chain and reports a record whose content was edited (its hash no longer matches), a record
inserted or deleted (a gap, a broken link, a record beyond the head), a deleted tail (the head
names a record that is gone) and a head rewritten to hide one (its signature does not match):
without the key, nobody can cut records off the end and make the head agree.

The key (:func:`resolve_key`): ``governance.audit_key`` when configured; else a random key that
the first writer stores in the data directory (``audit.key``, mode 0600), so that someone who can
write to the database but not read that file cannot recompute the chain. A chain begun by an
outlast from before that file existed was written with a public built-in key, and is continued
with it (with a warning) rather than broken.

Writes never wait on the request. A gateway that records exchanges journals each audit record with
them (:class:`JournaledAudit`): it is durable as soon as the next exchange is, and the ingester
appends it to the chain, in its own process and its own transactions, exactly once (by the record's
``entry`` id). Without a journal (``record: false``), :class:`AuditWriter` collects records and a
thread appends them in batches (one transaction each, every ``interval`` seconds). A batch the store
refuses is kept, in order, and tried again with backoff; beyond ``hold`` records, the oldest are
spooled to files in the data directory (``audit-spool-*.jsonl``), which any writer appends once the
store is back, and so are any still unwritten when the writer closes. Nothing is dropped:
``unwritten`` and ``failures`` count what is waiting and how often writing failed.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import os
import secrets
import threading
import time
from collections import deque
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson
import sqlalchemy as sa

from outlast.governance.tables import audit, audit_head
from outlast.ids import time_ordered
from outlast.store.sql import writing

log = logging.getLogger("outlast.governance")
GENESIS = "0" * 64
DEFAULT_KEY = b"outlast-audit-v1"  # public: only for chains begun before the generated key file
KEY_FILE = "audit.key"
SPOOL_GLOB = "audit-spool-*.jsonl"


def chain_hash(key: bytes, prev: str, body: bytes) -> str:
    return hmac.new(key, prev.encode() + b"\n" + body, hashlib.sha256).hexdigest()


def head_signature(key: bytes, seq: int, last: str) -> str:
    """What the head row stores: the last sequence number and the last record's hash, signed."""
    return hmac.new(key, b"outlast-audit-head\n" + str(seq).encode() + b"\n" + last.encode(),
                    hashlib.sha256).hexdigest()


def _body(seq: int, at: float, record: dict[str, Any]) -> bytes:
    return orjson.dumps({"seq": seq, "at": at, **record}, option=orjson.OPT_SORT_KEYS)


# --------------------------------------------------------------------------- the key


@dataclass(frozen=True, slots=True)
class AuditKey:
    """The chain's HMAC key and, for people, where it came from (never the key itself)."""

    key: bytes = field(repr=False)
    source: str
    builtin: bool = False

    def warning(self) -> str | None:
        if not self.builtin:
            return None
        return ("the audit log uses outlast's built-in key, which is public: anyone who can write to the "
                "database can recompute the chain. Set governance.audit_key (the existing records were "
                "written with the built-in key; begin a new log to change it)")


def _builtin(looked: Path) -> AuditKey:
    return AuditKey(DEFAULT_KEY, f"outlast's built-in key (public; no governance.audit_key and no key file at "
                                 f"{looked}: is OUTLAST_DATA_DIR the gateway's?)", builtin=True)


def _read_key(path: Path) -> AuditKey:
    text = path.read_text().strip()
    try:
        key = bytes.fromhex(text)
    except ValueError:
        raise ValueError(f"the audit key file {path} is not hex; restore it, or set governance.audit_key") from None
    if len(key) < 16:
        raise ValueError(f"the audit key file {path} holds too short a key; restore it, or set "
                         "governance.audit_key")
    if path.stat().st_mode & 0o077:
        log.warning("audit: %s can be read by other users; chmod 600 it", path)
    return AuditKey(key, f"the key file {path}")


def _create_key(path: Path) -> AuditKey:
    """A new random key in ``path`` (mode 0600), unless another process made one first."""
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(f".{path.name}.{os.getpid()}.{secrets.token_hex(4)}")
    fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        with os.fdopen(fd, "w") as file:
            file.write(secrets.token_hex(32) + "\n")
            file.flush()
            os.fsync(file.fileno())
        try:
            os.link(temporary, path)  # atomic, and never replaces a key another writer made
        except FileExistsError:
            pass
    finally:
        temporary.unlink(missing_ok=True)
    found = _read_key(path)
    return AuditKey(found.key, f"the key file {path} (created now)")


def chain_started(engine: sa.Engine) -> bool:
    with engine.connect() as conn:
        return conn.execute(sa.select(audit_head.c.seq).where(audit_head.c.id == 1)).first() is not None


def resolve_key(configured: str | None, data_dir: Path, engine: sa.Engine | None = None, *,
                create: bool = False) -> AuditKey:
    """The chain's key: ``configured`` (``governance.audit_key``), else the key file in ``data_dir``.
    With ``create`` (a writer) and no file: a new one, unless ``engine``'s chain already began
    without one (an older outlast's, with the built-in key, which is then kept)."""
    if configured:
        return AuditKey(configured.encode(), "governance.audit_key")
    path = data_dir / KEY_FILE
    if path.exists():
        return _read_key(path)
    if not create or (engine is not None and chain_started(engine)):
        return _builtin(path)
    return _create_key(path)


# --------------------------------------------------------------------------- the chain


_APPEND_TRIES = 3


def append(engine: sa.Engine, records: Sequence[tuple[float, dict[str, Any]]], key: bytes = DEFAULT_KEY, *,
           entries: Sequence[str] | None = None) -> int:
    """Append records to the chain in one transaction (the head row is locked while it runs).

    ``entries``: each record's id (journaled records have one); a record whose id the chain already
    has is skipped, so a batch read twice is appended once. Returns the number appended.

    Writers of an empty chain (two replicas' first records) have no head row to lock yet: both may
    take sequence number 1, and the database refuses the second (PostgreSQL; SQLite's ``BEGIN
    IMMEDIATE`` never lets them overlap). The loser tries again, and then finds the winner's head
    row and waits on its lock like any later writer."""
    if not records:
        return 0
    for _ in range(_APPEND_TRIES - 1):
        try:
            return _append(engine, records, key, entries)
        except sa.exc.IntegrityError:
            log.info("audit: another writer appended to the chain at the same moment; trying again")
    return _append(engine, records, key, entries)  # the last try: its error goes to the caller


def _append(engine: sa.Engine, records: Sequence[tuple[float, dict[str, Any]]], key: bytes,
            entries: Sequence[str] | None) -> int:
    with writing(engine) as conn:
        head = conn.execute(sa.select(audit_head.c.seq).where(audit_head.c.id == 1).with_for_update()).first()
        named: list[tuple[tuple[float, dict[str, Any]], str | None]] = list(
            zip(records, entries if entries is not None else [None] * len(records), strict=True))
        if entries is not None:
            known = _known_entries(conn, entries)
            named = [(record, entry) for record, entry in named if entry not in known]
            if not named:
                return 0
        seq, prev = 0, GENESIS
        if head is not None:
            seq = int(head.seq)
            last = conn.execute(sa.select(audit.c.hash).where(audit.c.seq == seq)).scalar()
            if last is None:  # verify reports it; the records are still kept, linked to nothing
                log.error("audit: the chain's head names record %d, which is missing; appending after it", seq)
            prev = str(last) if last is not None else GENESIS
        rows = []
        for (at, record), entry in named:
            seq += 1
            body = _body(seq, at, record)
            digest = chain_hash(key, prev, body)
            rows.append({"seq": seq, "at": at, "record": body.decode(), "prev": prev, "hash": digest,
                         "entry": entry})
            prev = digest
        conn.execute(audit.insert(), rows)
        signature = head_signature(key, seq, prev)
        if head is None:
            conn.execute(audit_head.insert().values(id=1, seq=seq, hash=signature))
        else:
            conn.execute(audit_head.update().where(audit_head.c.id == 1).values(seq=seq, hash=signature))
    return len(rows)


def _known_entries(conn: sa.Connection, entries: Sequence[str]) -> set[str]:
    known: set[str] = set()
    for start in range(0, len(entries), 500):  # well inside every database's bound-parameter limit
        chunk = list(entries[start:start + 500])
        known.update(conn.execute(sa.select(audit.c.entry).where(audit.c.entry.in_(chunk))).scalars())
    return known


@dataclass
class Verification:
    records: int = 0
    problems: list[str] = field(default_factory=list)
    head: tuple[int, str] | None = None  # the head's sequence number and signature, to note elsewhere

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
        return result
    last_seq = expected_seq - 1
    result.head = (int(head.seq), str(head.hash))
    if int(head.seq) > last_seq:
        result.problems.append(f"records {last_seq + 1}..{head.seq} are missing at the end (deleted)")
    elif int(head.seq) < last_seq:
        result.problems.append(f"records {int(head.seq) + 1}..{last_seq} are beyond the chain's head (inserted)")
    elif not hmac.compare_digest(str(head.hash), head_signature(key, last_seq, prev)):
        if head.hash == prev:
            result.problems.append("the chain's head is not signed (records may have been deleted from the end "
                                   "and the head moved back; or an outlast from before signed heads wrote it "
                                   "last, and the next record written will sign it)")
        else:
            result.problems.append("the chain's head does not match its signature (records deleted from the end "
                                   "and the head rewritten, or a different audit key)")
    return result


def export(engine: sa.Engine) -> Iterator[bytes]:
    """Every record as a JSON line, with its chain fields, oldest first."""
    with engine.connect() as conn:
        for row in conn.execute(sa.select(audit).order_by(audit.c.seq)):
            record = orjson.loads(row.record)
            record["prev"], record["hash"] = row.prev, row.hash
            yield orjson.dumps(record, option=orjson.OPT_SORT_KEYS) + b"\n"


# --------------------------------------------------------------------------- the writer

Pending = tuple[float, dict[str, Any]]


def _write_spool_file(temporary: Path, path: Path, records: list[Pending]) -> None:
    """``records`` as a spool file at ``path``: written to ``temporary`` (mode 0600), synced, then
    renamed, so the file is whole or not there at all."""
    fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as file:
        os.fchmod(file.fileno(), 0o600)  # also when a crash left ``temporary`` behind
        for at, record in records:
            file.write(orjson.dumps({"at": at, "record": record}) + b"\n")
        file.flush()
        os.fsync(file.fileno())
    os.replace(temporary, path)


class AuditWriter:
    """Collects audit records from the event loop; a thread appends them in batches.

    ``add`` is a deque append: it never wakes the thread, which sleeps ``interval`` seconds
    between batches (a wake-up per record would cost the request path a thread switch).

    A batch the store refuses goes back to the front of the queue and is tried again after a
    backoff (``retry_after`` seconds, doubling up to ``max_retry_after``); while the store stays
    away, the oldest records beyond ``hold`` are written to spool files in ``spool`` (the data
    directory), and so is whatever is left when the writer closes. Spool files, this writer's and
    those another process left, are appended before anything newer once the store answers."""

    def __init__(self, engine: sa.Engine, key: bytes | Callable[[], AuditKey] = DEFAULT_KEY, *,
                 interval: float = 0.1, batch: int = 1000, spool: Path | None = None, hold: int = 50_000,
                 retry_after: float = 0.5, max_retry_after: float = 30.0,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.engine = engine
        # The key, or how to find it (resolve_key), at the first write: that may need the store,
        # and a failure then is one more failed write, retried, rather than a gateway that won't start.
        self.key: bytes | None = key if isinstance(key, bytes) else None
        self._resolve = key if not isinstance(key, bytes) else None
        self.key_source: str | None = None if self.key is None else "given"
        self.interval = interval
        self.batch = batch
        self.spool = spool
        self.hold = hold
        self.retry_after, self.max_retry_after = retry_after, max_retry_after
        self.clock = clock
        self.pending: deque[Pending] = deque()
        self.added = 0
        self.written = 0  # records appended to the chain (by this writer, spooled ones included)
        self.failures = 0  # failed attempts to append a batch
        self.spooled = 0  # records this writer put in spool files not yet appended
        self.failing = False  # the last attempt failed: what is pending is waiting for the store
        self._next_try = 0.0
        self._delay = retry_after
        self._look_at_spool = spool is not None  # spool files to append (left by an earlier run, or our own)
        self.replay_only = False  # the thread stops once the spool files are appended (JournaledAudit)
        self._lock = threading.Lock()  # one drain at a time (the thread, or close)
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    @property
    def unwritten(self) -> int:
        """Records waiting because the store refused them (in memory or spooled)."""
        return (len(self.pending) if self.failing else 0) + self.spooled

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
            if stopping:
                return  # close() drains what is left
            self._drain()
            if self.replay_only and not self._look_at_spool and not self.pending:
                return  # the spool files are appended, and nothing else comes this way

    def _drain(self, *, force: bool = False) -> bool:
        """Append everything spooled, then everything pending; False when the store refused."""
        with self._lock:
            if not force and self.failing and self.clock() < self._next_try:
                return False
            if self._look_at_spool and not self._replay():
                return False
            pending = self.pending
            while pending:
                records: list[Pending] = []
                try:
                    while len(records) < self.batch:
                        records.append(pending.popleft())
                except IndexError:
                    pass
                if not self._write(records):
                    pending.extendleft(reversed(records))  # first again, in order
                    self._overflow()
                    return False
            return True

    def _key(self) -> bytes:
        if self.key is None:
            assert self._resolve is not None
            found = self._resolve()
            self.key, self.key_source = found.key, found.source
            log.info("audit: signing with %s", found.source)
            warning = found.warning()
            if warning is not None:
                log.warning("audit: %s", warning)
        return self.key

    def _write(self, records: list[Pending]) -> bool:
        try:
            self.written += append(self.engine, records, self._key())
        except Exception as error:  # the store is away (or the key file unreadable): keep them, try later
            self.failures += 1
            if not self.failing:
                reason = str(error) if isinstance(error, ValueError) else type(error).__name__
                log.warning("audit: %d records could not be written (%s); keeping them and retrying",
                            len(records), reason)
            self.failing = True
            self._next_try = self.clock() + self._delay
            self._delay = min(self._delay * 2, self.max_retry_after)
            return False
        if self.failing:
            log.warning("audit: the store is back; writing the records kept meanwhile")
        self.failing = False
        self._delay = self.retry_after
        return True

    # ------------------------------------------------------------------ spool files

    def _overflow(self) -> None:
        """Beyond ``hold`` records in memory, the oldest go to a spool file."""
        if self.spool is None or len(self.pending) <= self.hold:
            return
        oldest = [self.pending.popleft() for _ in range(len(self.pending) - self.hold // 2)]
        self._spill(oldest)

    def _spill(self, records: list[Pending]) -> None:
        assert self.spool is not None
        try:
            self.spool.mkdir(parents=True, exist_ok=True)
            name = f"audit-spool-{time.time_ns():020d}-{os.getpid()}-{secrets.token_hex(4)}.jsonl"
            _write_spool_file(self.spool / f".{name}", self.spool / name, records)
        except OSError as error:  # no room on disk either: keep them in memory after all
            log.error("audit: %d records could not be spooled (%s); keeping them in memory",
                      len(records), type(error).__name__)
            self.pending.extendleft(reversed(records))
            return
        self.spooled += len(records)
        self._look_at_spool = True
        log.warning("audit: the store is still away; %d records spooled to %s", len(records), self.spool / name)

    def _replay(self) -> bool:
        """Append every spool file, oldest first; False (what is left kept) when the store refuses."""
        assert self.spool is not None
        for path in sorted(self.spool.glob(SPOOL_GLOB)):
            claimed = path.with_name(f".claimed-{os.getpid()}-{path.name}")
            try:
                os.rename(path, claimed)  # one writer takes each file
            except FileNotFoundError:
                continue
            lines = [orjson.loads(line) for line in claimed.read_bytes().splitlines() if line.strip()]
            records: list[Pending] = [(float(item["at"]), item["record"]) for item in lines]
            done = 0
            while done < len(records):
                chunk = records[done:done + self.batch]
                if not self._write(chunk):
                    self._rewrite(claimed, path, records[done:])
                    return False
                done += len(chunk)
                self.spooled = max(0, self.spooled - len(chunk))
            claimed.unlink()
        self._look_at_spool = False
        return True

    @staticmethod
    def _rewrite(claimed: Path, path: Path, records: list[Pending]) -> None:
        """What is left of a spool file goes back under its own name (and so its place in order)."""
        _write_spool_file(claimed.with_name(claimed.name + ".left"), path, records)
        claimed.unlink()

    # ------------------------------------------------------------------ tests, shutdown

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
        # Whatever was added after the thread's last look (or with no thread at all); if the store
        # still refuses, it goes to a spool file for the next writer rather than away with us.
        if not self._drain(force=True) and self.spool is not None and self.pending:
            left = list(self.pending)
            self.pending.clear()
            self._spill(left)
        if self.pending:
            log.error("audit: %d records could not be written or spooled and are lost", len(self.pending))


class JournaledAudit:
    """The audit writer of a gateway that records exchanges: ``add`` journals the record (one
    ``orjson.dumps`` and a deque append on the event loop; ``journal`` is the recorder's
    :meth:`~outlast.store.recorder.Recorder.note`), and the ingester appends it to the chain.

    ``leftover``: an :class:`AuditWriter` on the spool directory, which appends, in a thread that
    stops when it is done, any spool files an earlier run left (written while the store was away)."""

    def __init__(self, journal: Callable[[dict[str, Any]], None], *,
                 wait_stored: Callable[[float], bool] | None = None, leftover: AuditWriter | None = None) -> None:
        self.journal = journal
        self.wait_stored = wait_stored
        self.leftover = leftover
        self.added = 0

    @property
    def unwritten(self) -> int:
        """Spooled records of an earlier run still waiting (the journal's own are counted there)."""
        return self.leftover.unwritten if self.leftover is not None else 0

    @property
    def failures(self) -> int:
        return self.leftover.failures if self.leftover is not None else 0

    def add(self, record: dict[str, Any], at: float | None = None) -> None:
        self.added += 1
        # One record per exchange, so the exchange's id (unique, time-ordered) is the record's own;
        # a record of something else gets an id of its own.
        entry = record.get("exchange_id") or time_ordered(10)
        self.journal({"kind": "audit", "entry": entry, "at": time.time() if at is None else at, "record": record})

    def start(self) -> None:
        leftover = self.leftover
        if leftover is not None and leftover.spool is not None and any(leftover.spool.glob(SPOOL_GLOB)):
            leftover.replay_only = True
            leftover.start()

    def flush(self, timeout: float = 10.0) -> bool:
        """Wait until every record added so far is in the chain (tests; ``outlast audit`` catches up itself)."""
        return self.wait_stored(timeout) if self.wait_stored is not None else True

    def close(self) -> None:
        if self.leftover is not None:
            self.leftover.close()
