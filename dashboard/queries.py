"""The health figures (DESIGN "Health (M2.6)") from the ledger, with SQLAlchemy Core.

Windowed counts go through hourly rollups (``dashboard.rollup``); what is open now (incidents,
the last probe sample of each agent) is a small indexed read. ``HealthQueries`` is synchronous:
the API calls it off the event loop.
"""

import statistics
import time
from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

from activities.ledger import (
    Ledger,
    attempts,
    commit_guards,
    incidents,
    notifications,
    review_outbox,
    tasks,
)
from activities.ledger.learnings import max_repeats_after_learning
from activities.ledger.schema import uptime_samples
from dashboard.document import (
    ESCALATION_STEPS,
    WINDOWS,
    IncidentRow,
    RetryFigures,
    RevertFigures,
    SeedMetrics,
    TrendPoint,
    Window,
)
from dashboard.rollup import Rollup, at, epoch

RECENT_INCIDENTS = 50
OPEN_STATUSES = ("open", "acknowledged")
SETTLED_STATES = ("succeeded", "failed")
REVERT_TARGET_S = 120.0


def utc(value: datetime | None) -> datetime | None:
    """SQLite hands back naive datetimes; the ledger writes UTC."""
    if value is None or value.tzinfo is not None:
        return value
    return value.replace(tzinfo=UTC)


@dataclass
class AgentFigures:
    samples: int = 0
    up_samples: int = 0
    attempts: int = 0
    failed: int = 0
    errors_by_kind: dict[str, int] = field(default_factory=dict)
    available: bool | None = None
    held_at_sample: bool = False
    last_sample_at: datetime | None = None
    probe_detail: str = ""
    trend: list[TrendPoint] = field(default_factory=list)


@dataclass
class OpenIncident:
    key: str
    kind: str
    agent: str | None
    subject: str
    title: str
    status: str
    opened_at: datetime


@dataclass
class LedgerFigures:
    """Everything the health document takes from the ledger, for one window."""

    now: datetime
    window: Window
    agents: dict[str, AgentFigures]
    incidents: list[IncidentRow]
    open_incidents: list[OpenIncident]
    seed: SeedMetrics
    trend: list[TrendPoint]


@dataclass
class LedgerTotals:
    """All-time counters and current gauges for ``/metrics``."""

    attempts: Counter[tuple[Any, ...]]  # (agent, outcome, error_kind)
    settled_tasks: Counter[tuple[Any, ...]]  # (state,)
    incidents: Counter[tuple[Any, ...]]  # (kind,)
    open_incidents: Counter[tuple[Any, ...]]  # (kind,)
    ceo_alerts: int
    pr_events: int
    pr_reviews: int
    reverts_s: list[float]
    agent_up: dict[str, bool | None]
    uptime_24h: dict[str, float | None]
    retry_24h: RetryFigures


