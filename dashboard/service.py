"""Builds the health document: the ledger's figures (``dashboard.queries``, off the event loop),
the team from the settings, and what Temporal knows now: the running tasks (a visibility query
over the Selfheal search attributes) and the task queue's pollers (worker liveness)."""

import asyncio
import contextlib
import dataclasses
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, TypeVar

import sqlalchemy as sa
from sqlalchemy.exc import SQLAlchemyError
from temporalio.api.enums.v1 import TaskQueueType
from temporalio.api.taskqueue.v1 import TaskQueue
from temporalio.api.workflowservice.v1 import DescribeTaskQueueRequest
from temporalio.client import Client

from activities.ledger import Ledger, LedgerError, tasks
from dashboard.document import (
    WINDOWS,
    AgentHealth,
    CurrentTask,
    HealthDocument,
    Window,
    Workers,
)
from dashboard.queries import HealthQueries, LedgerFigures, LedgerTotals, OpenIncident
from selfheal import search_attributes as sa_keys
from selfheal.config import Settings

T = TypeVar("T")
TEMPORAL_TIMEOUT = 2.0
TEMPORAL_TTL = 1.0
LEDGER_MAX_AGE = 2.0
# A live worker re-polls at least every ~70 s (a long poll), so an older last poll means gone.
POLLER_STALE = timedelta(seconds=90)
RUNNING_LIMIT = 1000
HELD_KINDS = ("stuck", "blocked")
DEFAULT_UI_URL = "http://localhost:8233"
_WORKFLOW_QUEUE = TaskQueueType.TASK_QUEUE_TYPE_WORKFLOW
_ACTIVITY_QUEUE = TaskQueueType.TASK_QUEUE_TYPE_ACTIVITY


class LedgerUnavailableError(RuntimeError):
    """The ledger cannot be read; the message is one line, safe to show."""


def one_line(err: BaseException) -> str:
    text = str(getattr(err, "orig", None) or err).strip().splitlines()
    return f"{type(err).__name__}: {text[0]}" if text and text[0] else type(err).__name__


@dataclass
class RunningTask:
    workflow_id: str
    agent: str
    state: str
    started: datetime | None


