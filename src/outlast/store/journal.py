"""The journal: where an exchange becomes durable, before the database ever sees it.

    journal/<slot>/00000000000000000001.jsonl   segments: one exchange record per line (orjson)
    journal/<slot>/checkpoint                   "<segment> <offset>": what the ingester has stored
    journal/<slot>/writer.lock                  held (flock) by the gateway appending to this slot
    journal/<slot>/ingest.lock                  held by the one ingester draining this slot

:class:`JournalWriter` appends a batch of lines with one ``write`` and one ``fdatasync``: that
is the commit the hot path waits for. :class:`JournalReader` hands the ingester what follows
the checkpoint and moves the checkpoint on once the database has it. Writes to the database are
idempotent by exchange id, so the checkpoint need not be durable: after a crash, a stale one
only means a few records are read again and skipped.

Segments are written in place into space zeroed ahead of the writer (as PostgreSQL pre-zeroes its WAL
segments): overwriting blocks a file already has changes no metadata, so the commit's ``fdatasync``
flushes only the batch's own pages instead of waiting for a filesystem journal commit (on ext4's
``data=ordered``, that commit also flushes every other file's dirty data, such as the database's).
A background thread keeps ``ZERO_AHEAD`` bytes zeroed past the end of what was written, a chunk at a
time; the first NUL byte in a segment marks the end of its records. A segment is cut to its records'
length when the writer moves on to the next.

Each gateway process takes the first free slot, so replicas sharing a data directory never
append to one file. A writer always starts a new segment, so a line torn by a crash stays at the
end of an older segment, where the reader skips it (it was never acknowledged to anyone).
"""

from __future__ import annotations

import contextlib
import fcntl
import logging
import os
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import orjson

log = logging.getLogger("outlast.journal")

SEGMENT_SUFFIX = ".jsonl"
_CHUNK = 8 << 20  # bytes read at a time
ZERO_CHUNK = 1 << 20  # zeroed in one write, then fdatasync'd
ZERO_AHEAD = 8 << 20  # kept zeroed past the records' end
# How an audit record's line begins (orjson keeps the key order of Recorder.note's documents);
# an exchange record's begins with its id.
AUDIT_LINE = b'{"kind":"audit"'


def records_end(data: bytes) -> int:
    """Where the records in ``data`` end: at the first NUL byte (zeroed space), else its length."""
    end = data.find(b"\0")
    return len(data) if end < 0 else end


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _try_lock(path: Path) -> int | None:
    """An fd holding an exclusive flock on ``path``, or ``None`` when another process holds it."""
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        os.close(fd)
        return None
    return fd


def lock(path: Path) -> int:
    """Wait for an exclusive flock on ``path``; the fd holds it until closed."""
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
    fcntl.flock(fd, fcntl.LOCK_EX)
    return fd


def slots(root: Path) -> list[Path]:
    if not root.is_dir():
        return []
    return sorted((p for p in root.iterdir() if p.is_dir() and p.name.isdigit()), key=lambda p: int(p.name))


def segments(slot: Path) -> list[tuple[int, Path]]:
    out = []
    for path in slot.glob("*" + SEGMENT_SUFFIX):
        stem = path.name[: -len(SEGMENT_SUFFIX)]
        if stem.isdigit():
            out.append((int(stem), path))
    return sorted(out)


def slot_in_use(slot: Path) -> bool:
    """True while a gateway process appends to ``slot``."""
    fd = _try_lock(slot / "writer.lock")
    if fd is None:
        return True
    os.close(fd)
    return False


