"""The tables, as SQLAlchemy Core objects. Migrations (``migrations/versions``) create them;
this module is what queries are written against, and must describe the head revision.

Times are epoch seconds (floats) on both backends, so the two behave the same. Canonical
requests, responses and message parts are stored as JSON text written by orjson.
"""

from __future__ import annotations

import sqlalchemy as sa

metadata = sa.MetaData()

exchanges = sa.Table(
    "exchanges", metadata,
    sa.Column("id", sa.String(40), primary_key=True),
    sa.Column("created", sa.Float, nullable=False, index=True),
    sa.Column("key_id", sa.String(64)),  # the virtual key that asked (governance); None: the master key
    sa.Column("team", sa.String(128)),  # that key's team
    sa.Column("dialect", sa.String(32), nullable=False),
    sa.Column("requested_model", sa.String(256), nullable=False),
    sa.Column("served_provider", sa.String(128)),
    sa.Column("served_model", sa.String(256)),  # the route's model name
    sa.Column("upstream_model", sa.String(256)),  # the name the upstream reported
    sa.Column("fallback", sa.Boolean, nullable=False, default=False),
    sa.Column("data_class", sa.String(64)),  # what the policy classified the request as (governance)
    sa.Column("input_tokens", sa.Integer),
    sa.Column("output_tokens", sa.Integer),
    sa.Column("cache_read_tokens", sa.Integer),
    sa.Column("cache_write_tokens", sa.Integer),
    sa.Column("first_token_ms", sa.Float),
    sa.Column("total_ms", sa.Float),
    sa.Column("stop_reason", sa.String(32)),
    sa.Column("error", sa.Text),
    sa.Column("client_disconnected", sa.Boolean, nullable=False, default=False),
    sa.Column("conversation_id", sa.String(200), index=True),
    sa.Column("skipped", sa.Text),  # JSON list of "provider/model" passed over while unhealthy; NULL: none
    sa.Column("request", sa.Text),
    sa.Column("response", sa.Text),
    sa.Column("size", sa.Integer, nullable=False, default=0),
)

attempts = sa.Table(
    "attempts", metadata,
    sa.Column("exchange_id", sa.String(40), sa.ForeignKey("exchanges.id", ondelete="CASCADE"), primary_key=True),
    sa.Column("seq", sa.Integer, primary_key=True),
    sa.Column("provider", sa.String(128), nullable=False),
    sa.Column("model", sa.String(256), nullable=False),
    sa.Column("outcome", sa.String(64), nullable=False),  # "ok" or the failure class
    sa.Column("started_ms", sa.Float),  # offsets from the exchange's start
    sa.Column("first_event_ms", sa.Float),
    sa.Column("ended_ms", sa.Float),
    sa.Column("error", sa.Text),
    sa.Column("purpose", sa.String(16)),  # first, retry, failover, hedge, continuation (NULL before 0005)
    sa.Column("mode", sa.String(16)),  # a continuation's: prefill or instruction
    sa.Column("deadline_ms", sa.Float),  # the first-token deadline it was given
)

splices = sa.Table(
    "splices", metadata,
    sa.Column("exchange_id", sa.String(40), sa.ForeignKey("exchanges.id", ondelete="CASCADE"), primary_key=True),
    sa.Column("seq", sa.Integer, primary_key=True),
    sa.Column("at_ms", sa.Float),  # offset from the exchange's start
    sa.Column("after_chars", sa.Integer, nullable=False),  # answer characters the caller had
    sa.Column("broken_provider", sa.String(128), nullable=False),
    sa.Column("broken_model", sa.String(256), nullable=False),
    sa.Column("failure", sa.String(64), nullable=False),  # the failure class that broke it
    sa.Column("continued_provider", sa.String(128)),  # NULL: nothing could finish the answer
    sa.Column("continued_model", sa.String(256)),
    sa.Column("mode", sa.String(16)),  # prefill or instruction
)

conversations = sa.Table(
    "conversations", metadata,
    sa.Column("id", sa.String(200), primary_key=True),
    sa.Column("title", sa.Text, nullable=False, default=""),
    sa.Column("source", sa.String(32), nullable=False),  # gateway | claude | chatgpt
    sa.Column("source_id", sa.String(200)),
    sa.Column("created", sa.Float, nullable=False),
    sa.Column("updated", sa.Float, nullable=False, index=True),
    sa.Column("model", sa.String(256)),
    sa.Column("system", sa.Text),
    sa.Column("head_hash", sa.String(64), index=True),  # hash of every message so far: threading
    sa.Column("message_count", sa.Integer, nullable=False, default=0),
    sa.Column("size", sa.Integer, nullable=False, default=0),
    # Imported conversations: the hash of the messages the export held, and how many of the first
    # messages those are (the rest came through the gateway). None: gateway, or imported before 0006.
    sa.Column("source_hash", sa.String(64)),
    sa.Column("source_count", sa.Integer),
    sa.UniqueConstraint("source", "source_id", name="uq_conversations_source"),
)

messages = sa.Table(
    "messages", metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("conversation_id", sa.String(200), sa.ForeignKey("conversations.id", ondelete="CASCADE"),
              nullable=False),
    sa.Column("position", sa.Integer, nullable=False),
    sa.Column("role", sa.String(16), nullable=False),
    sa.Column("content", sa.Text, nullable=False),  # JSON list of typed parts (see memory.parts)
    sa.Column("text", sa.Text, nullable=False),  # what full-text search reads
    sa.Column("created", sa.Float),
    sa.Column("exchange_id", sa.String(40), index=True),
    sa.UniqueConstraint("conversation_id", "position", name="uq_messages_position"),
)
