"""Durable storage of exchanges and conversations (SQLite by default, PostgreSQL by URL).

    store = open_store(store_url(config))   # migrated and ready
"""

from __future__ import annotations

import hashlib
import time
from pathlib import Path

from outlast.store.base import Store, StoreUnavailable
from outlast.store.sql import SqlStore

__all__ = ["SqlStore", "Store", "StoreUnavailable", "catch_up", "journal_path", "open_store", "store_url"]


def store_url(configured: str | None, data_dir: Path | None = None) -> str:
    """The configured URL, else ``outlast.db`` in the data directory."""
    if configured:
        return configured
    if data_dir is None:
        from outlast.config import data_dir as default_data_dir

        data_dir = default_data_dir()
    return f"sqlite:///{data_dir / 'outlast.db'}"


def journal_path(url: str, data_dir: Path | None = None) -> Path:
    """Where the recorder journals exchanges bound for the store at ``url`` before they reach it:
    a directory per store (named by a hash of its URL, which may hold a password), so a journal
    is only ever ingested into the store it was written for."""
    if data_dir is None:
        from outlast.config import data_dir as default_data_dir

        data_dir = default_data_dir()
    return data_dir / "journal" / hashlib.blake2b(url.encode(), digest_size=8).hexdigest()


def catch_up(store: Store, data_dir: Path | None = None, *, wait: float = 2.0,
             audit_key: str | None = None) -> tuple[int, int]:
    """Bring ``store`` up to date with its journal before reading it: ingest what no running
    gateway is ingesting, and give running ones up to ``wait`` seconds. Returns the exchanges
    ingested here and those still pending (a running gateway's ingester will store them).
    ``audit_key``: ``governance.audit_key``, for the audit records the journal holds."""
    from outlast.store.ingest import drain
    from outlast.store.journal import JournalReader, slot_in_use, slots

    ingested = 0
    busy = []
    for slot in slots(journal_path(store.url, data_dir)):
        if slot_in_use(slot):
            busy.append(slot)
        elif JournalReader(slot).pending_bytes():
            ingested += drain(store, slot, audit_key=audit_key)
    deadline = time.monotonic() + wait
    while busy and time.monotonic() < deadline and any(JournalReader(s).pending_bytes() for s in busy):
        time.sleep(0.05)
    return ingested, sum(JournalReader(s).pending_records() for s in busy)


def open_store(url: str, *, migrate: bool = True) -> SqlStore:
    store = SqlStore(url)
    if migrate:
        store.migrate()
    return store