class HealthService:
    def __init__(
        self, settings: Settings, client: Client | None, ui_url: str | None = None
    ) -> None:
        self.settings, self.client = settings, client
        self.ui_url = (ui_url or DEFAULT_UI_URL).rstrip("/")
        self.store = Ledger.from_settings(settings)  # opened (and migrated) on first use
        self.queries = HealthQueries(self.store)
        self.no_client_reason = "no Temporal client"
        # What Temporal says (pollers, running tasks) is shared for TEMPORAL_TTL; the ledger's
        # figures are reused while its change marker stands still, for at most LEDGER_MAX_AGE.
        self._temporal: tuple[float, tuple[Workers, list[RunningTask] | None]] | None = None
        self._figures: dict[str, tuple[Any, float, LedgerFigures]] = {}
        self._totals: tuple[Any, float, LedgerTotals] | None = None

    @property
    def agents(self) -> list[str]:
        return list(self.settings.agents)

    def link(self, workflow_id: str) -> str | None:
        if self.client is None:
            return None
        return f"{self.ui_url}/namespaces/{self.client.namespace}/workflows/{workflow_id}"

    async def ledger(self, fn: Callable[..., T], *args: Any) -> T:
        """Run a ledger read in a thread; any database error becomes LedgerUnavailableError."""

        try:
            return await asyncio.to_thread(fn, *args)
        except LedgerError as err:
            raise LedgerUnavailableError(f"ledger unreachable: {err}") from None
        except (SQLAlchemyError, OSError) as err:
            raise LedgerUnavailableError(f"ledger unreachable: {one_line(err)}") from None

    async def marker(self) -> tuple[Any, ...]:
        return await self.ledger(self.queries.marker)

    # -- Temporal -------------------------------------------------------------------------------

    async def temporal(self) -> tuple[Workers, list[RunningTask] | None]:
        """Worker liveness and the running tasks, asked at most once per ``TEMPORAL_TTL``."""
        cached = self._temporal
        if cached is not None and time.monotonic() - cached[0] < TEMPORAL_TTL:
            return cached[1]
        answer = await asyncio.gather(self.workers(), self.running())
        self._temporal = (time.monotonic(), answer)
        return answer

    async def workers(self) -> Workers:
        workers = Workers(task_queue=self.settings.task_queue)
        if self.client is None:
            workers.error = self.no_client_reason
            return workers
        now = datetime.now(UTC)
        try:
            for kind in (_WORKFLOW_QUEUE, _ACTIVITY_QUEUE):
                answer = await self.client.workflow_service.describe_task_queue(
                    DescribeTaskQueueRequest(
                        namespace=self.client.namespace,
                        task_queue=TaskQueue(name=self.settings.task_queue),
                        task_queue_type=kind,
                    ),
                    timeout=timedelta(seconds=TEMPORAL_TIMEOUT),
                )
                live = [
                    p
                    for p in answer.pollers
                    if now - p.last_access_time.ToDatetime(tzinfo=UTC) < POLLER_STALE
                ]
                if kind == _WORKFLOW_QUEUE:
                    workers.workflow_pollers = len(live)
                else:
                    workers.activity_pollers = len(live)
                workers.identities = sorted({*workers.identities, *(p.identity for p in live)})
            workers.reachable = True
        except Exception as err:
            workers.error = f"Temporal unreachable: {one_line(err)}"
        return workers

    async def running(self) -> list[RunningTask] | None:
        """The running AgentTasks, from visibility; None when Temporal cannot be asked."""
        if self.client is None:
            return None
        query = f'{sa_keys.KIND.name} = "task" AND ExecutionStatus = "Running"'

        async def collect() -> list[RunningTask]:
            out = []
            assert self.client is not None
            async for wf in self.client.list_workflows(
                query, limit=RUNNING_LIMIT, page_size=RUNNING_LIMIT
            ):
                attrs = wf.typed_search_attributes
                out.append(
                    RunningTask(
                        workflow_id=wf.id,
                        agent=attrs.get(sa_keys.AGENT) or "?",
                        state=attrs.get(sa_keys.STATE) or "running",
                        started=wf.start_time,
                    )
                )
            return out

        try:
            return await asyncio.wait_for(collect(), TEMPORAL_TIMEOUT)
        except Exception:
            return None

    async def _titles(self, workflow_ids: list[str]) -> dict[str, str]:
        if not workflow_ids:
            return {}

        def read() -> dict[str, str]:
            stmt = sa.select(tasks.c.workflow_id, tasks.c.title).where(
                tasks.c.workflow_id.in_(workflow_ids)
            )
            with self.store.engine.connect() as conn:
                return {w: t for w, t in conn.execute(stmt)}

        titles = await self.ledger(read)
        for workflow_id in [w for w in workflow_ids if w not in titles]:
            with contextlib.suppress(Exception):  # a task in its first attempt: ask Temporal
                assert self.client is not None
                handle = self.client.get_workflow_handle(workflow_id)
                description = await asyncio.wait_for(handle.describe(), TEMPORAL_TIMEOUT)
                summary = await description.static_summary() or ""
                titles[workflow_id] = summary.partition(": ")[2] or summary
        return titles

    # -- the document ---------------------------------------------------------------------------

    async def document(self, window: Window = "24h", now: datetime | None = None) -> HealthDocument:
        (figures, (workers, running)) = await asyncio.gather(
            self.figures(window, now), self.temporal()
        )
        return await self._assemble(figures, workers, running)

    async def figures(self, window: Window, now: datetime | None = None) -> LedgerFigures:
        """The ledger's figures for ``window``, computed again when the change marker moved
        (read first, so a change made meanwhile is seen by the next call)."""
        if now is not None:
            return await self.ledger(self.queries.figures, window, self.agents, now)
        marker = await self.marker()
        hit = self._figures.get(window)
        if hit is not None and hit[0] == marker and time.monotonic() - hit[1] < LEDGER_MAX_AGE:
            return _aged(hit[2], datetime.now(UTC))
        figures = await self.ledger(self.queries.figures, window, self.agents, None)
        self._figures[window] = (marker, time.monotonic(), figures)
        return figures

    async def totals(self) -> tuple[LedgerTotals, Workers, list[RunningTask] | None]:
        async def ledger_totals() -> LedgerTotals:
            marker = await self.marker()
            hit = self._totals
            if hit is not None and hit[0] == marker and time.monotonic() - hit[1] < LEDGER_MAX_AGE:
                return hit[2]
            totals = await self.ledger(self.queries.totals, self.agents)
            self._totals = (marker, time.monotonic(), totals)
            return totals

        (totals, (workers, running)) = await asyncio.gather(ledger_totals(), self.temporal())
        return totals, workers, running

    async def _assemble(
        self, figures: LedgerFigures, workers: Workers, running: list[RunningTask] | None
    ) -> HealthDocument:
        span, width = WINDOWS[figures.window]
        held = {o.subject: o for o in figures.open_incidents if o.kind in HELD_KINDS}
        candidates = _current_candidates(running, held)
        current = {a: _pick(ts) for a, ts in candidates.items()}
        titles = await self._titles(
            [t.workflow_id for t in current.values() if t.workflow_id not in held]
        )
        agents = []
        for name, f in figures.agents.items():
            config = self.settings.agents.get(name)
            task = current.get(name)
            agents.append(
                AgentHealth(
                    name=name,
                    role=config.role if config else "unknown",
                    adapter=config.adapter if config else "unknown",
                    available=f.available,
                    held=any(o.agent == name for o in held.values()),
                    last_sample_at=f.last_sample_at,
                    probe_detail=f.probe_detail,
                    samples=f.samples,
                    up_samples=f.up_samples,
                    uptime=f.up_samples / f.samples if f.samples else None,
                    attempts=f.attempts,
                    failed=f.failed,
                    error_rate=f.failed / f.attempts if f.attempts else None,
                    errors_by_kind=f.errors_by_kind,
                    running=len(candidates.get(name, [])),
                    current=None
                    if task is None
                    else CurrentTask(
                        workflow_id=task.workflow_id,
                        title=held[task.workflow_id].title
                        if task.workflow_id in held
                        else titles.get(task.workflow_id, task.workflow_id),
                        state=task.state,
                        since=task.started,
                        ui_url=self.link(task.workflow_id),
                    ),
                    trend=f.trend,
                )
            )
        for row in figures.incidents:
            row.ui_url = self.link(row.subject)
        states = Counter(t.state for ts in candidates.values() for t in ts)
        document = HealthDocument(
            generated_at=figures.now,
            window=figures.window,
            span_s=span,
            bucket_s=width,
            ui_url=self.ui_url if self.client is not None else None,
            agents=agents,
            incidents=figures.incidents,
            open_incidents=dict(Counter(o.kind for o in figures.open_incidents)),
            running_tasks=dict(states),
            seed=figures.seed,
            workers=workers,
            trend=figures.trend,
        )
        document.problems = self.problems(document)
        return document

    def problems(self, document: HealthDocument) -> list[str]:
        out = []
        workers = document.workers
        if not workers.reachable:
            out.append(workers.error or "Temporal unreachable")
        elif not workers.up:
            out.append(f"no live worker polls task queue {workers.task_queue}")
        interval = 60.0 / self.settings.time_scale
        for agent in document.agents:
            if agent.available is False:
                out.append(f"agent {agent.name} is down: {agent.probe_detail or 'probe failed'}")
            elif agent.last_sample_at is not None:
                silent = (document.generated_at - agent.last_sample_at).total_seconds()
                if silent > 3 * interval + 60:
                    out.append(f"agent {agent.name}: no health probe sample for {silent:.0f} s")
        return out


