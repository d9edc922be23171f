"""The governance tables (created by the store's Alembic chain, ``0004_governance`` and ``0007_audit_entry``), described
beside the only code that queries them (which writes through :func:`outlast.store.sql.writing`)."""

from __future__ import annotations

import sqlalchemy as sa

metadata = sa.MetaData()

keys = sa.Table(
    "gov_keys", metadata,
    sa.Column("id", sa.String(32), primary_key=True),
    sa.Column("hash", sa.String(64), nullable=False),
    sa.Column("team", sa.String(128), nullable=False),
    sa.Column("name", sa.String(200)),
    sa.Column("routes", sa.Text, nullable=False),
    sa.Column("max_class", sa.String(64)),
    sa.Column("rpm", sa.Integer),
    sa.Column("created", sa.Float, nullable=False),
    sa.Column("revoked", sa.Float),
)
meta = sa.Table(
    "gov_meta", metadata,
    sa.Column("name", sa.String(64), primary_key=True),
    sa.Column("value", sa.BigInteger, nullable=False),
)
audit = sa.Table(
    "gov_audit", metadata,
    sa.Column("seq", sa.BigInteger, primary_key=True, autoincrement=False),
    sa.Column("at", sa.Float, nullable=False),
    sa.Column("record", sa.Text, nullable=False),
    sa.Column("prev", sa.String(64), nullable=False),
    sa.Column("hash", sa.String(64), nullable=False),
    # The record's own id when it came through the journal (0007): a record read twice is appended once.
    sa.Column("entry", sa.String(40), unique=True),
)
audit_head = sa.Table(
    "gov_audit_head", metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=False),
    sa.Column("seq", sa.BigInteger, nullable=False),
    sa.Column("hash", sa.String(64), nullable=False),
)
