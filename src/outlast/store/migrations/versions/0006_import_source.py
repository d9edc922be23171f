"""Imported conversations remember what the export held: ``source_hash`` (the hash of the
imported messages, as ``head_hash`` is of all of them) and ``source_count`` (how many of the
first messages came from the export). Re-importing compares against these, so turns added
through the gateway since (``outlast chat --resume``) survive it.

Rows imported before this revision (0006) get both from their stored messages the next time their
export is imported (``SqlStore.import_conversations``): imported messages are the ones no
exchange wrote.

Revision ID: 0006
Revises: 0005
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("conversations", sa.Column("source_hash", sa.String(64)))
    op.add_column("conversations", sa.Column("source_count", sa.Integer))


def downgrade() -> None:
    with op.batch_alter_table("conversations") as batch:
        batch.drop_column("source_count")
        batch.drop_column("source_hash")