class JournalWriter:
    """Appends batches of lines to this process's slot; ``append`` returns once they are on disk."""

    def __init__(self, root: Path, *, segment_bytes: int = 64 << 20, zero_chunk: int = ZERO_CHUNK,
                 zero_ahead: int = ZERO_AHEAD) -> None:
        self.root = Path(root)
        self.segment_bytes = segment_bytes
        self.zero_chunk = zero_chunk
        self.zero_ahead = zero_ahead
        new_root = not self.root.exists()
        self.root.mkdir(parents=True, exist_ok=True)
        if new_root:
            _fsync_dir(self.root.parent)
        self.slot, self._lock_fd = self._take_slot()
        self._fd = -1
        self._size = 0  # where the records of the current segment end
        self._zeroed = 0  # the current segment's length: zeroes from _size to here
        # Held while a write lands: the zeroing thread never writes where records are, or will be.
        self._space = threading.Lock()
        self._zeroing = threading.Condition(threading.Lock())
        self._closed = False
        self._segment = max((n for n, _ in segments(self.slot)), default=0)
        self._open_next()
        while self._zero_space(self.zero_ahead):  # the first batches find their space ready
            pass
        self._zerer = threading.Thread(target=self._run_zeroing, name="outlast-journal-zeroing", daemon=True)
        self._zerer.start()

    def _take_slot(self) -> tuple[Path, int]:
        n = 0
        while True:
            slot = self.root / str(n)
            fresh = not slot.exists()
            slot.mkdir(exist_ok=True)
            if fresh:
                _fsync_dir(self.root)
            fd = _try_lock(slot / "writer.lock")
            if fd is not None:
                return slot, fd
            n += 1

    def _open_next(self) -> None:
        if self._fd >= 0:
            with contextlib.suppress(OSError):  # only space: a reader stops at the first NUL anyway
                os.ftruncate(self._fd, self._size)
            os.close(self._fd)
        self._segment += 1
        path = self.slot / f"{self._segment:020d}{SEGMENT_SUFFIX}"
        self._fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        self._size = self._zeroed = 0
        _fsync_dir(self.slot)  # the new file's name is durable before anything in it is acknowledged

    def _zero_space(self, ahead: int) -> bool:
        """Zero one chunk past the end when less than ``ahead`` bytes are ready; False when enough are."""
        with self._space:
            if self._fd < 0 or self._zeroed - self._size >= ahead or self._zeroed >= self.segment_bytes + ahead:
                return False
            fd, at = self._fd, max(self._zeroed, self._size)
            os.pwrite(fd, bytes(self.zero_chunk), at)
            self._zeroed = at + self.zero_chunk
            fd = os.dup(fd)  # the segment may move on while this one's zeroes are flushed
        try:
            os.fdatasync(fd)
        finally:
            os.close(fd)
        return True

    def _run_zeroing(self) -> None:
        while True:
            with self._zeroing:
                if self._closed:
                    return
                self._zeroing.wait(0.05)
                if self._closed:
                    return
            try:
                while self._zero_space(self.zero_ahead):
                    pass
            except OSError as error:  # no room for zeroes: the writer appends to the file's end instead
                log.warning("journal: could not zero space ahead (%s); appending without it", error)

    def append(self, data: bytes) -> None:
        """Write ``data`` (whole lines) and make it durable. Raises ``OSError`` (disk full, ...)."""
        with self._space:
            if self._size >= self.segment_bytes:
                self._open_next()
            offset = self._size
            view = memoryview(data)
            while view:
                written = os.pwrite(self._fd, view, offset)
                view = view[written:]
                offset += written
            self._size = offset
            self._zeroed = max(self._zeroed, offset)
            fd = self._fd
        os.fdatasync(fd)
        if self._zeroed - self._size < self.zero_ahead // 2:
            with self._zeroing:
                self._zeroing.notify()

    def close(self) -> None:
        with self._zeroing:
            self._closed = True
            self._zeroing.notify()
        if self._zerer.is_alive() and self._zerer is not threading.current_thread():
            self._zerer.join(timeout=10)
        with self._space:
            if self._fd >= 0:
                with contextlib.suppress(OSError):
                    os.ftruncate(self._fd, self._size)
                os.close(self._fd)
                self._fd = -1
            if self._lock_fd >= 0:
                os.close(self._lock_fd)
                self._lock_fd = -1


