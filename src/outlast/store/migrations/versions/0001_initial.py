"""Exchanges, attempts, conversations, messages, and full-text search over messages.

Revision ID: 0001
Revises:
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "exchanges",
        sa.Column("id", sa.String(40), primary_key=True),
        sa.Column("created", sa.Float, nullable=False),
        sa.Column("key_id", sa.String(64)),
        sa.Column("team", sa.String(128)),
        sa.Column("dialect", sa.String(32), nullable=False),
        sa.Column("requested_model", sa.String(256), nullable=False),
        sa.Column("served_provider", sa.String(128)),
        sa.Column("served_model", sa.String(256)),
        sa.Column("upstream_model", sa.String(256)),
        sa.Column("fallback", sa.Boolean, nullable=False),
        sa.Column("data_class", sa.String(64)),
        sa.Column("input_tokens", sa.Integer),
        sa.Column("output_tokens", sa.Integer),
        sa.Column("cache_read_tokens", sa.Integer),
        sa.Column("cache_write_tokens", sa.Integer),
        sa.Column("first_token_ms", sa.Float),
        sa.Column("total_ms", sa.Float),
        sa.Column("stop_reason", sa.String(32)),
        sa.Column("error", sa.Text),
        sa.Column("client_disconnected", sa.Boolean, nullable=False),
        sa.Column("conversation_id", sa.String(200)),
        sa.Column("request", sa.Text),
        sa.Column("response", sa.Text),
        sa.Column("size", sa.Integer, nullable=False),
    )
    op.create_index("ix_exchanges_created", "exchanges", ["created"])
    op.create_index("ix_exchanges_conversation_id", "exchanges", ["conversation_id"])
    op.create_table(
        "attempts",
        sa.Column("exchange_id", sa.String(40), sa.ForeignKey("exchanges.id", ondelete="CASCADE"),
                  primary_key=True),
        sa.Column("seq", sa.Integer, primary_key=True),
        sa.Column("provider", sa.String(128), nullable=False),
        sa.Column("model", sa.String(256), nullable=False),
        sa.Column("outcome", sa.String(64), nullable=False),
        sa.Column("started_ms", sa.Float),
        sa.Column("first_event_ms", sa.Float),
        sa.Column("ended_ms", sa.Float),
        sa.Column("error", sa.Text),
    )
    op.create_table(
        "conversations",
        sa.Column("id", sa.String(200), primary_key=True),
        sa.Column("title", sa.Text, nullable=False),
        sa.Column("source", sa.String(32), nullable=False),
        sa.Column("source_id", sa.String(200)),
        sa.Column("created", sa.Float, nullable=False),
        sa.Column("updated", sa.Float, nullable=False),
        sa.Column("model", sa.String(256)),
        sa.Column("system", sa.Text),
        sa.Column("head_hash", sa.String(64)),
        sa.Column("message_count", sa.Integer, nullable=False),
        sa.Column("size", sa.Integer, nullable=False),
        sa.UniqueConstraint("source", "source_id", name="uq_conversations_source"),
    )
    op.create_index("ix_conversations_updated", "conversations", ["updated"])
    op.create_index("ix_conversations_head_hash", "conversations", ["head_hash"])
    op.create_table(
        "messages",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("conversation_id", sa.String(200), sa.ForeignKey("conversations.id", ondelete="CASCADE"),
                  nullable=False),
        sa.Column("position", sa.Integer, nullable=False),
        sa.Column("role", sa.String(16), nullable=False),
        sa.Column("content", sa.Text, nullable=False),
        sa.Column("text", sa.Text, nullable=False),
        sa.Column("created", sa.Float),
        sa.Column("exchange_id", sa.String(40)),
        sa.UniqueConstraint("conversation_id", "position", name="uq_messages_position"),
    )
    op.create_index("ix_messages_exchange_id", "messages", ["exchange_id"])
    if op.get_bind().dialect.name == "sqlite":
        # An external-content FTS5 index over messages.text, kept in step by triggers.
        op.execute("CREATE VIRTUAL TABLE messages_fts USING fts5(text, content='messages', content_rowid='id')")
        op.execute("CREATE TRIGGER messages_fts_insert AFTER INSERT ON messages BEGIN "
                   "INSERT INTO messages_fts(rowid, text) VALUES (new.id, new.text); END")
        op.execute("CREATE TRIGGER messages_fts_delete AFTER DELETE ON messages BEGIN "
                   "INSERT INTO messages_fts(messages_fts, rowid, text) VALUES ('delete', old.id, old.text); END")
        op.execute("CREATE TRIGGER messages_fts_update AFTER UPDATE ON messages BEGIN "
                   "INSERT INTO messages_fts(messages_fts, rowid, text) VALUES ('delete', old.id, old.text); "
                   "INSERT INTO messages_fts(rowid, text) VALUES (new.id, new.text); END")
    else:
        # 'simple': no stemming, like FTS5's default tokenizer, so both backends find the same words.
        op.execute("ALTER TABLE messages ADD COLUMN tsv tsvector "
                   "GENERATED ALWAYS AS (to_tsvector('simple', text)) STORED")
        op.execute("CREATE INDEX ix_messages_tsv ON messages USING GIN (tsv)")


def downgrade() -> None:
    if op.get_bind().dialect.name == "sqlite":
        op.execute("DROP TABLE IF EXISTS messages_fts")
    op.drop_table("messages")
    op.drop_table("conversations")
    op.drop_table("attempts")
    op.drop_table("exchanges")
