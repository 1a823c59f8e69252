"""The ledger as selfheal created it before migrations: tasks, attempts, failures, incidents,
notifications, blockers, the review outbox and commit guards.

Revision ID: 0001
Revises:
Create Date: 2025-01-01
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0001"
down_revision: str | Sequence[str] | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

TZ = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "tasks",
        sa.Column("workflow_id", sa.String(255), primary_key=True),
        sa.Column("task_id", sa.String(255), nullable=False),
        sa.Column("agent", sa.String(64), nullable=False),
        sa.Column("title", sa.Text, nullable=False),
        sa.Column("priority", sa.String(16), nullable=False),
        sa.Column("state", sa.String(32), nullable=False),
        sa.Column("attempts", sa.Integer, nullable=False),
        sa.Column("result", sa.Text),
        sa.Column("created_at", TZ, nullable=False),
        sa.Column("updated_at", TZ, nullable=False),
    )
    op.create_table(
        "attempts",
        sa.Column("workflow_id", sa.String(255), primary_key=True),
        sa.Column("n", sa.Integer, primary_key=True),
        sa.Column("agent", sa.String(64), nullable=False),
        sa.Column("strategy", sa.String(32), nullable=False),
        sa.Column("outcome", sa.String(16), nullable=False),
        sa.Column("error_kind", sa.String(16)),
        sa.Column("fingerprint", sa.String(64)),
        sa.Column("started_at", TZ, nullable=False),
        sa.Column("ended_at", TZ),
    )
    op.create_table(
        "failures",
        sa.Column("workflow_id", sa.String(255), primary_key=True),
        sa.Column("n", sa.Integer, primary_key=True),
        sa.Column("task_id", sa.String(255), nullable=False),
        sa.Column("agent", sa.String(64), nullable=False),
        sa.Column("error_kind", sa.String(16), nullable=False),
        sa.Column("fingerprint", sa.String(64), nullable=False),
        sa.Column("error", sa.Text, nullable=False),
        sa.Column("context", sa.Text, nullable=False),
        sa.Column("at", TZ, nullable=False),
    )
    op.create_index("ix_failures_fingerprint", "failures", ["fingerprint"])
    op.create_table(
        "incidents",
        sa.Column("key", sa.String(255), primary_key=True),
        sa.Column("kind", sa.String(32), nullable=False),
        sa.Column("subject", sa.String(255), nullable=False),
        sa.Column("task_id", sa.String(255), nullable=False),
        sa.Column("agent", sa.String(64)),
        sa.Column("title", sa.Text, nullable=False),
        sa.Column("reason", sa.Text, nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("opened_at", TZ, nullable=False),
        sa.Column("acknowledged_at", TZ),
        sa.Column("acknowledged_by", sa.String(128)),
        sa.Column("resolved_at", TZ),
        sa.Column("resolution", sa.Text),
        sa.Column("details", sa.Text, nullable=False),
    )
    op.create_index("ix_incidents_subject", "incidents", ["subject"])
    op.create_table(
        "notifications",
        sa.Column("idempotency_key", sa.String(255), primary_key=True),
        sa.Column("incident_key", sa.String(255)),
        sa.Column("step", sa.String(16)),
        sa.Column("target", sa.String(64), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("status_code", sa.Integer),
        sa.Column("text", sa.Text, nullable=False),
        sa.Column("at", TZ, nullable=False),
    )
    op.create_index("ix_notifications_incident_key", "notifications", ["incident_key"])
    op.create_table(
        "blockers",
        sa.Column("incident_key", sa.String(255), primary_key=True),
        sa.Column("reason", sa.Text, nullable=False),
        sa.Column("fingerprint", sa.String(64)),
        sa.Column("agent", sa.String(64)),
        sa.Column("at", TZ, nullable=False),
    )
    op.create_table(
        "review_outbox",
        sa.Column("workflow_id", sa.String(255), primary_key=True),
        sa.Column("input", sa.Text, nullable=False),
        sa.Column("delivery", sa.String(128)),
        sa.Column("received_at", TZ, nullable=False),
        sa.Column("started_at", TZ),
    )
    op.create_table(
        "commit_guards",
        sa.Column("workflow_id", sa.String(255), primary_key=True),
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
        sa.Column("incident_key", sa.String(255)),
        sa.Column("committed_at", TZ),
        sa.Column("detected_at", TZ),
        sa.Column("reverted_at", TZ),
        sa.Column("verified_at", TZ),
        sa.Column("updated_at", TZ, nullable=False),
    )
    op.create_index("ix_commit_guards_repo", "commit_guards", ["repo"])


def downgrade() -> None:
    for table in ("commit_guards", "review_outbox", "blockers", "notifications", "incidents",
                  "failures", "attempts", "tasks"):  # fmt: skip
        op.drop_table(table)