class JournalReader:
    """What follows the checkpoint of one slot, a batch at a time."""

    def __init__(self, slot: Path) -> None:
        self.slot = Path(slot)
        self.checkpoint_path = self.slot / "checkpoint"
        self.segment, self.offset = self._load_checkpoint()

    def _load_checkpoint(self) -> tuple[int, int]:
        try:
            segment, offset = self.checkpoint_path.read_text().split()
            return int(segment), int(offset)
        except (FileNotFoundError, ValueError):
            return 0, 0

    def read(self, limit: int) -> tuple[list[dict[str, Any]], tuple[int, int]]:
        """Up to ``limit`` records after the checkpoint, and the position after them (give it
        to :meth:`advance` once they are stored)."""
        records: list[dict[str, Any]] = []
        segment, offset = self.segment, self.offset
        existing = segments(self.slot)
        for number, path in existing:
            if number < segment:
                continue
            if number > segment:
                segment, offset = number, 0
            newest = number == existing[-1][0]
            more = False  # this segment holds more than was read
            try:
                with open(path, "rb") as file:
                    file.seek(offset)
                    data = file.read(_CHUNK)
                    if len(data) == _CHUNK and b"\0" not in data:
                        if b"\n" not in data:  # one line longer than a chunk
                            data += file.read()
                        more = True
            except FileNotFoundError:
                continue
            if (end := records_end(data)) < len(data):  # zeroed space: the records end here
                data, more = data[:end], False
            end = data.rfind(b"\n") + 1
            for line in data[:end - 1].split(b"\n") if end else ():
                if len(records) >= limit:
                    more = True
                    break
                offset += len(line) + 1
                try:
                    records.append(orjson.loads(line))
                except orjson.JSONDecodeError:
                    log.warning("journal %s: skipping an unreadable line before byte %d", path, offset)
            if more or newest:
                break  # newest: a partial line is a batch still being written
            # an older segment: what is left after its last line was torn by a crash; done with it
        return records, (segment, offset)

    def advance(self, position: tuple[int, int]) -> None:
        """Record that everything before ``position`` is stored, and delete finished segments."""
        self.segment, self.offset = position
        temporary = self.checkpoint_path.with_suffix(".tmp")
        temporary.write_text(f"{self.segment} {self.offset}\n")
        os.replace(temporary, self.checkpoint_path)
        for number, path in segments(self.slot):
            if number < self.segment:
                with contextlib.suppress(FileNotFoundError):
                    path.unlink()

    def pending_bytes(self) -> int:
        """Journal bytes not yet stored (up to each segment's zeroed space)."""
        total = 0
        for number, path in segments(self.slot):
            if number < self.segment:
                continue
            with contextlib.suppress(FileNotFoundError), open(path, "rb") as file:
                if number == self.segment:
                    file.seek(self.offset)
                while chunk := file.read(_CHUNK):
                    end = records_end(chunk)
                    total += end
                    if end < len(chunk):
                        break
        return total

    def pending_records(self) -> int:
        """Exchange records not yet stored (reads the unstored part of the journal). The audit records
        that travel with them (lines beginning ``{"kind":"audit"``) are not counted."""
        count = 0
        for number, path in segments(self.slot):
            if number < self.segment:
                continue
            with contextlib.suppress(FileNotFoundError), open(path, "rb") as file:
                if number == self.segment:
                    file.seek(self.offset)
                # Reading starts at a line's start; the last bytes of each chunk go with the next
                # one, so that an audit line split across two chunks is still seen (exactly once:
                # a match is longer than what is carried).
                before = b"\n"
                while chunk := file.read(_CHUNK):
                    end = records_end(chunk)
                    count += chunk.count(b"\n", 0, end)
                    seen = before + chunk[:end]
                    count -= seen.count(b"\n" + AUDIT_LINE)
                    before = seen[-len(AUDIT_LINE):]
                    if end < len(chunk):
                        break
        return count


def pending(root: Path) -> Iterator[tuple[Path, int, bool]]:
    """``(slot, records not yet stored, in use by a gateway)`` for every slot under ``root``."""
    for slot in slots(root):
        reader = JournalReader(slot)
        yield slot, reader.pending_records(), slot_in_use(slot)
