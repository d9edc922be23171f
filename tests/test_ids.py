"""Identifiers: unique, time-ordered, random from the kernel, never shared across a fork."""

from __future__ import annotations

import os
import time

from outlast import ids


def test_ids_are_unique_time_ordered_hex() -> None:
    first = [ids.time_ordered(10) for _ in range(20_000)]  # several 4 KiB blocks of randomness
    assert len(set(first)) == len(first)
    assert all(len(i) == 32 and int(i, 16) >= 0 for i in first)
    time.sleep(0.002)
    later = ids.time_ordered(10)
    assert later[:12] > first[0][:12]  # the millisecond prefix orders them
    assert sorted([later, *first[:5]])[-1] == later


def test_random_parts_do_not_repeat_and_use_every_byte_value() -> None:
    seen = bytes.fromhex("".join(ids.random_hex(16) for _ in range(2_000)))
    assert len(set(seen)) == 256  # 32,000 bytes: every value appears (chance of failing ~1e-50)
    chunks = {seen[i:i + 16] for i in range(0, len(seen), 16)}
    assert len(chunks) == 2_000


def test_a_forked_child_never_hands_out_the_parents_bytes() -> None:
    ids.random_hex(1)  # the parent holds a block
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child
        os.write(write, ids.random_hex(32).encode())
        os._exit(0)
    os.close(write)
    os.waitpid(pid, 0)
    child = os.read(read, 64).decode()
    os.close(read)
    parent = ids.random_hex(32)
    assert len(child) == 64 and child != parent
