"""The ledger pieces of health (M2.6): uptime samples and the indexes the dashboard reads by.

Every query of ``dashboard.queries`` reads a time range or a small "open now" set through one of
these indexes, so the figures stay fast at a million attempts.
"""

import contextlib

import sqlalchemy as sa
from sqlalchemy.engine import Engine
from sqlalchemy.exc import DBAPIError

from activities.ledger import (
    attempts,
    commit_guards,
    incidents,
    metadata,
    notifications,
    review_outbox,
    tasks,
)

# One row per agent per HealthProbe run, keyed by the run's (deterministic) time: idempotent.
uptime_samples = sa.Table(
    "uptime_samples",
    metadata,
    sa.Column("agent", sa.String(64), primary_key=True),
    sa.Column("at", sa.DateTime(timezone=True), primary_key=True),
    sa.Column("available", sa.Boolean, nullable=False),
    sa.Column("held", sa.Boolean, nullable=False),
    sa.Column("detail", sa.Text, nullable=False),
    sa.Column("latency_ms", sa.Float),
)

INDEXES = (
    sa.Index("ix_uptime_samples_at", uptime_samples.c.at, uptime_samples.c.agent),
    sa.Index(
        "ix_attempts_ended_at",
        attempts.c.ended_at,
        attempts.c.agent,
        attempts.c.outcome,
        attempts.c.error_kind,
    ),
    sa.Index(
        "ix_tasks_updated_at", tasks.c.updated_at, tasks.c.state, tasks.c.agent, tasks.c.attempts
    ),
    sa.Index("ix_incidents_opened_at", incidents.c.opened_at, incidents.c.kind),
    sa.Index("ix_incidents_status", incidents.c.status, incidents.c.kind, incidents.c.agent),
    sa.Index("ix_notifications_at", notifications.c.at),
    sa.Index("ix_notifications_target_at", notifications.c.target, notifications.c.at),
    sa.Index("ix_commit_guards_updated_at", commit_guards.c.updated_at),
    sa.Index("ix_commit_guards_reverted_at", commit_guards.c.reverted_at),
    sa.Index("ix_review_outbox_received_at", review_outbox.c.received_at),
)


def ensure_schema(engine: Engine) -> None:
    """Create whatever of the ledger is missing: a new ledger whole, an older one gets the
    uptime table and the indexes (several processes may race; the loser finds them there)."""
    with contextlib.suppress(DBAPIError):  # another process won the race: checked below
        metadata.create_all(engine)
    for item in (*metadata.sorted_tables, *INDEXES):
        try:
            item.create(engine, checkfirst=True)
        except DBAPIError:
            if not _exists(engine, item):
                raise


def _exists(engine: Engine, item: sa.Table | sa.Index) -> bool:
    inspector = sa.inspect(engine)
    if isinstance(item, sa.Table):
        return inspector.has_table(item.name)
    assert item.table is not None
    return any(ix["name"] == item.name for ix in inspector.get_indexes(item.table.name))
