"""Health (M2.6): the uptime samples HealthProbe writes, and the indexes the dashboard reads
by (time ranges, and what is open now), so its figures stay fast at a million attempts.

Revision ID: 0002_health
Revises: 0001
Create Date: 2026-12-01
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from activities.ledger.migrations.columns import shared

revision: str = "0002_health"
down_revision: str | Sequence[str] | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

INDEXES = (
    ("ix_attempts_ended_at", "attempts", ["ended_at", "agent", "outcome", "error_kind"]),
    ("ix_tasks_updated_at", "tasks", ["updated_at", "state", "agent", "attempts"]),
    ("ix_incidents_opened_at", "incidents", ["opened_at", "kind"]),
    ("ix_incidents_status", "incidents", ["status", "kind", "agent"]),
    ("ix_notifications_at", "notifications", ["at"]),
    ("ix_notifications_target_at", "notifications", ["target", "at"]),
    ("ix_commit_guards_updated_at", "commit_guards", ["updated_at"]),
    ("ix_commit_guards_reverted_at", "commit_guards", ["reverted_at"]),
    ("ix_review_outbox_received_at", "review_outbox", ["received_at"]),
)


def upgrade() -> None:
    op.create_table(
        "uptime_samples",
        shared("agent", primary_key=True),
        shared("at", primary_key=True),
        sa.Column("available", sa.Boolean, nullable=False),
        sa.Column("held", sa.Boolean, nullable=False),
        sa.Column("detail", sa.Text, nullable=False),
        sa.Column("latency_ms", sa.Float),
    )
    op.create_index("ix_uptime_samples_at", "uptime_samples", ["at", "agent"])
    for name, table, columns in INDEXES:
        op.create_index(name, table, columns)


def downgrade() -> None:
    for name, table, _columns in reversed(INDEXES):
        op.drop_index(name, table_name=table)
    op.drop_index("ix_uptime_samples_at", table_name="uptime_samples")
    op.drop_table("uptime_samples")
