"""Audit records reach the chain through the journal (the ingester appends them), so one can be read
twice after a crash: ``entry`` is each record's own id, unique, and an append skips the ids the chain
already has. Records appended before this revision (0007), and those a gateway without a journal
appends directly, have none.

Revision ID: 0007
Revises: 0006
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("gov_audit", sa.Column("entry", sa.String(40)))
    op.create_index("ix_gov_audit_entry", "gov_audit", ["entry"], unique=True)


def downgrade() -> None:
    op.drop_index("ix_gov_audit_entry", table_name="gov_audit")
    with op.batch_alter_table("gov_audit") as batch:
        batch.drop_column("entry")