class HealthQueries:
    """Over a ledger's engine; give it the ``Ledger`` store (opened, so migrated, on first use)
    or an engine."""

    def __init__(self, ledger: Ledger | Engine) -> None:
        self._ledger = ledger
        self.attempts = Rollup(
            attempts.c.ended_at, [attempts.c.agent, attempts.c.outcome, attempts.c.error_kind]
        )
        self.samples = Rollup(
            uptime_samples.c.at,
            [uptime_samples.c.agent, uptime_samples.c.available, uptime_samples.c.held],
        )
        self.settled = Rollup(
            tasks.c.updated_at,
            [tasks.c.agent, tasks.c.state, sa.case((tasks.c.attempts > 1, 1), else_=0)],
            where=tasks.c.state.in_(SETTLED_STATES),
        )
        self.opened = Rollup(incidents.c.opened_at, [incidents.c.kind])
        self.ceo = Rollup(notifications.c.at, [], where=notifications.c.target == "ceo")

    @property
    def engine(self) -> Engine:
        return self._ledger if isinstance(self._ledger, Engine) else self._ledger.engine

    # -- the change marker the live page polls ----------------------------------------------

    def marker(self) -> tuple[Any, ...]:
        """A cheap tuple that changes whenever a figure may have: one indexed lookup per table."""

        def newest(column: Any) -> Any:
            return sa.select(sa.func.max(column)).scalar_subquery()

        def status_count(status: str) -> Any:
            stmt = sa.select(sa.func.count()).select_from(incidents)
            return stmt.where(incidents.c.status == status).scalar_subquery()

        stmt = sa.select(
            newest(tasks.c.updated_at),
            newest(attempts.c.ended_at),
            newest(incidents.c.opened_at),
            status_count("open"),
            status_count("acknowledged"),
            newest(notifications.c.at),
            newest(uptime_samples.c.at),
            newest(commit_guards.c.updated_at),
            newest(review_outbox.c.received_at),
        )
        with self.engine.connect() as conn:
            row = conn.execute(stmt).one()
        return tuple(row)

    # -- one window -------------------------------------------------------------------------

    def figures(
        self, window: Window, agents: list[str], now: datetime | None = None
    ) -> LedgerFigures:
        now = now or datetime.now(UTC)
        span, width = WINDOWS[window]
        end = epoch(now) + 1
        start = end - span
        clock = now.timestamp()
        with self.engine.connect() as conn:
            figures = {name: AgentFigures() for name in agents}
            for (agent, outcome, kind), n in self.attempts.counts(conn, start, end, clock).items():
                f = figures.setdefault(agent, AgentFigures())
                f.attempts += n
                if outcome == "failed":
                    f.failed += n
                    kind = kind or "unknown"
                    f.errors_by_kind[kind] = f.errors_by_kind.get(kind, 0) + n
            for (agent, available, held), n in self.samples.counts(conn, start, end, clock).items():
                f = figures.setdefault(agent, AgentFigures())
                f.samples += n
                f.up_samples += n if (available and not held) else 0
            for name, f in figures.items():
                self._last_sample(conn, name, f)
            trend = self._trend(conn, start, end, width, clock, figures)
            return LedgerFigures(
                now=now,
                window=window,
                agents=figures,
                incidents=self._recent_incidents(conn, now),
                open_incidents=self._open_incidents(conn),
                seed=self._seed(conn, start, end, span, clock),
                trend=trend,
            )

    def _last_sample(self, conn: Connection, agent: str, f: AgentFigures) -> None:
        s = uptime_samples.c
        row = conn.execute(
            sa.select(s.at, s.available, s.held, s.detail)
            .where(s.agent == agent)
            .order_by(s.at.desc())
            .limit(1)
        ).first()
        if row is not None:
            f.available, f.held_at_sample = bool(row.available), bool(row.held)
            f.last_sample_at, f.probe_detail = utc(row.at), row.detail

    def _trend(
        self,
        conn: Connection,
        start: int,
        end: int,
        width: int,
        clock: float,
        figures: dict[str, AgentFigures],
    ) -> list[TrendPoint]:
        edges = [start, *range((start // width + 1) * width, end, width)]
        # [attempts, failed, samples, up samples, incidents] per bucket, for all and per agent
        total = [[0, 0, 0, 0, 0] for _ in edges]
        per_agent: dict[Any, list[list[int]]] = {
            n: [[0, 0, 0, 0, 0] for _ in edges] for n in figures
        }
        none: list[list[int]] = [[0, 0, 0, 0, 0] for _ in edges]
        for i, counts in enumerate(self.attempts.series(conn, start, end, width, clock)):
            for (agent, outcome, _kind), n in counts.items():
                failed = n if outcome == "failed" else 0
                for row in (total[i], per_agent.get(agent, none)[i]):
                    row[0] += n
                    row[1] += failed
        for i, counts in enumerate(self.samples.series(conn, start, end, width, clock)):
            for (agent, available, held), n in counts.items():
                up = n if (available and not held) else 0
                for row in (total[i], per_agent.get(agent, none)[i]):
                    row[2] += n
                    row[3] += up
        for i, counts in enumerate(self.opened.series(conn, start, end, width, clock)):
            total[i][4] = sum(counts.values())

        def points(rows: list[list[int]]) -> list[TrendPoint]:
            return [
                TrendPoint(start=at(e), attempts=a, failed=f, samples=s, up_samples=u, incidents=c)
                for e, (a, f, s, u, c) in zip(edges, rows, strict=True)
            ]

        for name, f in figures.items():
            f.trend = points(per_agent[name])
        return points(total)

    def _recent_incidents(self, conn: Connection, now: datetime) -> list[IncidentRow]:
        i = incidents.c
        rows = conn.execute(
            sa.select(incidents).order_by(i.opened_at.desc()).limit(RECENT_INCIDENTS)
        ).all()
        steps: dict[str, str] = {}
        if rows:
            n = notifications.c
            order = {s: k for k, s in enumerate(ESCALATION_STEPS)}
            found = conn.execute(
                sa.select(n.incident_key, n.step).where(
                    n.incident_key.in_([r.key for r in rows]), n.step.is_not(None)
                )
            )
            for key, step in found:
                if step in order and order[step] >= order.get(steps.get(key, ""), -1):
                    steps[key] = step
        out = []
        for r in rows:
            opened, resolved = utc(r.opened_at), utc(r.resolved_at)
            assert opened is not None
            out.append(
                IncidentRow(
                    key=r.key,
                    kind=r.kind,
                    task_id=r.task_id,
                    subject=r.subject,
                    title=r.title,
                    agent=r.agent,
                    reason=r.reason,
                    status=r.status,
                    step=steps.get(r.key),
                    opened_at=opened,
                    resolved_at=resolved,
                    age_s=max(0.0, (now - opened).total_seconds()),
                    time_to_resolve_s=(resolved - opened).total_seconds() if resolved else None,
                )
            )
        return out

    def _open_incidents(self, conn: Connection) -> list[OpenIncident]:
        i = incidents.c
        rows = conn.execute(
            sa.select(i.key, i.kind, i.agent, i.subject, i.title, i.status, i.opened_at)
            .where(i.status.in_(OPEN_STATUSES))
            .order_by(i.opened_at)
        )
        return [OpenIncident(*r[:-1], opened_at=utc(r.opened_at)) for r in rows]  # type: ignore[arg-type]

    def _seed(self, conn: Connection, start: int, end: int, span: int, clock: float) -> SeedMetrics:
        retry = self.retry(conn, start, end, clock)
        g = commit_guards.c
        reverts = self._revert_seconds(conn, g.reverted_at >= at(start), g.reverted_at < at(end))
        o = review_outbox.c
        events, reviews = conn.execute(
            sa.select(sa.func.count(), sa.func.count(o.started_at)).where(
                o.received_at >= at(start), o.received_at < at(end)
            )
        ).one()
        ceo = self.ceo.counts(conn, start, end, clock).get((), 0)
        return SeedMetrics(
            retry_success=retry,
            revert=RevertFigures(
                count=len(reverts),
                p50_s=statistics.median(reverts) if reverts else None,
                max_s=max(reverts) if reverts else None,
                within_2min=sum(s <= REVERT_TARGET_S for s in reverts),
            ),
            pr_events=events,
            pr_reviews=reviews,
            pr_coverage=reviews / events if events else None,
            ceo_alerts=ceo,
            ceo_alerts_per_day=ceo / (span / 86400),
            repeats_after_learning=self._repeats_after_learning(conn),
        )

    def retry(self, conn: Connection, start: int, end: int, clock: float) -> RetryFigures:
        """Of the tasks settled in the range that failed at least once (a succeeded task with a
        second attempt, or a failed task), those that then succeeded."""
        recovered = failed = 0
        for (_agent, state, retried), n in self.settled.counts(conn, start, end, clock).items():
            if state == "succeeded" and retried:
                recovered += n
            elif state == "failed":
                failed += n
        total = recovered + failed
        return RetryFigures(
            failed_once=total, recovered=recovered, rate=recovered / total if total else None
        )

    def _revert_seconds(self, conn: Connection, *where: Any) -> list[float]:
        g = commit_guards.c
        rows = conn.execute(
            sa.select(g.committed_at, g.detected_at, g.reverted_at).where(
                g.reverted_at.is_not(None), *where
            )
        )
        out = []
        for committed, detected, reverted in rows:
            since = utc(committed) or utc(detected)
            if since is not None:
                out.append(max(0.0, (utc(reverted) - since).total_seconds()))  # type: ignore[operator]
        return out

    def _repeats_after_learning(self, conn: Connection) -> int | None:
        return max_repeats_after_learning(conn)

    # -- all time, for /metrics ---------------------------------------------------------------

    def totals(self, agents: list[str], now: datetime | None = None) -> LedgerTotals:
        now = now or datetime.now(UTC)
        clock = now.timestamp()
        end = epoch(now) + 1
        with self.engine.connect() as conn:
            settled: Counter[tuple[Any, ...]] = Counter()
            for (_agent, state, _retried), n in self.settled.total(conn, clock).items():
                settled[(state,)] += n
            open_counts: Counter[tuple[Any, ...]] = Counter(
                (o.kind,) for o in self._open_incidents(conn)
            )
            o = review_outbox.c
            events, reviews = conn.execute(
                sa.select(sa.func.count(), sa.func.count(o.started_at))
            ).one()
            day = self.samples.counts(conn, end - 86400, end, clock)
            uptime: dict[str, float | None] = {}
            up: dict[str, bool | None] = {}
            for name in agents:
                n = sum(c for (a, _, _), c in day.items() if a == name)
                ok = sum(c for (a, av, h), c in day.items() if a == name and av and not h)
                uptime[name] = ok / n if n else None
                f = AgentFigures()
                self._last_sample(conn, name, f)
                up[name] = None if f.available is None else f.available and not f.held_at_sample
            return LedgerTotals(
                attempts=self.attempts.total(conn, clock),
                settled_tasks=settled,
                incidents=self.opened.total(conn, clock),
                open_incidents=open_counts,
                ceo_alerts=self.ceo.total(conn, clock).get((), 0),
                pr_events=events,
                pr_reviews=reviews,
                reverts_s=self._revert_seconds(conn),
                agent_up=up,
                uptime_24h=uptime,
                retry_24h=self.retry(conn, end - 86400, end, clock),
            )


def warm(queries: HealthQueries, agents: list[str]) -> float:
    """Fill the rollups (the first 7-day and all-time reads); returns the seconds it took."""
    began = time.perf_counter()
    queries.figures("7d", agents)
    queries.totals(agents)
    return time.perf_counter() - began
