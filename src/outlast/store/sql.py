"""The store on SQLAlchemy Core: SQLite (the default, a file in the data directory) and PostgreSQL.

Only three things differ between the backends, and each is kept here: connection set-up
(SQLite's WAL and transaction mode), full-text search (FTS5 or tsvector), and vacuuming.
"""

from __future__ import annotations

import re
import threading
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import orjson
import sqlalchemy as sa
from sqlalchemy import event

from outlast.store.base import (
    Conversation,
    ConversationSummary,
    ExchangeRecord,
    ImportedConversation,
    ImportResult,
    PruneResult,
    SearchHit,
    StoredMessage,
    StoreStats,
    StoreUnavailable,
)
from outlast.store.records import plain_text, prefix_hashes, tag_part
from outlast.store.schema import attempts, conversations, exchanges, messages, splices
from outlast.store.threads import Placement, head_candidates, place, request_messages

MIGRATIONS = Path(__file__).parent / "migrations"
# Column orders for the bulk inserts: rows are built as tuples in these orders.
_EXCHANGE_SCALARS = tuple(c.name for c in exchanges.columns
                          if c.name not in ("conversation_id", "skipped", "request", "response", "size"))
_EXCHANGE_KEYS = (*_EXCHANGE_SCALARS, "conversation_id", "skipped", "request", "response", "size")
_ATTEMPT_KEYS = ("exchange_id", "seq", "provider", "model", "outcome", "started_ms", "first_event_ms", "ended_ms",
                 "error", "purpose", "mode", "deadline_ms")
_ATTEMPT_FIELDS = _ATTEMPT_KEYS[2:]
_SPLICE_KEYS = tuple(c.name for c in splices.columns)
_SPLICE_FIELDS = _SPLICE_KEYS[2:]
_MESSAGE_KEYS = ("conversation_id", "position", "role", "content", "text", "created", "exchange_id")
_CONVERSATION_KEYS = ("id", "title", "source", "source_id", "created", "updated", "model", "system", "head_hash",
                      "message_count", "size")
_SUMMARY = (conversations.c.id, conversations.c.title, conversations.c.source, conversations.c.created,
            conversations.c.updated, conversations.c.model, conversations.c.message_count)
_migrate_lock = threading.Lock()


def engine_url(url: str) -> str:
    """``postgresql://`` and ``postgres://`` use psycopg 3 (chosen by measurement: see docs/memory.md)."""
    for prefix in ("postgresql://", "postgres://"):
        if url.startswith(prefix):
            return "postgresql+psycopg://" + url[len(prefix):]
    return url


def _loads(value: Any) -> Any:
    if value is None or isinstance(value, dict):
        return value
    return orjson.loads(value)


def _text(value: Any) -> str | None:
    if value is None:
        return None
    if isinstance(value, bytes | bytearray):
        return value.decode()
    if isinstance(value, str):
        return value
    return orjson.dumps(value).decode()


def _summary(row: Any) -> ConversationSummary:
    return ConversationSummary(row.id, row.title, row.source, row.created, row.updated, row.model,
                               row.message_count)


