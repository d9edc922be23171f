"""The store interface: what the recorder, the memory commands and the web need from a database.

One implementation (:class:`outlast.store.sql.SqlStore`) serves SQLite and PostgreSQL;
``tests/store/test_contract.py`` runs every method against both. Methods are synchronous:
the ingester calls the writing ones from its process (or thread), the CLI directly.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

# An exchange as the recorder hands it over (see ``records.exchange_record``): scalars named
# like the ``exchanges`` columns, plus ``request``/``response`` (canonical JSON, as bytes or an
# already-parsed dict when read back from the journal), ``attempts`` and ``splices`` (lists of
# dicts) and ``skipped`` (a list of "provider/model").
ExchangeRecord = dict[str, Any]


@dataclass(frozen=True, slots=True)
class NewMessage:
    """A message to store. ``parts`` are typed part dicts (``records.tag_part``)."""

    role: str
    parts: list[dict[str, Any]]
    created: float | None = None


@dataclass(frozen=True, slots=True)
class ImportedConversation:
    """A conversation from another tool's export; ``(source, source_id)`` makes importing idempotent."""

    source: str
    source_id: str
    title: str
    created: float
    updated: float
    messages: list[NewMessage]
    model: str | None = None
    system: str | None = None


@dataclass(frozen=True, slots=True)
class ConversationSummary:
    id: str
    title: str
    source: str
    created: float
    updated: float
    model: str | None
    message_count: int


@dataclass(frozen=True, slots=True)
class StoredMessage:
    position: int
    role: str
    parts: list[dict[str, Any]]
    text: str
    created: float | None
    exchange_id: str | None


@dataclass(frozen=True, slots=True)
class Conversation:
    summary: ConversationSummary
    system: str | None
    messages: list[StoredMessage] = field(default_factory=list)

    @property
    def id(self) -> str:
        return self.summary.id


@dataclass(frozen=True, slots=True)
class SearchHit:
    conversation_id: str
    title: str
    position: int
    role: str
    snippet: str
    updated: float


@dataclass(frozen=True, slots=True)
class ImportResult:
    added: int = 0
    updated: int = 0
    unchanged: int = 0

    def __add__(self, other: ImportResult) -> ImportResult:
        return ImportResult(self.added + other.added, self.updated + other.updated, self.unchanged + other.unchanged)


@dataclass(frozen=True, slots=True)
class StoreStats:
    exchanges: int
    conversations: int
    messages: int
    bytes: int  # stored requests, responses and messages (retention by size counts all but imported ones)
    newest: float | None = None  # when the newest stored exchange was created


@dataclass(frozen=True, slots=True)
class PruneResult:
    exchanges: int = 0
    conversations: int = 0


class StoreUnavailable(Exception):
    """The database cannot be reached or written: the ingester leaves the journal as it is and retries."""


class Store(Protocol):
    url: str

    def migrate(self) -> None:
        """Bring the schema to the newest revision (Alembic); cheap when it already is."""

    def ping(self) -> None:
        """Raise :class:`StoreUnavailable` unless the database answers now."""

    def write_exchanges(self, records: Sequence[ExchangeRecord]) -> dict[str, str | None]:
        """Store exchanges in one transaction, threading each into a conversation; returns each
        exchange's conversation id. Idempotent by exchange id: one already stored is skipped."""

    def conversation_heads(self, hashes: Sequence[str]) -> dict[str, str]:
        """Which of ``hashes`` are a conversation's head now (the hash of every message it
        holds), and whose: ``{hash: conversation id}``. The gateway asks this for a request
        that continues a conversation it does not remember (``outlast.store.naming``)."""

    def import_conversations(self, items: Iterable[ImportedConversation]) -> ImportResult:
        """Store imported conversations in one transaction, keyed by ``(source, source_id)``. One
        whose export holds the same messages as when it was last imported is left alone (even if
        turns were added through the gateway since); one whose export changed has its imported
        messages replaced, and the turns added through the gateway follow them."""

    def list_conversations(self, *, limit: int = 50, offset: int = 0) -> list[ConversationSummary]:
        """Most recently updated first."""

    def get_conversation(self, conversation_id: str) -> Conversation | None:
        """By id, or by a unique prefix of one."""

    def conversation_ids(self) -> list[str]:
        """Every conversation id, most recently updated first."""

    def search(self, query: str, *, limit: int = 20) -> list[SearchHit]:
        """Messages matching every word of ``query``, best first."""

    def get_exchange(self, exchange_id: str) -> dict[str, Any] | None:
        """The stored row, with ``attempts`` as a list of dicts."""

    def stats(self) -> StoreStats: ...

    def prune(self, *, older_than: float | None = None, max_bytes: int | None = None) -> PruneResult:
        """Delete exchanges and conversations last updated before ``older_than`` (epoch seconds),
        then the oldest until what the gateway recorded is at most ``max_bytes``. Imported
        conversations are never removed by retention, nor counted against ``max_bytes``."""

    def delete_conversation(self, conversation_id: str) -> PruneResult:
        """Delete one conversation (recorded or imported; by its full id) with its messages and the
        exchanges recorded in it, in one transaction. The audit log is left as it is: its records hold
        no content, and the chain must stay whole."""

    def vacuum(self) -> None:
        """Give freed space back to the file system (and optimise search indexes)."""

    def close(self) -> None: ...
