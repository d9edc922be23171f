"""The journal writes into space zeroed ahead of it; readers stop at the zeroes, and nothing written is lost."""

from __future__ import annotations

import asyncio
import errno
import mmap
import os
import platform
import sys
import threading
from collections.abc import Callable
from pathlib import Path

import orjson
import pytest

from outlast.store.aio import AsyncWrites
from outlast.store.journal import JournalReader, JournalWriter, _address_of, segments


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


# ---------------------------------------------------------------- commits submitted from the event loop (AIO)

def _native_aio() -> AsyncWrites:
    writes = AsyncWrites.open(asyncio.get_running_loop())
    if writes is None:  # the project's machines are Linux on x86_64: there it must be there
        assert not (sys.platform.startswith("linux") and platform.machine() in ("x86_64", "aarch64")), \
            "native AIO should be available on this machine"
        pytest.skip("no native AIO on this platform")
    return writes


async def _submit(writer: JournalWriter, writes: AsyncWrites, data: bytes) -> OSError | None:
    done: asyncio.Future[OSError | None] = asyncio.get_running_loop().create_future()
    assert writer.submit(writes, data, done.set_result)
    return await done


async def test_batches_submitted_from_the_loop_land_between_appends_and_read_back_whole(tmp_path: Path) -> None:
    writes = _native_aio()
    writer = JournalWriter(tmp_path, zero_chunk=4096, zero_ahead=65536)
    try:
        assert writer.direct
        n = 0
        for batch in range(60):  # sizes that end mid-block, on a block's end, and span several blocks
            data = lines(n, 1 + batch % 4, pad=[0, 200, 1500, 4000][batch % 4])
            count = 1 + batch % 4
            if batch % 3 == 0:
                writer.append(data)
            else:
                assert await _submit(writer, writes, data) is None
            n += count
        assert writes.in_flight == 0
    finally:
        writes.close()
        writer.close()
    assert read_all(writer.slot) == list(range(n))


async def test_a_full_segment_is_left_to_append_which_starts_the_next(tmp_path: Path) -> None:
    writes = _native_aio()
    writer = JournalWriter(tmp_path, segment_bytes=4096, zero_chunk=4096, zero_ahead=8192)
    try:
        assert await _submit(writer, writes, lines(0, 40, pad=100)) is None  # past the segment's size
        assert not writer.submit(writes, lines(40, 1), lambda error: None)  # nothing started
        writer.append(lines(40, 1))  # rotates
        assert await _submit(writer, writes, lines(41, 2)) is None
    finally:
        writes.close()
        writer.close()
    assert len(segments(writer.slot)) == 2
    assert read_all(writer.slot) == list(range(43))


async def test_the_kernel_refusing_a_write_raises_at_once_or_reports_it_later(tmp_path: Path) -> None:
    writes = _native_aio()
    loop = asyncio.get_running_loop()
    path = tmp_path / "file"
    path.write_bytes(bytes(8192))
    read_only = os.open(path, os.O_RDONLY)
    direct = os.open(path, os.O_WRONLY | os.O_DIRECT)
    memory = mmap.mmap(-1, 8192)
    try:
        with pytest.raises(OSError) as refused:
            writes.write(read_only, _address_of(memory), 4096, 0, lambda result: None)
        assert refused.value.errno == errno.EBADF
        done: asyncio.Future[int] = loop.create_future()
        writes.write(direct, _address_of(memory), 4096, 100, done.set_result)  # O_DIRECT needs aligned offsets
        assert await done == -errno.EINVAL
    finally:
        writes.close()
        memory.close()
        os.close(read_only)
        os.close(direct)


class _FailingWrites:
    """The kernel's answer to a write that failed on the device (EIO), delivered on the loop."""

    def __init__(self) -> None:
        self.loop = asyncio.get_running_loop()

    def write(self, fd: int, address: int, length: int, offset: int, done: Callable[[int], None]) -> None:
        self.loop.call_soon(done, -errno.EIO)


async def test_a_batch_whose_write_failed_leaves_no_gap_and_no_trace(tmp_path: Path) -> None:
    writes = _native_aio()
    writer = JournalWriter(tmp_path, zero_chunk=4096, zero_ahead=65536)
    try:
        writer.append(lines(0, 2))
        error = await _submit(writer, _FailingWrites(), lines(100, 3, pad=3000))  # type: ignore[arg-type]
        assert isinstance(error, OSError) and error.errno == errno.EIO
        # The journal is where it was before the failed batch: the next one takes its place.
        assert await _submit(writer, writes, lines(2, 2)) is None
    finally:
        writes.close()
        writer.close()
    assert read_all(writer.slot) == [0, 1, 2, 3]
