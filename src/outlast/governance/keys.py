"""Virtual keys: one per team or person, shown once, stored as a hash, revocable everywhere at once.

A key reads ``olk_<id>_<secret>``: the id finds the row, the secret is checked against its
SHA-256 with :func:`hmac.compare_digest` (the secret is 32 random bytes, so a plain hash is as
good as a slow one and costs a microsecond on the hot path).

Every replica keeps the keys in memory (:class:`KeyRing`) and checks a version number in the
shared store every ``governance.key_refresh`` seconds (one indexed read); creating or revoking
a key bumps it, so a revocation takes effect on every replica within that interval. A key the
ring does not know triggers one immediate refresh (at most one at a time), so a key created a
moment ago works at once.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import logging
import secrets
import time
from collections.abc import Sequence
from dataclasses import dataclass

import orjson
import sqlalchemy as sa

from outlast.governance.tables import keys, meta
from outlast.store.sql import writing

log = logging.getLogger("outlast.governance")
PREFIX = "olk_"
VERSION = "keys_version"
_MISS_INTERVAL = 0.5  # seconds: unknown keys refresh the ring at most this often


@dataclass(frozen=True, slots=True)
class VirtualKey:
    id: str
    team: str
    name: str | None
    routes: tuple[str, ...]
    max_class: str | None
    rpm: int | None
    created: float
    revoked: float | None
    hash: str = ""

    def public(self) -> dict[str, object]:
        """What ``keys list`` and the API show: never the hash."""
        return {"id": self.id, "team": self.team, "name": self.name, "routes": list(self.routes),
                "max_class": self.max_class, "rpm": self.rpm, "created": self.created, "revoked": self.revoked}


def _digest(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


def split(presented: str) -> tuple[str, str] | None:
    """``(id, secret)`` of a presented virtual key, or None if it is not one."""
    if not presented.startswith(PREFIX):
        return None
    key_id, sep, secret = presented[len(PREFIX):].partition("_")
    if not sep or not key_id or not secret or len(key_id) > 32:
        return None
    return key_id, secret


def _row(row: sa.Row) -> VirtualKey:
    return VirtualKey(row.id, row.team, row.name, tuple(orjson.loads(row.routes)), row.max_class, row.rpm,
                      row.created, row.revoked, row.hash)


def _bump(conn: sa.Connection) -> None:
    updated = conn.execute(meta.update().where(meta.c.name == VERSION).values(value=meta.c.value + 1))
    if updated.rowcount == 0:
        conn.execute(meta.insert().values(name=VERSION, value=1))


def create_key(engine: sa.Engine, team: str, *, routes: Sequence[str] = (), max_class: str | None = None,
               rpm: int | None = None, name: str | None = None) -> tuple[str, VirtualKey]:
    """A new key: ``(the key, shown once, its record)``."""
    key_id = secrets.token_hex(6)
    secret = secrets.token_urlsafe(32)
    record = VirtualKey(key_id, team, name, tuple(routes), max_class, rpm, time.time(), None, _digest(secret))
    with writing(engine) as conn:
        conn.execute(keys.insert().values(id=record.id, hash=record.hash, team=team, name=name,
                                          routes=orjson.dumps(list(routes)).decode(), max_class=max_class, rpm=rpm,
                                          created=record.created, revoked=None))
        _bump(conn)
    return f"{PREFIX}{key_id}_{secret}", record


def revoke_key(engine: sa.Engine, key_id: str) -> bool:
    with writing(engine) as conn:
        done = conn.execute(keys.update().where(keys.c.id == key_id, keys.c.revoked.is_(None))
                            .values(revoked=time.time())).rowcount
        if done:
            _bump(conn)
    return bool(done)


def list_keys(engine: sa.Engine) -> list[VirtualKey]:
    with engine.connect() as conn:
        return [_row(r) for r in conn.execute(sa.select(keys).order_by(keys.c.created))]


def keys_version(engine: sa.Engine) -> int:
    with engine.connect() as conn:
        value = conn.execute(sa.select(meta.c.value).where(meta.c.name == VERSION)).scalar()
    return int(value or 0)


class KeyRing:
    """The keys in memory, kept in step with the store."""

    def __init__(self, engine: sa.Engine | None, *, refresh: float = 1.0) -> None:
        self.engine = engine
        self.refresh_every = refresh
        self.version = -1
        self.active: dict[str, VirtualKey] = {}
        self.any = False  # a key was ever created here (revoked or not): then every request needs a key
        self._task: asyncio.Task[None] | None = None
        self._pending: asyncio.Future[None] | None = None
        self._last_miss = 0.0

    @property
    def loaded(self) -> bool:
        """The keys have been read from the store at least once."""
        return self.version != -1

    def load(self) -> bool:
        """Re-read the keys when their version changed. Returns whether it did."""
        if self.engine is None:
            return False
        version = keys_version(self.engine)
        if version == self.version:
            return False
        every = list_keys(self.engine)
        self.active = {k.id: k for k in every if k.revoked is None}
        # Revoking the last key must not open the gateway to callers without one.
        self.any = bool(every)
        self.version = version
        return True

    def check(self, presented: str) -> VirtualKey | None:
        """The key ``presented`` is, if it is a valid, unrevoked one the ring knows."""
        parts = split(presented)
        if parts is None:
            return None
        key = self.active.get(parts[0])
        if key is None:
            return None
        return key if hmac.compare_digest(_digest(parts[1]), key.hash) else None

    async def check_fresh(self, presented: str) -> VirtualKey | None:
        """:meth:`check`, refreshing the ring once when the key is unknown (created elsewhere)."""
        key = self.check(presented)
        parts = split(presented)
        if key is not None or parts is None or parts[0] in self.active or self.engine is None:
            return key
        # Refresh for an unknown key at most every _MISS_INTERVAL: a new key waits for the next
        # refresh that starts after it arrived (never refused for coming too soon after another),
        # and a flood of made-up keys costs the store at most one read per interval.
        arrived = time.monotonic()
        while True:
            pending = self._pending
            if pending is None:
                wait = self._last_miss + _MISS_INTERVAL - time.monotonic()
                if wait > 0:
                    await asyncio.sleep(wait)
                    continue
                self._last_miss = time.monotonic()
                pending = self._pending = asyncio.ensure_future(self._refresh())
            started = self._last_miss
            try:
                await asyncio.shield(pending)
            except Exception:
                log.warning("virtual keys: refresh failed", exc_info=True)
            finally:
                if self._pending is pending:
                    self._pending = None
            if started >= arrived:
                return self.check(presented)

    async def _refresh(self) -> None:
        await asyncio.to_thread(self.load)

    async def start(self) -> None:
        if self.engine is None:
            return
        try:
            await self._refresh()
        except Exception:  # the store is down: the master key still works, virtual keys once it is back
            log.warning("virtual keys: cannot read the store yet", exc_info=True)
        self._task = asyncio.create_task(self._poll())

    async def _poll(self) -> None:
        while True:
            await asyncio.sleep(self.refresh_every)
            try:
                await self._refresh()
            except Exception:
                log.warning("virtual keys: refresh failed", exc_info=True)

    async def aclose(self) -> None:
        if self._task is not None:
            self._task.cancel()
            try:
                await self._task
            except (asyncio.CancelledError, Exception):
                pass
            self._task = None
