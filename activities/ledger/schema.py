"""The ledger's tables (SQLAlchemy Core): one ``metadata``, the single source of the schema.

Its columns come from the ledger's frozen column vocabulary (``migrations/columns.py``), which
the migrations use too. A change here needs an Alembic revision in ``migrations/versions/``
(``alembic revision --autogenerate -m "..."`` at the top of the tree writes most of it); a test
checks that the migrations and this module agree.
"""

import sqlalchemy as sa

from activities.ledger.migrations.columns import TZ
from activities.ledger.migrations.columns import attempt_key as _attempt_key
from activities.ledger.migrations.columns import moments as _moments
from activities.ledger.migrations.columns import shared as _shared

metadata = sa.MetaData()

tasks = sa.Table(
    "tasks",
    metadata,
    _shared("workflow_id", primary_key=True),
    _shared("task_id", nullable=False),
    _shared("agent", nullable=False),
    sa.Column("title", sa.Text, nullable=False),
    sa.Column("priority", sa.String(16), nullable=False),
    sa.Column("state", sa.String(32), nullable=False),
    sa.Column("attempts", sa.Integer, nullable=False, default=0),
    sa.Column("result", sa.Text),
    sa.Column("created_at", TZ, nullable=False),
    _shared("updated_at", nullable=False),
)

attempts = sa.Table(
    "attempts",
    metadata,
    *_attempt_key(),
    _shared("agent", nullable=False),
    sa.Column("strategy", sa.String(32), nullable=False),
    sa.Column("outcome", sa.String(16), nullable=False),
    sa.Column("error_kind", sa.String(16)),
    _shared("fingerprint"),
    sa.Column("started_at", TZ, nullable=False),
    sa.Column("ended_at", TZ),
)

failures = sa.Table(
    "failures",
    metadata,
    *_attempt_key(),
    _shared("task_id", nullable=False),
    _shared("agent", nullable=False),
    sa.Column("error_kind", sa.String(16), nullable=False),
    _shared("fingerprint", nullable=False, index=True),
    sa.Column("error", sa.Text, nullable=False),
    sa.Column("context", sa.Text, nullable=False),
    _shared("at", nullable=False),
)

