"""The learning loop's tables (M2.5): ``learnings`` (a published pattern with its advice, hint,
scope and score), ``learning_uses`` (each learning given to an attempt, with its outcome) and
``failure_resolutions`` (what ended each failure: a later attempt, or an escalation).

Revision ID: 0003_learnings
Revises: 0002_health
Create Date: 2026-12-01
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from activities.ledger.migrations.columns import attempt_key, moments, shared

revision: str = "0003_learnings"
down_revision: str | Sequence[str] | None = "0002_health"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "learnings",
        sa.Column("id", sa.String(255), primary_key=True),
        shared("fingerprint", nullable=False, unique=True),
        sa.Column("fingerprints", sa.Text(), nullable=False),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("template", sa.Text(), nullable=False),
        sa.Column("slug", sa.String(128), nullable=False, unique=True),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("scope", sa.Text(), nullable=False),
        sa.Column("advice", sa.Text(), nullable=False),
        sa.Column("hint", sa.Text(), nullable=False),
        sa.Column("hint_source", sa.String(16), nullable=False),
        sa.Column("score", sa.Integer(), nullable=False),
        sa.Column("regressions", sa.Integer(), nullable=False),
        sa.Column("merged_into", sa.String(255)),
        *moments("first_seen", "published_at", "retired_at"),
        shared("updated_at", nullable=False),
    )
    op.create_table(
        "learning_uses",
        shared("workflow_id", primary_key=True),
        sa.Column("attempt", sa.Integer(), primary_key=True),
        sa.Column("learning_id", sa.String(255), primary_key=True),
        shared("agent", nullable=False),
        sa.Column("how", sa.String(16), nullable=False),
        sa.Column("outcome", sa.String(16), nullable=False),
        shared("fingerprint"),
        shared("at", nullable=False),
    )
    op.create_index("ix_learning_uses_learning_id", "learning_uses", ["learning_id"])
    op.create_table(
        "failure_resolutions",
        *attempt_key(),
        sa.Column("by", sa.String(16), nullable=False),
        sa.Column("attempt", sa.Integer()),
        sa.Column("strategy", sa.String(32)),
        shared("agent"),
        sa.Column("learning_ids", sa.Text(), nullable=False),
        shared("incident_key"),
        shared("at", nullable=False),
    )


def downgrade() -> None:
    op.drop_table("failure_resolutions")
    op.drop_index("ix_learning_uses_learning_id", table_name="learning_uses")
    op.drop_table("learning_uses")
    op.drop_table("learnings")
