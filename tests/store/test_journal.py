"""The journal writes into space zeroed ahead of it; readers stop at the zeroes, and nothing written is lost."""

from __future__ import annotations

import os
import threading
from pathlib import Path

import orjson

from outlast.store.journal import JournalReader, JournalWriter, segments


def lines(first: int, count: int, pad: int = 0) -> bytes:
    return b"".join(orjson.dumps({"n": n, "pad": "x" * pad}) + b"\n" for n in range(first, first + count))


def read_all(slot: Path) -> list[int]:
    reader = JournalReader(slot)
    got: list[int] = []
    while True:
        records, position = reader.read(1000)
        if not records:
            return got
        got.extend(r["n"] for r in records)
        reader.advance(position)


def test_records_land_in_zeroed_space_and_read_back_whole(tmp_path: Path) -> None:
    writer = JournalWriter(tmp_path, zero_chunk=4096, zero_ahead=16384)
    try:
        writer.append(lines(0, 3))
        ((_, path),) = segments(writer.slot)
        data = path.read_bytes()
        assert len(data) >= 16384  # the space ahead exists before it is written
        assert data[data.index(b"\0"):] == bytes(len(data) - data.index(b"\0"))  # and is zeroes
        reader = JournalReader(writer.slot)
        assert reader.pending_records() == 3
        assert reader.pending_bytes() == len(lines(0, 3))  # the zeroes are not pending
        assert [r["n"] for r in reader.read(10)[0]] == [0, 1, 2]
    finally:
        writer.close()


def test_many_batches_across_segments_while_zeroing_runs_lose_nothing(tmp_path: Path) -> None:
    # Small chunks and segments so the zeroing thread and rotation run hundreds of times.
    writer = JournalWriter(tmp_path, segment_bytes=4_000, zero_chunk=1024, zero_ahead=4096)
    try:
        for batch in range(300):
            writer.append(lines(batch * 5, 5, pad=batch % 40))
    finally:
        writer.close()
    assert len(segments(writer.slot)) > 10
    for _, path in segments(writer.slot)[:-1]:
        assert b"\0" not in path.read_bytes()  # a finished segment is cut to its records
    assert read_all(writer.slot) == list(range(1500))


def test_a_reader_follows_a_writer_that_is_still_writing(tmp_path: Path) -> None:
    writer = JournalWriter(tmp_path, segment_bytes=50_000, zero_chunk=2048, zero_ahead=8192)
    reader = JournalReader(writer.slot)
    got: list[int] = []
    done = threading.Event()

    def write() -> None:
        for batch in range(400):
            writer.append(lines(batch * 3, 3, pad=7))
        done.set()

    thread = threading.Thread(target=write)
    thread.start()
    try:
        while True:
            # Whether the writer had finished before this read began: only then does an empty read
            # mean the end (it may finish, with more batches, while the read is running).
            finished = done.is_set()
            records, position = reader.read(500)
            got.extend(r["n"] for r in records)
            reader.advance(position)
            if finished and not records:
                break
    finally:
        thread.join()
        writer.close()
    assert got == list(range(1200))


def test_a_batch_torn_by_a_crash_is_skipped_and_what_follows_is_read(tmp_path: Path) -> None:
    writer = JournalWriter(tmp_path, zero_chunk=4096, zero_ahead=8192)
    writer.append(lines(0, 2))
    (_, path), = segments(writer.slot)
    # A crash in the middle of the next batch: half a line landed, the rest of the file is still zeroes.
    fd = os.open(path, os.O_WRONLY)
    os.pwrite(fd, b'{"n": 2, "pad"', len(lines(0, 2)))
    os.close(fd)
    os.close(writer._fd)  # the process dies: no truncation, the writer lock goes with it
    os.close(writer._lock_fd)
    writer._fd = writer._lock_fd = -1
    successor = JournalWriter(tmp_path, zero_chunk=4096, zero_ahead=8192)
    try:
        assert successor.slot == writer.slot
        successor.append(lines(10, 2))
    finally:
        successor.close()
    assert read_all(writer.slot) == [0, 1, 10, 11]


def test_pending_records_counts_exchanges_not_the_audit_records_between_them(tmp_path: Path, monkeypatch) -> None:
    from outlast.store import journal

    audit = orjson.dumps({"kind": "audit", "entry": "e", "at": 1.0, "record": {"who": "master key"}}) + b"\n"
    writer = JournalWriter(tmp_path, zero_chunk=4096, zero_ahead=16384)
    try:
        writer.append(audit + lines(0, 2) + audit + audit + lines(2, 3) + audit)
    finally:
        writer.close()
    assert JournalReader(writer.slot).pending_records() == 5
    # Read in pieces of every size, so that lines, and the start of an audit line, fall across pieces.
    for size in (1, 2, 7, 15, 16, 17, 64, 333):
        monkeypatch.setattr(journal, "_CHUNK", size)
        assert JournalReader(writer.slot).pending_records() == 5, size
