"""The recorder: group commit into the journal, ingestion into the database, and what happens
when the database is away (real servers only)."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import pytest

from outlast.store.recorder import Recorder
from outlast.store.sql import SqlStore
from tests.store.helpers import make_exchange, user
from tests.store.tcpproxy import TcpProxy


@pytest.mark.parametrize("ingest", ["process", "thread"])
async def test_concurrent_commits_share_fsyncs_and_are_ingested(store_url: str, tmp_path: Path,
                                                                 ingest: str) -> None:
    recorder = Recorder(SqlStore(store_url), tmp_path / "journal", ingest=ingest)
    exchanges = [make_exchange([user(f"question {n}")], f"answer {n}") for n in range(300)]
    try:
        await asyncio.gather(*(recorder.commit(e) for e in exchanges))
        assert recorder.journaled == 300
        assert recorder.batches < 300  # grouped: many exchanges per fsync
        assert await recorder.flush()
        assert recorder.pending == 0
        reader = SqlStore(store_url)
        stats = reader.stats()
        reader.close()
        assert (stats.exchanges, stats.conversations, stats.messages) == (300, 300, 600)
    finally:
        await recorder.aclose()


async def test_committed_exchanges_survive_a_crash_before_ingestion(tmp_path: Path) -> None:
    """Durable once ``commit`` returns: a recorder that never reached the database (it died)
    leaves a journal that the next one ingests, and a new conversation keeps the id the
    response carried."""
    url = f"sqlite:///{tmp_path / 'outlast.db'}"
    crashed = Recorder(SqlStore(url), tmp_path / "journal", ingest=None)
    exchanges = [make_exchange([user(f"question {n}")], f"answer {n}") for n in range(50)]
    await asyncio.gather(*(crashed.commit(e) for e in exchanges))
    named = {e.id: e.conversation_id for e in exchanges}
    assert all(named.values())
    crashed.journal.close()  # what the kernel does for a killed process: the slot's lock is gone
    recorder = Recorder(SqlStore(url), tmp_path / "journal")
    assert recorder.slot == crashed.slot
    try:
        assert await recorder.flush()
    finally:
        await recorder.aclose()
    store = SqlStore(url)
    try:
        for exchange in exchanges:
            row = store.get_exchange(exchange.id)
            assert row is not None and row["conversation_id"] == named[exchange.id]
        assert store.stats().messages == 100
    finally:
        store.close()


async def test_database_cut_mid_load_waits_in_the_journal_without_loss_or_duplicates(pg_url: str,
                                                                                  tmp_path: Path) -> None:
    SqlStore(pg_url).migrate()
    proxy = TcpProxy(("127.0.0.1", 5432))
    proxied = pg_url.replace(":5432/", f":{proxy.port}/")
    recorder = Recorder(SqlStore(proxied), tmp_path / "journal")
    try:
        before = [make_exchange([user(f"before {n}")], "ok") for n in range(20)]
        await asyncio.gather(*(recorder.commit(e) for e in before))
        assert await recorder.flush()
        proxy.cut()
        during = [make_exchange([user(f"during {n}")], "ok") for n in range(50)]
        started = time.monotonic()
        await asyncio.wait_for(asyncio.gather(*(recorder.commit(e) for e in during)), 20)
        assert time.monotonic() - started < 5  # durable in the journal: never held for the database
        await asyncio.sleep(1.0)
        assert recorder.pending == 50  # waiting in the journal while the database is away
        proxy.restore()
        after = [make_exchange([user(f"after {n}")], "ok") for n in range(10)]
        await asyncio.gather(*(recorder.commit(e) for e in after))
        assert await recorder.flush()
    finally:
        await recorder.aclose()
        proxy.close()
    direct = SqlStore(pg_url)
    stats = direct.stats()
    for exchange in before + during + after:
        assert direct.get_exchange(exchange.id) is not None, exchange.id
    direct.close()
    assert (stats.exchanges, stats.conversations, stats.messages) == (80, 80, 160)


async def test_a_journal_left_behind_is_ingested_at_start_once(store_url: str, tmp_path: Path) -> None:
    journal = tmp_path / "journal"
    away = Recorder(SqlStore("postgresql://postgres@127.0.0.1:1/none"), journal)
    exchanges = [make_exchange([user(f"journaled {n}")], "ok") for n in range(10)]
    await asyncio.gather(*(away.commit(e) for e in exchanges))
    await away.aclose()
    assert away.journaled == 10 and away.pending == 10
    segment = max(away.slot.glob("*.jsonl"))
    segment.write_bytes(segment.read_bytes() + b'{"id": "torn-by-a-crash", "crea')  # died mid-append
    store = SqlStore(store_url)
    store.migrate()
    from outlast.store.records import exchange_record

    store.write_exchanges([exchange_record(exchanges[0])])  # one made it in before the crash
    recorder = Recorder(SqlStore(store_url), journal)
    try:
        late = make_exchange([user("after restart")], "ok")
        await recorder.commit(late)
        assert await recorder.flush()
    finally:
        await recorder.aclose()
    stats = store.stats()
    store.close()
    assert (stats.exchanges, stats.messages) == (11, 22)


async def test_a_lone_commit_never_waits_for_company(store_url: str, tmp_path: Path) -> None:
    # commit_delay of a minute: a commit that waited for it would never finish within the test's limit
    recorder = Recorder(SqlStore(store_url), tmp_path / "journal", ingest=None, commit_delay=60)
    recorder.siblings = lambda: 1  # only the exchange committing is being answered
    try:
        for i in range(5):
            await asyncio.wait_for(recorder.commit(make_exchange([user(f"lone {i}")], "ok")), timeout=30)
        assert (recorder.journaled, recorder.batches) == (5, 5)
    finally:
        await recorder.aclose()


async def test_a_commit_waits_briefly_for_exchanges_still_being_answered(store_url: str, tmp_path: Path) -> None:
    recorder = Recorder(SqlStore(store_url), tmp_path / "journal", ingest=None, commit_delay=0.5)
    recorder.siblings = lambda: 4  # four exchanges in flight: the first commit waits for the others

    async def finish(n: int) -> None:
        await asyncio.sleep(0.01 * n)  # they finish one after another, not in one event-loop turn
        await recorder.commit(make_exchange([user(f"question {n}")], f"answer {n}"))

    try:
        await asyncio.gather(*(finish(n) for n in range(4)))
        assert (recorder.journaled, recorder.batches) == (4, 1)  # one fsync for all four
    finally:
        await recorder.aclose()


async def test_readers_catch_up_with_a_journal_no_gateway_is_ingesting(tmp_path: Path) -> None:
    from outlast.store import catch_up, journal_path

    url = f"sqlite:///{tmp_path / 'outlast.db'}"
    other = f"sqlite:///{tmp_path / 'other.db'}"
    running = Recorder(SqlStore(url), journal_path(url, tmp_path), ingest=None)  # a gateway, its ingester stalled
    await running.commit(make_exchange([user("just now")], "a"))
    stopped = Recorder(SqlStore(url), journal_path(url, tmp_path), ingest=None)  # a replica, since stopped
    assert stopped.slot != running.slot
    await asyncio.gather(*(stopped.commit(make_exchange([user(f"q {n}")], "a")) for n in range(7)))
    await stopped.aclose()
    try:
        elsewhere = SqlStore(other)
        elsewhere.migrate()
        assert catch_up(elsewhere, tmp_path, wait=0) == (0, 0)  # a journal is only for its own store
        assert elsewhere.stats().exchanges == 0
        elsewhere.close()
        store = SqlStore(url)
        store.migrate()
        assert catch_up(store, tmp_path, wait=0.1) == (7, 1)  # the stopped one's, and one still pending
        assert catch_up(store, tmp_path, wait=0) == (0, 1)
        assert store.stats().exchanges == 7
        store.close()
    finally:
        await running.aclose()