class SqlStore:
    def __init__(self, url: str, *, synchronous: str = "FULL") -> None:
        self.url = url
        self._inserts: dict[str, str] = {}
        self.dialect = "sqlite" if url.startswith("sqlite") else "postgresql"
        if self.dialect == "sqlite":
            database = sa.engine.make_url(url).database
            if database and database != ":memory:":
                Path(database).expanduser().parent.mkdir(parents=True, exist_ok=True)
            self.engine = sa.create_engine(url, connect_args={"check_same_thread": False, "timeout": 30})
            _sqlite_setup(self.engine, synchronous)
        else:
            self.engine = sa.create_engine(
                engine_url(url), pool_pre_ping=True, pool_size=2, max_overflow=4,
                # Fail fast when the server is gone, so the ingester retries instead of hanging.
                connect_args={"connect_timeout": 3, "tcp_user_timeout": 5000},
            )

    # ------------------------------------------------------------------ plumbing

    @contextmanager
    def _write(self) -> Iterator[sa.Connection]:
        """A write transaction (``BEGIN IMMEDIATE`` on SQLite, so two writers queue rather than
        fail on upgrading a read lock). Connection failures become :class:`StoreUnavailable`."""
        with unavailable_when_unreachable(), writing(self.engine) as conn:
            yield conn

    @contextmanager
    def _read(self) -> Iterator[sa.Connection]:
        with unavailable_when_unreachable(), self.engine.connect() as conn:
            yield conn

    def migrate(self) -> None:
        from alembic import command
        from alembic.config import Config as AlembicConfig

        config = AlembicConfig()
        config.set_main_option("script_location", str(MIGRATIONS))
        with _migrate_lock, self._write() as conn:
            if self.dialect == "postgresql":  # replicas starting together migrate one at a time
                conn.exec_driver_sql("SELECT pg_advisory_xact_lock(727401)")
            config.attributes["connection"] = conn
            command.upgrade(config, "head")

    def ping(self) -> None:
        with self._read() as conn:
            conn.exec_driver_sql("SELECT 1")

    def close(self) -> None:
        self.engine.dispose()

    # ------------------------------------------------------------------ exchanges

    def write_exchanges(self, records: Sequence[ExchangeRecord]) -> dict[str, str | None]:
        try:
            with self._write() as conn:
                return self._write_exchanges(conn, records, thread=True)
        except sa.exc.IntegrityError:
            # Another writer moved a conversation under us (replicas on one PostgreSQL): one by
            # one, and an exchange that still collides is kept without threading, never lost.
            result: dict[str, str | None] = {}
            for record in records:
                try:
                    with self._write() as conn:
                        result.update(self._write_exchanges(conn, [record], thread=True))
                except sa.exc.IntegrityError:
                    with self._write() as conn:
                        result.update(self._write_exchanges(conn, [record], thread=False))
            return result

    def _write_exchanges(self, conn: sa.Connection, records: Sequence[ExchangeRecord],
                         *, thread: bool) -> dict[str, str | None]:
        ids = [r["id"] for r in records]
        result: dict[str, str | None] = dict(
            self._select_in(conn, "SELECT id, conversation_id FROM exchanges WHERE id", ids))
        exchange_rows: list[tuple[Any, ...]] = []
        attempt_rows: list[tuple[Any, ...]] = []
        splice_rows: list[tuple[Any, ...]] = []
        message_rows: list[tuple[Any, ...]] = []
        created: dict[str, dict[str, Any]] = {}  # conversations begun in this batch
        updates: dict[str, dict[str, Any]] = {}  # existing conversations continued
        counts: dict[str, int] = {}  # message counts as of this batch
        heads: dict[str, tuple[str, int]] = {}  # head hash -> (conversation, count), this batch
        latest: dict[str, str] = {}  # conversation -> its head hash, as of this batch

        # Read what threading needs for the whole batch in two queries, not one per exchange.
        prepared: list[tuple[ExchangeRecord, Any, Any]] = []
        candidates: set[str] = set()
        explicit: set[str] = set()
        for record in records:
            if record["id"] in result:
                continue  # already stored: a replay, or the same exchange twice
            response = _loads(record.get("response"))
            work = None
            if thread and response:
                asked = request_messages(_loads(record.get("request")))
                answer = [tag_part(p) for p in response.get("content") or ()]
                hashes = prefix_hashes([*asked, ("assistant", answer)]) if answer else []
                work = (asked, answer, hashes)
                if record.get("conversation_id"):
                    explicit.add(record["conversation_id"])
                elif answer:
                    candidates.update(head_candidates(asked, hashes))
            prepared.append((record, response, work))
        stored_states: dict[str, tuple[str | None, int]] = {}
        stored_heads: dict[str, tuple[str, int]] = {}
        if explicit:
            for cid, head, count in self._select_in(
                    conn, "SELECT id, head_hash, message_count FROM conversations WHERE id", list(explicit)):
                stored_states[cid] = (head, count)
        if candidates:
            for cid, head, count in self._select_in(
                    conn, "SELECT id, head_hash, message_count FROM conversations WHERE head_hash", list(candidates)):
                stored_heads[head] = (cid, count)

        def state_of(conversation_id: str) -> tuple[str | None, int] | None:
            if conversation_id in counts:
                return latest[conversation_id], counts[conversation_id]
            return stored_states.get(conversation_id)

        def find_head(hashes: list[str]) -> tuple[str, str, int] | None:
            for h in reversed(hashes):  # the longest prefix first
                if h in heads:
                    return heads[h][0], h, heads[h][1]
                if h in stored_heads:
                    cid, count = stored_heads[h]
                    if counts.get(cid, count) == count:  # not moved on earlier in this batch
                        return cid, h, count
            return None

        for record, response, work in prepared:
            exchange_id = record["id"]
            if exchange_id in result:
                continue
            request_json, response_json = _text(record.get("request")), _text(record.get("response"))
            conversation_id = record.get("conversation_id")
            placement: Placement | None = None
            if work is not None:
                asked, answer, hashes = work
                placement = place(conversation_id, asked, answer, state_of=state_of, find_head=find_head,
                                  hashes=hashes)
            if placement is not None:
                conversation_id = placement.conversation_id
                self._place(record, placement, response, created, updates, message_rows)
                counts[conversation_id] = placement.start + len(placement.messages)
                latest[conversation_id] = placement.head_hash
                heads[placement.head_hash] = (conversation_id, counts[conversation_id])
            result[exchange_id] = conversation_id
            get = record.get
            exchange_rows.append((*[get(name) for name in _EXCHANGE_SCALARS], conversation_id,
                                  _text(get("skipped") or None), request_json, response_json,
                                  len(request_json or "") + len(response_json or "")))
            for i, a in enumerate(get("attempts") or ()):
                attempt_rows.append((exchange_id, i, *[a.get(name) for name in _ATTEMPT_FIELDS]))
            for i, splice in enumerate(get("splices") or ()):
                splice_rows.append((exchange_id, i, *[splice.get(name) for name in _SPLICE_FIELDS]))
        if created:
            self._insert_many(conn, conversations, _CONVERSATION_KEYS,
                              [tuple([row[k] for k in _CONVERSATION_KEYS]) for row in created.values()])
        if updates:
            conn.execute(
                conversations.update().where(conversations.c.id == sa.bindparam("b_id")).values(
                    head_hash=sa.bindparam("b_head"), message_count=sa.bindparam("b_count"),
                    updated=sa.bindparam("b_updated"), model=sa.bindparam("b_model"),
                    size=conversations.c.size + sa.bindparam("b_size")),
                list(updates.values()))
        if message_rows:
            self._insert_messages(conn, message_rows)
        if exchange_rows:
            self._insert_many(conn, exchanges, _EXCHANGE_KEYS, exchange_rows)
        if attempt_rows:
            self._insert_many(conn, attempts, _ATTEMPT_KEYS, attempt_rows)
        if splice_rows:
            self._insert_many(conn, splices, _SPLICE_KEYS, splice_rows)
        return result

    def conversation_heads(self, hashes: Sequence[str]) -> dict[str, str]:
        if not hashes:
            return {}
        with self._read() as conn:
            return {head: cid for cid, head in self._select_in(
                conn, "SELECT id, head_hash FROM conversations WHERE head_hash", list(hashes))}

    def _select_in(self, conn: sa.Connection, prefix: str, values: list[str]) -> list[Any]:
        """Rows of ``<prefix> IN values`` through the driver: a batch has thousands of ids, and
        compiling SQLAlchemy's expanding parameters for them cost more than the query."""
        if self.dialect != "sqlite":
            return list(conn.exec_driver_sql(prefix + " = ANY(%s)", (values,)))
        rows: list[Any] = []
        for start in range(0, len(values), 30000):  # under SQLite's limit of parameters
            chunk = values[start:start + 30000]
            rows.extend(conn.exec_driver_sql(f"{prefix} IN ({','.join('?' * len(chunk))})", tuple(chunk)))
        return rows

    def _insert_many(self, conn: sa.Connection, table: sa.Table, keys: Sequence[str],
                     rows: list[tuple[Any, ...]]) -> None:
        """``INSERT`` many rows (tuples in ``keys`` order) through the driver's executemany: the
        ingester's bulk path, where SQLAlchemy's per-row parameter processing cost more than the
        database did."""
        sql = self._inserts.get(table.name)
        if sql is None:
            quote = self.engine.dialect.identifier_preparer.quote
            mark = "?" if self.dialect == "sqlite" else "%s"
            sql = self._inserts[table.name] = (f"INSERT INTO {quote(table.name)} ({', '.join(map(quote, keys))}) "
                                               f"VALUES ({', '.join([mark] * len(keys))})")
        conn.exec_driver_sql(sql, rows)

    def _insert_messages(self, conn: sa.Connection, rows: list[tuple[Any, ...]]) -> None:
        """Insert messages and index them for search. On SQLite the FTS5 index is filled with one
        ``INSERT ... SELECT`` over the new rows (three times faster than a trigger per row);
        deletes and updates keep theirs. PostgreSQL's ``tsv`` column is generated."""
        if self.dialect != "sqlite":
            self._insert_many(conn, messages, _MESSAGE_KEYS, rows)
            return
        before = conn.exec_driver_sql("SELECT coalesce(max(id), 0) FROM messages").scalar_one()
        self._insert_many(conn, messages, _MESSAGE_KEYS, rows)
        conn.exec_driver_sql("INSERT INTO messages_fts(rowid, text) SELECT id, text FROM messages WHERE id > ?",
                             (before,))

    @staticmethod
    def _place(record: ExchangeRecord, placement: Placement, response: dict[str, Any],
               created: dict[str, dict[str, Any]], updates: dict[str, dict[str, Any]],
               message_rows: list[tuple[Any, ...]]) -> None:
        when = record["created"]
        answered = when + (record.get("total_ms") or 0.0) / 1000.0
        model = record.get("upstream_model") or record.get("served_model") or response.get("model")
        size = 0
        last = len(placement.messages) - 1
        for offset, (role, parts) in enumerate(placement.messages):
            content = orjson.dumps(parts).decode()
            size += len(content)
            message_rows.append((placement.conversation_id, placement.start + offset, role, content, plain_text(parts),
                                 answered if offset == last else when, record["id"]))
        count = placement.start + len(placement.messages)
        cid = placement.conversation_id
        if placement.new and cid not in created:
            request = _loads(record.get("request")) or {}
            system = "\n\n".join(s.get("text", "") for s in request.get("system") or ()) or None
            created[cid] = {"id": cid, "title": placement.title, "source": "gateway", "source_id": None,
                            "created": when, "updated": answered, "model": model, "system": system,
                            "head_hash": placement.head_hash, "message_count": count, "size": size}
        elif cid in created:
            created[cid].update(updated=answered, model=model, head_hash=placement.head_hash, message_count=count,
                                size=created[cid]["size"] + size)
        else:
            previous = updates.get(cid)
            updates[cid] = {"b_id": cid, "b_head": placement.head_hash, "b_count": count, "b_updated": answered,
                            "b_model": model, "b_size": size + (previous["b_size"] if previous else 0)}

    def get_exchange(self, exchange_id: str) -> dict[str, Any] | None:
        with self._read() as conn:
            row = conn.execute(sa.select(exchanges).where(exchanges.c.id == exchange_id)).mappings().first()
            if row is None:
                return None
            found = dict(row)
            found["skipped"] = _loads(found["skipped"]) or []
            found["attempts"] = [dict(a) for a in conn.execute(
                sa.select(attempts).where(attempts.c.exchange_id == exchange_id).order_by(attempts.c.seq)).mappings()]
            found["splices"] = [dict(s) for s in conn.execute(
                sa.select(splices).where(splices.c.exchange_id == exchange_id).order_by(splices.c.seq)).mappings()]
            return found

    # ------------------------------------------------------------------ conversations

    def import_conversations(self, items: Iterable[ImportedConversation]) -> ImportResult:
        batch = list(items)
        if not batch:
            return ImportResult()
        added = updated = unchanged = 0
        with self._write() as conn:
            by_source: dict[str, list[ImportedConversation]] = {}
            for item in batch:
                by_source.setdefault(item.source, []).append(item)
            existing: dict[tuple[str, str], Any] = {}
            for source, group in by_source.items():
                for found in conn.execute(sa.select(conversations.c.id, conversations.c.source_id,
                                                    conversations.c.source_hash, conversations.c.source_count,
                                                    conversations.c.updated, conversations.c.model)
                                          .where(conversations.c.source == source,
                                                 conversations.c.source_id.in_([i.source_id for i in group]))):
                    existing[(source, found.source_id)] = found
            new_rows: list[dict[str, Any]] = []
            message_rows: list[tuple[Any, ...]] = []
            seen: set[tuple[str, str]] = set()
            for item in batch:
                key = (item.source, item.source_id)
                if key in seen:
                    unchanged += 1
                    continue
                seen.add(key)
                typed = [(m.role, m.parts) for m in item.messages]
                source_hash = prefix_hashes(typed)[-1] if typed else ""
                imported = [(m.role, m.parts, m.created, None) for m in item.messages]
                row = existing.get(key)
                if row is None:
                    added += 1
                    cid = f"{item.source}-{item.source_id}"
                    size = self._imported_rows(cid, imported, message_rows)
                    new_rows.append({"id": cid, "title": item.title or "(untitled)", "source": item.source,
                                     "source_id": item.source_id, "created": item.created, "updated": item.updated,
                                     "model": item.model, "system": item.system, "head_hash": source_hash,
                                     "message_count": len(imported), "size": size, "source_hash": source_hash,
                                     "source_count": len(imported)})
                    continue
                stored_hash, stored_count = row.source_hash, row.source_count
                if stored_hash is None:  # imported before revision 0005: what no exchange wrote was imported
                    stored_hash, stored_count = self._imported_part(conn, row.id)
                    conn.execute(conversations.update().where(conversations.c.id == row.id)
                                 .values(source_hash=stored_hash, source_count=stored_count))
                if stored_hash == source_hash:
                    unchanged += 1
                    continue
                # The export changed: replace what it gave, and keep what came through the gateway
                # since (``outlast chat --resume``) after it.
                updated += 1
                later = [(m.role, orjson.loads(m.content), m.created, m.exchange_id) for m in conn.execute(
                    sa.select(messages.c.role, messages.c.content, messages.c.created, messages.c.exchange_id)
                    .where(messages.c.conversation_id == row.id, messages.c.position >= stored_count)
                    .order_by(messages.c.position))]
                conn.execute(messages.delete().where(messages.c.conversation_id == row.id))
                size = self._imported_rows(row.id, [*imported, *later], message_rows)
                everything = [*typed, *[(role, parts) for role, parts, _, _ in later]]
                conn.execute(conversations.update().where(conversations.c.id == row.id).values(
                    title=item.title or "(untitled)", created=item.created,
                    updated=max(item.updated, row.updated) if later else item.updated,
                    model=row.model if later else item.model, system=item.system,
                    head_hash=prefix_hashes(everything)[-1] if everything else "",
                    message_count=len(everything), size=size, source_hash=source_hash,
                    source_count=len(imported)))
            if new_rows:
                conn.execute(conversations.insert(), new_rows)
            if message_rows:
                self._insert_messages(conn, message_rows)
        return ImportResult(added, updated, unchanged)

    @staticmethod
    def _imported_rows(cid: str, items: Sequence[tuple[str, list[dict[str, Any]], float | None, str | None]],
                       message_rows: list[tuple[Any, ...]]) -> int:
        """Message rows for ``(role, parts, created, exchange_id)`` from position 0; their size."""
        size = 0
        for position, (role, parts, created, exchange_id) in enumerate(items):
            content = orjson.dumps(parts).decode()
            size += len(content)
            message_rows.append((cid, position, role, content, plain_text(parts), created, exchange_id))
        return size

    @staticmethod
    def _imported_part(conn: sa.Connection, cid: str) -> tuple[str, int]:
        """The hash and count of a conversation's imported messages (the first ones, written by no exchange)."""
        typed = [(m.role, orjson.loads(m.content)) for m in conn.execute(
            sa.select(messages.c.role, messages.c.content)
            .where(messages.c.conversation_id == cid, messages.c.exchange_id.is_(None))
            .order_by(messages.c.position))]
        return (prefix_hashes(typed)[-1] if typed else ""), len(typed)

    def list_conversations(self, *, limit: int = 50, offset: int = 0) -> list[ConversationSummary]:
        with self._read() as conn:
            rows = conn.execute(sa.select(*_SUMMARY).order_by(conversations.c.updated.desc(), conversations.c.id)
                                .limit(limit).offset(offset))
            return [_summary(r) for r in rows]

    def conversation_ids(self) -> list[str]:
        with self._read() as conn:
            return list(conn.execute(sa.select(conversations.c.id)
                                     .order_by(conversations.c.updated.desc(), conversations.c.id)).scalars())

    def get_conversation(self, conversation_id: str) -> Conversation | None:
        with self._read() as conn:
            row = conn.execute(sa.select(*_SUMMARY, conversations.c.system)
                               .where(conversations.c.id == conversation_id)).first()
            if row is None and conversation_id:
                escaped = conversation_id.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
                rows = conn.execute(sa.select(*_SUMMARY, conversations.c.system).where(sa.or_(
                    conversations.c.id.like(escaped + "%", escape="\\"),
                    conversations.c.source_id.like(escaped + "%", escape="\\"))).limit(2)).all()
                row = rows[0] if len(rows) == 1 else None
            if row is None:
                return None
            stored = [
                StoredMessage(m.position, m.role, orjson.loads(m.content), m.text, m.created, m.exchange_id)
                for m in conn.execute(sa.select(messages.c.position, messages.c.role, messages.c.content,
                                                messages.c.text, messages.c.created, messages.c.exchange_id)
                                      .where(messages.c.conversation_id == row.id).order_by(messages.c.position))
            ]
            return Conversation(_summary(row), row.system, stored)

    def search(self, query: str, *, limit: int = 20) -> list[SearchHit]:
        words = re.findall(r"\w+", query)
        if not words:
            return []
        if self.dialect == "sqlite":
            sql = sa.text(
                "SELECT m.conversation_id, m.position, m.role, c.title, c.updated, "
                "snippet(messages_fts, 0, '[', ']', '…', 16) AS snippet "
                "FROM messages_fts JOIN messages m ON m.id = messages_fts.rowid "
                "JOIN conversations c ON c.id = m.conversation_id "
                "WHERE messages_fts MATCH :q ORDER BY rank, c.updated DESC LIMIT :n")
            params: dict[str, Any] = {"q": " ".join('"' + w + '"' for w in words), "n": limit}
        else:
            sql = sa.text(
                "SELECT m.conversation_id, m.position, m.role, c.title, c.updated, "
                "ts_headline('simple', m.text, q, 'StartSel=[, StopSel=], MaxWords=16, MinWords=6') AS snippet "
                "FROM messages m JOIN conversations c ON c.id = m.conversation_id, "
                "plainto_tsquery('simple', :q) AS q "
                "WHERE m.tsv @@ q ORDER BY ts_rank(m.tsv, q) DESC, c.updated DESC LIMIT :n")
            params = {"q": " ".join(words), "n": limit}
        with self._read() as conn:
            return [SearchHit(r.conversation_id, r.title, r.position, r.role, " ".join(r.snippet.split()), r.updated)
                    for r in conn.execute(sql, params)]

    # ------------------------------------------------------------------ retention

    def stats(self) -> StoreStats:
        with self._read() as conn:
            n_exchanges, exchange_bytes, newest = conn.execute(
                sa.select(sa.func.count(), sa.func.coalesce(sa.func.sum(exchanges.c.size), 0),
                          sa.func.max(exchanges.c.created))).one()
            n_conversations, conversation_bytes = conn.execute(
                sa.select(sa.func.count(), sa.func.coalesce(sa.func.sum(conversations.c.size), 0))).one()
            n_messages = conn.execute(sa.select(sa.func.count()).select_from(messages)).scalar_one()
        return StoreStats(n_exchanges, n_conversations, n_messages, int(exchange_bytes) + int(conversation_bytes),
                          newest)

    def prune(self, *, older_than: float | None = None, max_bytes: int | None = None) -> PruneResult:
        # Retention is about what the gateway recorded. Imported conversations are the user's
        # archive from another tool: their times are the export's (years old, often), so aging
        # them would delete them the moment they arrive; they are neither aged nor counted.
        recorded = conversations.c.source == "gateway"
        cutoff = older_than
        if max_bytes is not None:
            with self._read() as conn:
                excess = -max_bytes + int(conn.execute(sa.select(
                    sa.func.coalesce(sa.func.sum(exchanges.c.size), 0))).scalar_one()) + int(conn.execute(
                    sa.select(sa.func.coalesce(sa.func.sum(conversations.c.size), 0)).where(recorded)).scalar_one())
                if excess > 0:
                    timeline = sa.union_all(
                        sa.select(exchanges.c.created.label("t"), exchanges.c.size),
                        sa.select(conversations.c.updated.label("t"), conversations.c.size).where(recorded),
                    ).subquery()
                    for when, size in conn.execute(sa.select(timeline.c.t, timeline.c.size).order_by(timeline.c.t)):
                        excess -= size
                        if excess <= 0:
                            cutoff = max(cutoff or when, when)
                            break
        if cutoff is None:
            return PruneResult()
        with self._write() as conn:
            # Messages, attempts and splices go with their parents (ON DELETE CASCADE; FTS via triggers).
            removed_exchanges = conn.execute(exchanges.delete().where(exchanges.c.created <= cutoff)).rowcount
            removed_conversations = conn.execute(
                conversations.delete().where(recorded, conversations.c.updated <= cutoff)).rowcount
        return PruneResult(removed_exchanges, removed_conversations)

    def delete_conversation(self, conversation_id: str) -> PruneResult:
        with self._write() as conn:
            # Messages, attempts and splices go with their parents (ON DELETE CASCADE; FTS via triggers).
            removed_exchanges = conn.execute(
                exchanges.delete().where(exchanges.c.conversation_id == conversation_id)).rowcount
            removed = conn.execute(conversations.delete().where(conversations.c.id == conversation_id)).rowcount
        return PruneResult(removed_exchanges, removed)

    def vacuum(self) -> None:
        if self.dialect == "sqlite":
            with self._write() as conn:
                conn.exec_driver_sql("INSERT INTO messages_fts(messages_fts) VALUES ('optimize')")
            raw = self.engine.raw_connection()
            try:
                raw.driver_connection.execute("VACUUM")  # type: ignore[union-attr]
                raw.driver_connection.execute("PRAGMA wal_checkpoint(TRUNCATE)")  # type: ignore[union-attr]
            finally:
                raw.close()
        else:
            with self.engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
                conn.exec_driver_sql("VACUUM ANALYZE")


