"""Governance: virtual keys, the keys' version (revocation across replicas), the audit chain and its head.

Revision ID: 0004
Revises: 0003
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "gov_keys",
        sa.Column("id", sa.String(32), primary_key=True),
        sa.Column("hash", sa.String(64), nullable=False),  # sha256 of the secret part; the key is never stored
        sa.Column("team", sa.String(128), nullable=False),
        sa.Column("name", sa.String(200)),
        sa.Column("routes", sa.Text, nullable=False),  # JSON list; empty: every route
        sa.Column("max_class", sa.String(64)),
        sa.Column("rpm", sa.Integer),
        sa.Column("created", sa.Float, nullable=False),
        sa.Column("revoked", sa.Float),
    )
    op.create_table(
        "gov_meta",
        sa.Column("name", sa.String(64), primary_key=True),
        sa.Column("value", sa.BigInteger, nullable=False),
    )
    op.create_table(
        "gov_audit",
        sa.Column("seq", sa.BigInteger, primary_key=True, autoincrement=False),
        sa.Column("at", sa.Float, nullable=False),
        sa.Column("record", sa.Text, nullable=False),  # canonical JSON of the routing decision
        sa.Column("prev", sa.String(64), nullable=False),
        sa.Column("hash", sa.String(64), nullable=False),
    )
    op.create_table(
        "gov_audit_head",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=False),
        sa.Column("seq", sa.BigInteger, nullable=False),
        sa.Column("hash", sa.String(64), nullable=False),
    )


def downgrade() -> None:
    op.drop_table("gov_audit_head")
    op.drop_table("gov_audit")
    op.drop_table("gov_meta")
    op.drop_table("gov_keys")
