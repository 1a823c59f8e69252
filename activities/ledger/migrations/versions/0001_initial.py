"""The ledger as selfheal created it before migrations (``metadata.create_all``): tasks,
attempts, failures, incidents, notifications, blockers, the review outbox and commit guards.

A ledger made before migrations has some or all of these tables already; each is created only
where it is missing, so such a ledger is adopted as it is, rows and all.

Revision ID: 0001
Revises:
Create Date: 2025-01-01
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from activities.ledger.migrations.columns import TZ, attempt_key, moments, shared

revision: str = "0001"
down_revision: str | Sequence[str] | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def tables() -> list[sa.Table]:
    """This revision's tables, frozen: later schema changes are later revisions."""
    baseline = sa.MetaData()
    sa.Table(
        "tasks",
        baseline,
        shared("workflow_id", primary_key=True),
        shared("task_id", nullable=False),
        shared("agent", nullable=False),
        sa.Column("title", sa.Text, nullable=False),
        sa.Column("priority", sa.String(16), nullable=False),
        sa.Column("state", sa.String(32), nullable=False),
        sa.Column("attempts", sa.Integer, nullable=False),
        sa.Column("result", sa.Text),
        sa.Column("created_at", TZ, nullable=False),
        shared("updated_at", nullable=False),
    )
    sa.Table(
        "attempts",
        baseline,
        *attempt_key(),
        shared("agent", nullable=False),
        sa.Column("strategy", sa.String(32), nullable=False),
        sa.Column("outcome", sa.String(16), nullable=False),
        sa.Column("error_kind", sa.String(16)),
        shared("fingerprint"),
        sa.Column("started_at", TZ, nullable=False),
        sa.Column("ended_at", TZ),
    )
    sa.Table(
        "failures",
        baseline,
        *attempt_key(),
        shared("task_id", nullable=False),
        shared("agent", nullable=False),
        sa.Column("error_kind", sa.String(16), nullable=False),
        shared("fingerprint", nullable=False),
        sa.Column("error", sa.Text, nullable=False),
        sa.Column("context", sa.Text, nullable=False),
        shared("at", nullable=False),
        sa.Index("ix_failures_fingerprint", "fingerprint"),
    )
    sa.Table(
        "incidents",
        baseline,
        sa.Column("key", sa.String(255), primary_key=True),
        sa.Column("kind", sa.String(32), nullable=False),
        sa.Column("subject", sa.String(255), nullable=False),
        shared("task_id", nullable=False),
        shared("agent"),
        sa.Column("title", sa.Text, nullable=False),
        sa.Column("reason", sa.Text, nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("opened_at", TZ, nullable=False),
        sa.Column("acknowledged_at", TZ),
        sa.Column("acknowledged_by", sa.String(128)),
        sa.Column("resolved_at", TZ),
        sa.Column("resolution", sa.Text),
        sa.Column("details", sa.Text, nullable=False),
        sa.Index("ix_incidents_subject", "subject"),
    )
    sa.Table(
        "notifications",
        baseline,
        sa.Column("idempotency_key", sa.String(255), primary_key=True),
        shared("incident_key"),
        sa.Column("step", sa.String(16)),
        sa.Column("target", sa.String(64), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("status_code", sa.Integer),
        sa.Column("text", sa.Text, nullable=False),
        shared("at", nullable=False),
        sa.Index("ix_notifications_incident_key", "incident_key"),
    )
    sa.Table(
        "blockers",
        baseline,
        shared("incident_key", primary_key=True),
        sa.Column("reason", sa.Text, nullable=False),
        shared("fingerprint"),
        shared("agent"),
        shared("at", nullable=False),
    )
    sa.Table(
        "review_outbox",
        baseline,
        shared("workflow_id", primary_key=True),
        sa.Column("input", sa.Text, nullable=False),
        sa.Column("delivery", sa.String(128)),
        sa.Column("received_at", TZ, nullable=False),
        sa.Column("started_at", TZ),
    )
    sa.Table(
        "commit_guards",
        baseline,
        shared("workflow_id", primary_key=True),
        sa.Column("repo", sa.String(255), nullable=False),
        sa.Column("repo_path", sa.Text, nullable=False),
        sa.Column("sha", sa.String(64), nullable=False),
        sa.Column("branch", sa.String(255)),
        sa.Column("author", sa.String(255)),
        sa.Column("subject", sa.Text),
        sa.Column("build_command", sa.Text, nullable=False),
        sa.Column("state", sa.String(32), nullable=False),
        sa.Column("failure_tail", sa.Text),
        sa.Column("revert_sha", sa.String(64)),
        shared("incident_key"),
        *moments("committed_at", "detected_at", "reverted_at", "verified_at"),
        shared("updated_at", nullable=False),
        sa.Index("ix_commit_guards_repo", "repo"),
    )
    return list(baseline.tables.values())


def upgrade() -> None:
    bind = op.get_bind()
    existing = set(sa.inspect(bind).get_table_names())
    for table in tables():
        if table.name not in existing:
            table.create(bind)  # with its indexes


def downgrade() -> None:
    for table in reversed(tables()):
        op.drop_table(table.name)