@contextmanager
def writing(engine: sa.Engine) -> Iterator[sa.Connection]:
    """A write transaction: ``BEGIN IMMEDIATE`` on SQLite (the engine's ``begin`` hook, below, reads
    ``info["write"]``), so writers from several processes queue instead of failing."""
    with engine.connect() as conn:
        conn.info["write"] = True
        try:
            with conn.begin():
                yield conn
        finally:
            conn.info["write"] = False


@contextmanager
def unavailable_when_unreachable() -> Iterator[None]:
    """Turn the database errors that mean it cannot be reached (connection refused or lost, a
    locked SQLite file past its busy timeout) into :class:`StoreUnavailable`: wait and retry."""
    try:
        yield
    except (sa.exc.OperationalError, sa.exc.InterfaceError) as error:
        raise StoreUnavailable(str(error).splitlines()[0]) from error


def _sqlite_setup(engine: sa.Engine, synchronous: str) -> None:
    @event.listens_for(engine, "connect")
    def connect(dbapi_connection: Any, _record: Any) -> None:
        dbapi_connection.isolation_level = None  # SQLAlchemy emits BEGIN itself, below
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        # FULL: a committed exchange survives power loss too, not only a killed process.
        cursor.execute(f"PRAGMA synchronous={synchronous}")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute("PRAGMA busy_timeout=30000")
        cursor.close()

    @event.listens_for(engine, "begin")
    def begin(conn: sa.Connection) -> None:
        conn.exec_driver_sql("BEGIN IMMEDIATE" if conn.info.get("write") else "BEGIN")
