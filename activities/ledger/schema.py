"""The ledger's tables (SQLAlchemy Core): one ``metadata``, the single source of the schema.

A change here needs an Alembic revision in ``migrations/versions/`` (``alembic revision
--autogenerate -m "..."`` at the top of the tree writes most of it); a test checks that the
migrations and this module agree.
"""

import sqlalchemy as sa

metadata = sa.MetaData()

tasks = sa.Table(
    "tasks",
    metadata,
    sa.Column("workflow_id", sa.String(255), primary_key=True),
    sa.Column("task_id", sa.String(255), nullable=False),
    sa.Column("agent", sa.String(64), nullable=False),
    sa.Column("title", sa.Text, nullable=False),
    sa.Column("priority", sa.String(16), nullable=False),
    sa.Column("state", sa.String(32), nullable=False),
    sa.Column("attempts", sa.Integer, nullable=False, default=0),
    sa.Column("result", sa.Text),
    sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
)

attempts = sa.Table(
    "attempts",
    metadata,
    sa.Column("workflow_id", sa.String(255), primary_key=True),
    sa.Column("n", sa.Integer, primary_key=True),
    sa.Column("agent", sa.String(64), nullable=False),
    sa.Column("strategy", sa.String(32), nullable=False),
    sa.Column("outcome", sa.String(16), nullable=False),
    sa.Column("error_kind", sa.String(16)),
    sa.Column("fingerprint", sa.String(64)),
    sa.Column("started_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("ended_at", sa.DateTime(timezone=True)),
)

failures = sa.Table(
    "failures",
    metadata,
    sa.Column("workflow_id", sa.String(255), primary_key=True),
    sa.Column("n", sa.Integer, primary_key=True),
    sa.Column("task_id", sa.String(255), nullable=False),
    sa.Column("agent", sa.String(64), nullable=False),
    sa.Column("error_kind", sa.String(16), nullable=False),
    sa.Column("fingerprint", sa.String(64), nullable=False, index=True),
    sa.Column("error", sa.Text, nullable=False),
    sa.Column("context", sa.Text, nullable=False),
    sa.Column("at", sa.DateTime(timezone=True), nullable=False),
)

incidents = sa.Table(
    "incidents",
    metadata,
    sa.Column("key", sa.String(255), primary_key=True),
    sa.Column("kind", sa.String(32), nullable=False),
    sa.Column("subject", sa.String(255), nullable=False, index=True),
    sa.Column("task_id", sa.String(255), nullable=False),
    sa.Column("agent", sa.String(64)),
    sa.Column("title", sa.Text, nullable=False),
    sa.Column("reason", sa.Text, nullable=False),
    sa.Column("status", sa.String(16), nullable=False),
    sa.Column("opened_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("acknowledged_at", sa.DateTime(timezone=True)),
    sa.Column("acknowledged_by", sa.String(128)),
    sa.Column("resolved_at", sa.DateTime(timezone=True)),
    sa.Column("resolution", sa.Text),
    sa.Column("details", sa.Text, nullable=False),
)

notifications = sa.Table(
    "notifications",
    metadata,
    sa.Column("idempotency_key", sa.String(255), primary_key=True),
    sa.Column("incident_key", sa.String(255), index=True),
    sa.Column("step", sa.String(16)),
    sa.Column("target", sa.String(64), nullable=False),
    sa.Column("status", sa.String(16), nullable=False),
    sa.Column("status_code", sa.Integer),
    sa.Column("text", sa.Text, nullable=False),
    sa.Column("at", sa.DateTime(timezone=True), nullable=False),
)

# Why tasks get stuck, kept for the learning loop (M2.5).
blockers = sa.Table(
    "blockers",
    metadata,
    sa.Column("incident_key", sa.String(255), primary_key=True),
    sa.Column("reason", sa.Text, nullable=False),
    sa.Column("fingerprint", sa.String(64)),
    sa.Column("agent", sa.String(64)),
    sa.Column("at", sa.DateTime(timezone=True), nullable=False),
)

# Webhook deliveries accepted before Temporal confirmed their review's start (M2.3).
review_outbox = sa.Table(
    "review_outbox",
    metadata,
    sa.Column("workflow_id", sa.String(255), primary_key=True),
    sa.Column("input", sa.Text, nullable=False),
    sa.Column("delivery", sa.String(128)),
    sa.Column("received_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("started_at", sa.DateTime(timezone=True)),
)

# Git rollback (M2.2): one row per guarded commit, upserted as the guard goes (its workflow id).
commit_guards = sa.Table(
    "commit_guards",
    metadata,
    sa.Column("workflow_id", sa.String(255), primary_key=True),
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
    sa.Column("incident_key", sa.String(255)),
    sa.Column("committed_at", sa.DateTime(timezone=True)),
    sa.Column("detected_at", sa.DateTime(timezone=True)),
    sa.Column("reverted_at", sa.DateTime(timezone=True)),
    sa.Column("verified_at", sa.DateTime(timezone=True)),
    sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
)

# Health (M2.6): one row per agent per HealthProbe run, keyed by the run's (deterministic) time.
uptime_samples = sa.Table(
    "uptime_samples",
    metadata,
    sa.Column("agent", sa.String(64), primary_key=True),
    sa.Column("at", sa.DateTime(timezone=True), primary_key=True),
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
    sa.Column("fingerprint", sa.String(64), nullable=False, unique=True),
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
    sa.Column("first_seen", sa.DateTime(timezone=True)),
    sa.Column("published_at", sa.DateTime(timezone=True)),
    sa.Column("retired_at", sa.DateTime(timezone=True)),
    sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
)

# One row per learning given to an attempt; its outcome scores the learning (once: the row's
# insert is the vote, so a retried write never votes twice).
learning_uses = sa.Table(
    "learning_uses",
    metadata,
    sa.Column("workflow_id", sa.String(255), primary_key=True),
    sa.Column("attempt", sa.Integer, primary_key=True),
    sa.Column("learning_id", sa.String(255), primary_key=True, index=True),
    sa.Column("agent", sa.String(64), nullable=False),
    sa.Column("how", sa.String(16), nullable=False),
    sa.Column("outcome", sa.String(16), nullable=False),
    sa.Column("fingerprint", sa.String(64)),
    sa.Column("at", sa.DateTime(timezone=True), nullable=False),
)

# What ended each failure: the later attempt of the same task that succeeded, or the escalation
# (the ``failed`` incident) that took the task over.
failure_resolutions = sa.Table(
    "failure_resolutions",
    metadata,
    sa.Column("workflow_id", sa.String(255), primary_key=True),
    sa.Column("n", sa.Integer, primary_key=True),
    sa.Column("by", sa.String(16), nullable=False),
    sa.Column("attempt", sa.Integer),
    sa.Column("strategy", sa.String(32)),
    sa.Column("agent", sa.String(64)),
    sa.Column("learning_ids", sa.Text, nullable=False, default="[]"),
    sa.Column("incident_key", sa.String(255)),
    sa.Column("at", sa.DateTime(timezone=True), nullable=False),
)