def _current_candidates(
    running: list[RunningTask] | None, held: dict[str, OpenIncident]
) -> dict[str, list[RunningTask]]:
    """Each agent's running tasks; an open stuck/blocked incident in the ledger sets the task's
    state at once (visibility may lag the ledger by a moment) and counts even before
    visibility lists the task."""
    out: dict[str, list[RunningTask]] = {}
    seen = set()
    for task in running or []:
        incident = held.get(task.workflow_id)
        if incident is not None and task.state not in ("escalated",):
            task = dataclasses.replace(task, state=incident.kind)
        out.setdefault(task.agent, []).append(task)
        seen.add(task.workflow_id)
    for subject, incident in held.items():
        if subject not in seen and incident.agent:
            out.setdefault(incident.agent, []).append(
                RunningTask(subject, incident.agent, incident.kind, incident.opened_at)
            )
    return out


def _aged(figures: LedgerFigures, now: datetime) -> LedgerFigures:
    """Unchanged figures as of ``now``: the incidents' ages move on."""
    incidents = [
        row.model_copy(update={"age_s": max(0.0, (now - row.opened_at).total_seconds())})
        for row in figures.incidents
    ]
    return dataclasses.replace(figures, now=now, incidents=incidents)


_URGENCY = {"blocked": 0, "escalated": 1, "stuck": 2}


def _pick(candidates: list[RunningTask]) -> RunningTask:
    """The task to show for an agent: the most urgent, then the newest."""
    newest_first = sorted(
        candidates, key=lambda t: t.started or datetime.min.replace(tzinfo=UTC), reverse=True
    )
    return min(newest_first, key=lambda t: _URGENCY.get(t.state, 9))
