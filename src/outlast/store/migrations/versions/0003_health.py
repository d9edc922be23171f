"""Health: incidents and their updates, uptime per component per day, people's problem reports.

Revision ID: 0003
Revises: 0002
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "health_incidents",
        sa.Column("id", sa.String(80), primary_key=True),
        sa.Column("provider", sa.String(128), nullable=False),
        sa.Column("title", sa.Text, nullable=False),
        sa.Column("status", sa.String(32), nullable=False),
        sa.Column("cause", sa.String(32), nullable=False),
        sa.Column("impact", sa.String(16), nullable=False),
        sa.Column("started_at", sa.Float, nullable=False),
        sa.Column("opened_at", sa.Float, nullable=False, index=True),
        sa.Column("resolved_at", sa.Float),
        sa.Column("data", sa.Text, nullable=False),  # the whole incident as JSON (components, evidence...)
    )
    op.create_table(
        "health_incident_updates",
        sa.Column("incident_id", sa.String(80), sa.ForeignKey("health_incidents.id", ondelete="CASCADE"),
                  primary_key=True),
        sa.Column("seq", sa.Integer, primary_key=True),
        sa.Column("at", sa.Float, nullable=False),
        sa.Column("status", sa.String(32), nullable=False),
        sa.Column("body", sa.Text, nullable=False),
    )
    op.create_table(
        "health_uptime",
        sa.Column("component", sa.String(400), primary_key=True),
        sa.Column("day", sa.String(10), primary_key=True),
        sa.Column("degraded_minutes", sa.Float, nullable=False),
        sa.Column("partial_minutes", sa.Float, nullable=False),
        sa.Column("major_minutes", sa.Float, nullable=False),
    )
    op.create_table(
        "health_reports",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("at", sa.Float, nullable=False, index=True),
        sa.Column("component", sa.String(400), nullable=False),
        sa.Column("note", sa.Text, nullable=False),
        sa.Column("reporter", sa.String(200)),
    )


def downgrade() -> None:
    op.drop_table("health_reports")
    op.drop_table("health_uptime")
    op.drop_table("health_incident_updates")
    op.drop_table("health_incidents")
