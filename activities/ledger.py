"""The SQL ledger (SQLAlchemy Core): tasks, attempts, failures with context and fingerprint,
incidents with their status, the notifications sent, and blocker patterns.

SQLite under the data dir by default, any SQLAlchemy URL (PostgreSQL for several machines) by
SELFHEAL_DB_URL. Every write is an upsert keyed by workflow id (and attempt number), so an
activity that Temporal retries never writes a row twice.
"""

import asyncio
import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite
from temporalio import activity

from selfheal.ids import Activities
from selfheal.models import (
    AttemptLedgerEntry,
    IncidentRecord,
    IncidentUpdate,
    Notice,
    TaskLedgerEntry,
)

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


def _now() -> datetime:
    return datetime.now(UTC)


class Ledger:
    """Synchronous access to the ledger; activities call it off the event loop."""

    def __init__(self, url: str) -> None:
        if url.startswith("sqlite:///"):
            Path(url.removeprefix("sqlite:///")).parent.mkdir(parents=True, exist_ok=True)
        self.engine = sa.create_engine(url, future=True)
        if self.engine.dialect.name == "sqlite":
            sa.event.listen(self.engine, "connect", _sqlite_pragmas)
        metadata.create_all(self.engine)

    def _upsert(self, table: sa.Table, row: dict[str, Any], update: list[str]) -> sa.Executable:
        keys = [c.name for c in table.primary_key.columns]
        dialect = self.engine.dialect.name
        if dialect == "sqlite":
            stmt = sqlite.insert(table).values(**row)
        elif dialect == "postgresql":
            stmt = postgresql.insert(table).values(**row)
        else:
            raise RuntimeError(f"ledger does not support the {dialect} dialect")
        if not update:
            return stmt.on_conflict_do_nothing(index_elements=keys)
        return stmt.on_conflict_do_update(
            index_elements=keys, set_={c: stmt.excluded[c] for c in update}
        )

    def record_task(self, entry: TaskLedgerEntry) -> None:
        now = _now()
        row = entry.model_dump() | {"created_at": now, "updated_at": now}
        with self.engine.begin() as conn:
            conn.execute(
                self._upsert(tasks, row, ["agent", "state", "result", "attempts", "updated_at"])
            )

    def record_attempt(self, entry: AttemptLedgerEntry) -> None:
        a = entry.attempt
        now = _now()
        with self.engine.begin() as conn:
            conn.execute(
                self._upsert(
                    tasks,
                    {
                        "workflow_id": entry.workflow_id,
                        "task_id": entry.task_id,
                        "agent": a.agent,
                        "title": entry.title,
                        "priority": entry.priority,
                        "state": entry.task_state,
                        "attempts": a.n,
                        "created_at": a.started_at,
                        "updated_at": now,
                    },
                    ["agent", "state", "attempts", "updated_at"],
                )
            )
            conn.execute(
                self._upsert(
                    attempts,
                    {
                        "workflow_id": entry.workflow_id,
                        "n": a.n,
                        "agent": a.agent,
                        "strategy": a.strategy,
                        "outcome": a.outcome,
                        "error_kind": a.error_kind,
                        "fingerprint": a.fingerprint,
                        "started_at": a.started_at,
                        "ended_at": a.ended_at,
                    },
                    ["outcome", "error_kind", "fingerprint", "ended_at"],
                )
            )
            if a.outcome == "failed" and a.error_kind and a.fingerprint:
                conn.execute(
                    self._upsert(
                        failures,
                        {
                            "workflow_id": entry.workflow_id,
                            "n": a.n,
                            "task_id": entry.task_id,
                            "agent": a.agent,
                            "error_kind": a.error_kind,
                            "fingerprint": a.fingerprint,
                            "error": a.error or "",
                            "context": json.dumps(entry.context, sort_keys=True, default=str),
                            "at": a.ended_at or now,
                        },
                        [],
                    )
                )

    def open_incident(self, record: IncidentRecord) -> None:
        row = record.model_dump(exclude={"details"}) | {
            "status": "open",
            "details": json.dumps(record.details, sort_keys=True, default=str),
        }
        with self.engine.begin() as conn:
            conn.execute(self._upsert(incidents, row, []))
            if record.kind in ("stuck", "blocked"):
                conn.execute(
                    self._upsert(
                        blockers,
                        {
                            "incident_key": record.key,
                            "reason": record.reason,
                            "fingerprint": record.details.get("fingerprint"),
                            "agent": record.agent,
                            "at": record.opened_at,
                        },
                        [],
                    )
                )

    def update_incident(self, update: IncidentUpdate) -> None:
        values: dict[str, Any] = {"status": update.status}
        if update.status == "acknowledged":
            values |= {"acknowledged_at": update.at, "acknowledged_by": update.by}
        else:
            values |= {"resolved_at": update.at, "resolution": update.note}
        with self.engine.begin() as conn:
            current = conn.execute(
                sa.select(incidents.c.status, incidents.c.details).where(
                    incidents.c.key == update.key
                )
            ).first()
            if current is None or current.status in ("resolved", "closed"):
                return  # unknown or already settled: a retried write changes nothing
            if update.details:
                values["details"] = json.dumps(
                    json.loads(current.details) | update.details, sort_keys=True, default=str
                )
            conn.execute(incidents.update().where(incidents.c.key == update.key).values(values))

    def record_notification(
        self, notice: Notice, status: str, status_code: int | None = None
    ) -> None:
        with self.engine.begin() as conn:
            conn.execute(
                self._upsert(
                    notifications,
                    {
                        "idempotency_key": notice.idempotency_key,
                        "incident_key": notice.incident_key,
                        "step": notice.step,
                        "target": notice.target,
                        "status": status,
                        "status_code": status_code,
                        "text": notice.text,
                        "at": _now(),
                    },
                    ["status", "status_code", "at"],
                )
            )

    def queue_review(self, workflow_id: str, input_json: str, delivery: str | None) -> bool:
        """Keep a review to start; False when that workflow id is queued or started already."""
        row = {"workflow_id": workflow_id, "input": input_json, "delivery": delivery,
               "received_at": _now()}  # fmt: skip
        with self.engine.begin() as conn:
            return conn.execute(self._upsert(review_outbox, row, [])).rowcount == 1

    def queued_reviews(self, limit: int = 100) -> list[tuple[str, str]]:
        stmt = (
            sa.select(review_outbox.c.workflow_id, review_outbox.c.input)
            .where(review_outbox.c.started_at.is_(None))
            .order_by(review_outbox.c.received_at)
            .limit(limit)
        )
        with self.engine.connect() as conn:
            return [(r.workflow_id, r.input) for r in conn.execute(stmt)]

    def review_started(self, workflow_id: str) -> None:
        with self.engine.begin() as conn:
            conn.execute(
                review_outbox.update()
                .where(review_outbox.c.workflow_id == workflow_id)
                .values(started_at=_now())
            )

    def rows(self, table: sa.Table, **where: Any) -> list[dict[str, Any]]:
        stmt = sa.select(table)
        for column, value in where.items():
            stmt = stmt.where(table.c[column] == value)
        with self.engine.connect() as conn:
            return [dict(r._mapping) for r in conn.execute(stmt)]


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA busy_timeout=10000")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.close()