incidents = sa.Table(
    "incidents",
    metadata,
    sa.Column("key", sa.String(255), primary_key=True),
    sa.Column("kind", sa.String(32), nullable=False),
    sa.Column("subject", sa.String(255), nullable=False, index=True),
    _shared("task_id", nullable=False),
    _shared("agent"),
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

notifications = sa.Table(
    "notifications",
    metadata,
    sa.Column("idempotency_key", sa.String(255), primary_key=True),
    _shared("incident_key", index=True),
    sa.Column("step", sa.String(16)),
    sa.Column("target", sa.String(64), nullable=False),
    sa.Column("status", sa.String(16), nullable=False),
    sa.Column("status_code", sa.Integer),
    sa.Column("text", sa.Text, nullable=False),
    _shared("at", nullable=False),
)

# Why tasks get stuck, kept for the learning loop (M2.5).
blockers = sa.Table(
    "blockers",
    metadata,
    _shared("incident_key", primary_key=True),
    sa.Column("reason", sa.Text, nullable=False),
    _shared("fingerprint"),
    _shared("agent"),
    _shared("at", nullable=False),
)

# Webhook deliveries accepted before Temporal confirmed their review's start (M2.3).
review_outbox = sa.Table(
    "review_outbox",
    metadata,
    _shared("workflow_id", primary_key=True),
    sa.Column("input", sa.Text, nullable=False),
    sa.Column("delivery", sa.String(128)),
    sa.Column("received_at", TZ, nullable=False),
    sa.Column("started_at", TZ),
)

# Git rollback (M2.2): one row per guarded commit, upserted as the guard goes (its workflow id).
commit_guards = sa.Table(
    "commit_guards",
    metadata,
    _shared("workflow_id", primary_key=True),
    sa.Column("repo", sa.String(255), nullable=False, index=True),
    sa.Column("repo_path", sa.Text, nullable=False),
    sa.Column("sha", sa.String(64), nullable=False),
    sa.Column("branch", sa.String(255)),
    sa.Column("author", sa.String(255)),
    sa.Column("subject", sa.Text),
    sa.Column("build_command", sa.Text, nullable=False),
    sa.Column("state", sa.String(32), nullable=False),
    sa.Column("failure_tail", sa.Text),
    sa.Column("revert_sha", sa.String(64)),
    _shared("incident_key"),
    *_moments("committed_at", "detected_at", "reverted_at", "verified_at"),
    _shared("updated_at", nullable=False),
)

# Health (M2.6): one row per agent per HealthProbe run, keyed by the run's (deterministic) time.
uptime_samples = sa.Table(
    "uptime_samples",
    metadata,
    _shared("agent", primary_key=True),
    _shared("at", primary_key=True),
    sa.Column("available", sa.Boolean, nullable=False),
    sa.Column("held", sa.Boolean, nullable=False),
    sa.Column("detail", sa.Text, nullable=False),
    sa.Column("latency_ms", sa.Float),
    sa.Index("ix_uptime_samples_at", "at", "agent"),
)

# The health dashboard's reads: time ranges, and what is open now (dashboard/queries.py).
sa.Index("ix_attempts_ended_at", attempts.c.ended_at, attempts.c.agent, attempts.c.outcome,
         attempts.c.error_kind)  # fmt: skip
sa.Index("ix_tasks_updated_at", tasks.c.updated_at, tasks.c.state, tasks.c.agent,
         tasks.c.attempts)  # fmt: skip
sa.Index("ix_incidents_opened_at", incidents.c.opened_at, incidents.c.kind)
sa.Index("ix_incidents_status", incidents.c.status, incidents.c.kind, incidents.c.agent)
sa.Index("ix_notifications_at", notifications.c.at)
sa.Index("ix_notifications_target_at", notifications.c.target, notifications.c.at)
sa.Index("ix_commit_guards_updated_at", commit_guards.c.updated_at)
sa.Index("ix_commit_guards_reverted_at", commit_guards.c.reverted_at)
sa.Index("ix_review_outbox_received_at", review_outbox.c.received_at)


# Learnings (M2.5): one row per learning (a published pattern), keyed by its fingerprint.
learnings = sa.Table(
    "learnings",
    metadata,
    sa.Column("id", sa.String(255), primary_key=True),
    _shared("fingerprint", nullable=False, unique=True),
    sa.Column("fingerprints", sa.Text, nullable=False, default="[]"),
    sa.Column("kind", sa.String(16), nullable=False),
    sa.Column("template", sa.Text, nullable=False),
    sa.Column("slug", sa.String(128), nullable=False, unique=True),
    sa.Column("status", sa.String(16), nullable=False),
    sa.Column("scope", sa.Text, nullable=False),
    sa.Column("advice", sa.Text, nullable=False),
    sa.Column("hint", sa.Text, nullable=False),
    sa.Column("hint_source", sa.String(16), nullable=False),
    sa.Column("score", sa.Integer, nullable=False),
    sa.Column("regressions", sa.Integer, nullable=False, default=0),
    sa.Column("merged_into", sa.String(255)),
    *_moments("first_seen", "published_at", "retired_at"),
    _shared("updated_at", nullable=False),
)

# One row per learning given to an attempt; its outcome scores the learning (once: the row's
# insert is the vote, so a retried write never votes twice).
learning_uses = sa.Table(
    "learning_uses",
    metadata,
    _shared("workflow_id", primary_key=True),
    sa.Column("attempt", sa.Integer, primary_key=True),
    sa.Column("learning_id", sa.String(255), primary_key=True, index=True),
    _shared("agent", nullable=False),
    sa.Column("how", sa.String(16), nullable=False),
    sa.Column("outcome", sa.String(16), nullable=False),
    _shared("fingerprint"),
    _shared("at", nullable=False),
)

# What ended each failure: the later attempt of the same task that succeeded, or the escalation
# (the ``failed`` incident) that took the task over.
failure_resolutions = sa.Table(
    "failure_resolutions",
    metadata,
    *_attempt_key(),
    sa.Column("by", sa.String(16), nullable=False),
    sa.Column("attempt", sa.Integer),
    sa.Column("strategy", sa.String(32)),
    _shared("agent"),
    sa.Column("learning_ids", sa.Text, nullable=False, default="[]"),
    _shared("incident_key"),
    _shared("at", nullable=False),
)
