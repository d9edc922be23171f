"""Routing details of each exchange: why each attempt was made (purpose, continuation mode, the
first-token deadline it was given), the candidates skipped while unhealthy, and every splice.

Revision ID: 0005
Revises: 0004
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # Nullable additions: rows written before this revision read as "not recorded".
    op.add_column("attempts", sa.Column("purpose", sa.String(16)))
    op.add_column("attempts", sa.Column("mode", sa.String(16)))
    op.add_column("attempts", sa.Column("deadline_ms", sa.Float))
    op.add_column("exchanges", sa.Column("skipped", sa.Text))
    op.create_table(
        "splices",
        sa.Column("exchange_id", sa.String(40), sa.ForeignKey("exchanges.id", ondelete="CASCADE"),
                  primary_key=True),
        sa.Column("seq", sa.Integer, primary_key=True),
        sa.Column("at_ms", sa.Float),
        sa.Column("after_chars", sa.Integer, nullable=False),
        sa.Column("broken_provider", sa.String(128), nullable=False),
        sa.Column("broken_model", sa.String(256), nullable=False),
        sa.Column("failure", sa.String(64), nullable=False),
        sa.Column("continued_provider", sa.String(128)),
        sa.Column("continued_model", sa.String(256)),
        sa.Column("mode", sa.String(16)),
    )


def downgrade() -> None:
    op.drop_table("splices")
    with op.batch_alter_table("exchanges") as batch:
        batch.drop_column("skipped")
    with op.batch_alter_table("attempts") as batch:
        batch.drop_column("deadline_ms")
        batch.drop_column("mode")
        batch.drop_column("purpose")