class LedgerActivities:
    """Ledger writes as (local) activities; idempotent, so retries are safe."""

    def __init__(self, ledger: Ledger) -> None:
        self.ledger = ledger

    @activity.defn(name=Activities.RECORD_TASK)
    async def record_task(self, entry: TaskLedgerEntry) -> None:
        await asyncio.to_thread(self.ledger.record_task, entry)

    @activity.defn(name=Activities.RECORD_ATTEMPT)
    async def record_attempt(self, entry: AttemptLedgerEntry) -> None:
        await asyncio.to_thread(self.ledger.record_attempt, entry)

    @activity.defn(name=Activities.OPEN_INCIDENT)
    async def open_incident(self, record: IncidentRecord) -> None:
        await asyncio.to_thread(self.ledger.open_incident, record)

    @activity.defn(name=Activities.UPDATE_INCIDENT)
    async def update_incident(self, update: IncidentUpdate) -> None:
        await asyncio.to_thread(self.ledger.update_incident, update)

    def all(self) -> list[Any]:
        return [self.record_task, self.record_attempt, self.open_incident, self.update_incident]


# Git rollback (M2.2): one row per guarded commit, upserted as the guard goes (its workflow id).
from selfheal.rollback import CommitActivities, GuardLedgerEntry  # noqa: E402

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


def record_commit_guard(ledger: Ledger, entry: GuardLedgerEntry) -> None:
    row = entry.model_dump() | {"updated_at": _now()}
    update = [c for c in row if c != "workflow_id"]
    with ledger.engine.begin() as conn:
        conn.execute(ledger._upsert(commit_guards, row, update))


class CommitGuardLedgerActivities:
    def __init__(self, ledger: Ledger) -> None:
        self.ledger = ledger

    @activity.defn(name=CommitActivities.RECORD_GUARD)
    async def record_commit_guard(self, entry: GuardLedgerEntry) -> None:
        await asyncio.to_thread(record_commit_guard, self.ledger, entry)
