"""The ledger store: queries and idempotent writes over the schema, for activities, the API and
the dashboard alike (no Temporal here).

SQLite under the data dir by default, PostgreSQL (psycopg 3) by SELFHEAL_DB_URL. Every write is
an upsert keyed by workflow id (and attempt number), so an activity that Temporal retries never
writes a row twice. Nothing is opened when a ``Ledger`` is made: the engine is created, and the
schema migrated (or checked, with ``migrate=False``), on first use or by ``open()``.
"""

import json
import threading
from datetime import UTC, datetime
from typing import Any, Self

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite

from activities.ledger import migrate as migrations
from activities.ledger.engine import LedgerError, create_engine, redacted, unreachable
from activities.ledger.schema import (
    attempts,
    blockers,
    commit_guards,
    failures,
    incidents,
    notifications,
    review_outbox,
    tasks,
    uptime_samples,
)
from selfheal.config import Settings
from selfheal.models import (
    AttemptLedgerEntry,
    IncidentRecord,
    IncidentUpdate,
    Notice,
)
from selfheal.rollback import GuardLedgerEntry


def _now() -> datetime:
    return datetime.now(UTC)


class Ledger:
    """Synchronous access to the ledger; activities call it off the event loop."""

    def __init__(self, url: str, *, migrate: bool = True) -> None:
        self.url = url
        self.migrate = migrate
        # The schema revisions (before, after) found by ``open()``.
        self.migration: tuple[tuple[str, ...], tuple[str, ...]] | None = None
        self._engine: sa.Engine | None = None
        self._opening = threading.Lock()

    @classmethod
    def from_settings(cls, settings: Settings) -> Self:
        """The settings' ledger: migrated when opened unless SELFHEAL_DB_MIGRATE=false."""
        return cls(settings.ledger_url, migrate=settings.db_migrate)

    def __repr__(self) -> str:
        return f"Ledger({redacted(self.url)!r})"

    @property
    def engine(self) -> sa.Engine:
        if self._engine is None:
            self.open()
        assert self._engine is not None
        return self._engine

    def open(self) -> Self:
        """Connect and bring the schema to the head (or, with ``migrate=False``, check that it
        is there); ``LedgerError`` in one line otherwise. Safe to call again, from any thread."""
        with self._opening:
            if self._engine is None:
                engine = create_engine(self.url)
                try:
                    if self.migrate:
                        self.migration = migrations.upgrade(engine)
                    else:
                        self.migration = migrations.check(engine)
                except sa.exc.DBAPIError as err:
                    engine.dispose()
                    raise unreachable(engine.url, err) from None
                except LedgerError:
                    engine.dispose()
                    raise
                self._engine = engine
        return self

    def close(self) -> None:
        with self._opening:
            if self._engine is not None:
                self._engine.dispose()
                self._engine = None

    def _upsert(
        self, table: sa.Table, row: dict[str, Any], update: list[str]
    ) -> sqlite.Insert | postgresql.Insert:
        keys = [c.name for c in table.primary_key.columns]
        stmt: sqlite.Insert | postgresql.Insert
        if self.engine.dialect.name == "sqlite":
            stmt = sqlite.insert(table).values(**row)
        else:  # engine.parse_url admits SQLite and PostgreSQL only
            stmt = postgresql.insert(table).values(**row)
        if not update:
            return stmt.on_conflict_do_nothing(index_elements=keys)
        return stmt.on_conflict_do_update(
            index_elements=keys, set_={c: stmt.excluded[c] for c in update}
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
        # RETURNING, not rowcount: psycopg reports -1 for an INSERT ... ON CONFLICT DO NOTHING.
        stmt = self._upsert(review_outbox, row, []).returning(review_outbox.c.workflow_id)
        with self.engine.begin() as conn:
            return conn.execute(stmt).first() is not None

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

    def record_commit_guard(self, entry: GuardLedgerEntry) -> None:
        row = entry.model_dump() | {"updated_at": _now()}
        update = [c for c in row if c != "workflow_id"]
        with self.engine.begin() as conn:
            conn.execute(self._upsert(commit_guards, row, update))

    def record_uptime_samples(self, at: datetime, samples: list[dict[str, Any]]) -> set[str]:
        """One row per agent at ``at`` (HealthProbe, M2.6); ``held`` is read in the same
        transaction: an open stuck/blocked incident holds the agent. Returns the held agents.
        Keyed by (agent, at), so a retried write adds nothing."""
        with self.engine.begin() as conn:
            held = set(
                conn.execute(
                    sa.select(incidents.c.agent).where(
                        incidents.c.status.in_(("open", "acknowledged")),
                        incidents.c.kind.in_(("stuck", "blocked")),
                    )
                ).scalars()
            )
            for sample in samples:
                row = sample | {"at": at, "held": sample["agent"] in held}
                conn.execute(self._upsert(uptime_samples, row, []))
        return held
