"""AgentTask: one unit of agent work that heals itself.

Auto-retry (M2.1): each attempt is one ``agent.run`` activity. Its failure is classified, then the
next attempt waits on a durable timer and runs with a different strategy; an ``agent`` failure
moves the work to a peer, a ``permanent`` one stops at once. Infrastructure blips (a lost worker,
a network error reaching the agent) are retried by the activity's retry policy and never use up
a ladder step.

Blocker detection (M2.4): while an attempt runs, a durable timer is armed from the last progress,
so silence is noticed at the threshold itself. No progress for the first escalation step (15 min)
opens a ``stuck`` incident, and the task's state is ``stuck`` once the stuck threshold (30 min)
passes; the same fingerprint failing three times, or a ``mark_blocked`` signal, opens a
``blocked`` incident and pauses the ladder until it is resolved. Each incident runs an
``Escalation`` child; a final failure escalates straight to the lead.

Outcome (DESIGN §4): ``succeeded`` completes with the status document; ``failed`` fails the
execution with a non-retryable ``TaskFailed`` error carrying the status document, so the UI and
``handle.result()`` tell the truth.

Signals and Updates: ``mark_blocked``, ``acknowledge`` and ``resolve`` are both signals (for the
``temporal`` CLI and orchestrators; any body, or none, is taken or recorded in
``ignored_signals``) and Updates with validators (the ``selfheal`` CLI: the workflow decides and
the caller gets the answer). Both queue the same operation for the main loop, which carries it out.
"""

import asyncio
import contextlib
import functools
from datetime import datetime, timedelta
from typing import Any, Literal, TypeVar

from temporalio import workflow
from temporalio.common import RetryPolicy, SearchAttributeUpdate
from temporalio.exceptions import ActivityError, FailureError
from temporalio.exceptions import TimeoutError as TemporalTimeoutError
from temporalio.workflow import ActivityCancellationType

with workflow.unsafe.imports_passed_through():
    from pydantic import BaseModel

    from activities.agents import AgentActivities
    from activities.ledger import LedgerActivities
    from selfheal import search_attributes as sa
    from selfheal.durations import format_duration
    from selfheal.errors import ErrorKind, classify, fingerprint
    from selfheal.ids import escalation_workflow_id
    from selfheal.models import (
        FINAL_STATES,
        Acknowledge,
        AgentRunInput,
        AgentRunResult,
        AttemptLedgerEntry,
        AttemptRecord,
        AttemptStrategy,
        CloseIncident,
        Escalated,
        EscalationInput,
        EscalationRecord,
        IncidentRecord,
        IncidentSummary,
        IncidentUpdate,
        MarkBlocked,
        ReportProgress,
        Resolve,
        TaskAnswer,
        TaskInput,
        TaskState,
        TaskStatus,
    )
    from selfheal.outcome import task_failed
    from selfheal.policies import EscalationStepName
    from workflows.incidents import LEDGER_TIMEOUT, Incidents
    from workflows.learning_loop import LearningLoop
    from workflows.supervision import Op, Refused, Supervisor, Watch, parse, refusal
    from workflows.versions import Versions


# Which strategy a retry prefers after each kind of failure; the first not yet used is taken.
_PREFERENCE: dict[str, tuple[AttemptStrategy, ...]] = {
    "transient": ("same", "fresh", "alternative"),
    "agent": ("fresh", "same", "alternative"),
    "task": ("alternative", "fresh", "same"),
}
_STEP_ORDER = {"peer": 0, "lead": 1, "ceo": 2}
# The Updates (name: body model, the field a caller must give); each is also a signal.
_UPDATES: dict[str, tuple[type[BaseModel], str | None]] = {
    "mark_blocked": (MarkBlocked, "reason"),
    "acknowledge": (Acknowledge, "by"),
    "resolve": (Resolve, None),
}
M = TypeVar("M", bound=BaseModel)
IncidentKind = Literal["stuck", "blocked", "failed"]


# History size: an attempt costs about 15 events and the ladder has 4, and signals are folded
# into the main loop, so a task stays far below Temporal's history limits without
# continue-as-new (which would also split the task's story across runs in the UI).
@workflow.defn(name="AgentTask")
class AgentTask:
    @workflow.init
    def __init__(self, input: TaskInput) -> None:
        self._input = input
        self._status = TaskStatus(
            id=input.id,
            workflow_id=workflow.info().workflow_id,
            agent=input.agent,
            title=input.title,
            state="running",
            priority=input.priority,
            last_progress_at=workflow.now(),
        )
        self._supervisor = Supervisor(
            self._apply, self._watch, self._on_watch, self._status.ignored_signals
        )
        self._incidents = Incidents()
        self._incident: IncidentSummary | None = None  # the open (or acknowledged) one
        self._attempt_running = False
        self._agent = input.agent
        self._retry_at: datetime | None = None
        self._learning: LearningLoop | None = None
        self._versions = Versions()
        for name in _UPDATES:
            workflow.set_update_handler(
                name,
                functools.partial(self._ask, name),
                validator=functools.partial(self._validate, name),
            )

    # -- the ladder -----------------------------------------------------------------------------

    @workflow.run
    async def run(self, input: TaskInput) -> TaskStatus:
        self._ensure_search_attributes()
        self._versions = Versions.decide()
        self._incidents.decide_versions(self._versions)
        if self._versions.learning_loop:
            self._learning = LearningLoop(input, self._status.workflow_id)
            await self._learning.attach()
        try:
            await self._ladder(input)
        except asyncio.CancelledError:
            self._set_state("cancelled")
            await self._close_incident("cancelled", "task cancelled")
            self._describe("cancelled")
            await self._supervisor.settle("the task was cancelled")
            raise

        await self._supervisor.drain()
        await self._close_incident("finished", f"task {self._status.state}")
        if self._status.state == "failed":
            last = self._status.attempts[-1]
            await self._open_incident(
                "failed",
                f"failed after {len(self._status.attempts)} attempt(s): {last.error}",
                since=workflow.now(),
                first_step="lead",
            )
            if self._learning is not None:
                failed = [a.n for a in self._status.attempts if a.outcome == "failed"]
                await self._learning.ended_by(self._status.incidents[-1].key, failed, last)
        self._describe(f"{self._status.state} after {len(self._status.attempts)} attempt(s)")
        await self._supervisor.settle(f"the task has {self._status.state}")
        if self._status.state == "failed" and self._versions.failed_fails_execution:
            raise task_failed(self._status)
        return self._status

    async def _ladder(self, input: TaskInput) -> None:
        """The initial attempt and the retries: each waits while the task is blocked, runs under
        supervision, and ends the task or waits for the next rung."""
        kind: ErrorKind | None = None
        previous_error: str | None = None
        used: list[AttemptStrategy] = []
        for n in range(1, input.retry.max_attempts + 1):
            await self._supervisor.wait_until(lambda: not self._blocked())
            strategy = self._strategy(n, kind, used)
            if self._learning is not None and n > 1:
                strategy = await self._take_advice(self._learning, strategy)
            attempt = self._begin_attempt(n, strategy)
            used.append(attempt.strategy)
            result = await self._supervised_attempt(input, attempt, previous_error)
            state = await self._end_attempt(attempt, result)
            if attempt.outcome == "failed":
                await self._after_failure(attempt, state)
            if state != "retrying":
                return
            kind, previous_error = attempt.error_kind, attempt.error
            if kind == "agent":
                self._agent = self._peer_of(self._agent)
            await self._retry_wait(n, input.retry.waits[n - 1], kind, used)

    def _begin_attempt(self, n: int, strategy: AttemptStrategy) -> AttemptRecord:
        """Before an attempt: record it, and say who runs it how."""
        attempt = AttemptRecord(
            n=n, agent=self._agent, strategy=strategy, started_at=workflow.now()
        )
        if self._learning is not None:
            attempt.learnings = self._learning.learning_ids()
        self._status.attempts.append(attempt)
        self._status.last_progress_at = attempt.started_at
        if n > 1:
            self._set_state("running", agent=self._agent, attempt=n)
        self._describe(f"attempt {n} by {self._agent} ({strategy}) is running")
        return attempt

    async def _end_attempt(self, attempt: AttemptRecord, result: AgentRunResult) -> TaskState:
        """After an attempt: its outcome, the task's state (succeeded, failed or retrying), the
        ledger row; an attempt that ended ends a stall."""
        self._finish_attempt(attempt, result)
        self._status.last_progress_at = attempt.ended_at
        if self._incident is not None and self._incident.kind == "stuck":
            await self._close_incident("progress", f"attempt {attempt.n} {attempt.outcome}")
        kind = attempt.error_kind
        if attempt.outcome == "succeeded":
            self._status.result = result.output[-2000:] or "ok"
            state: TaskState = "succeeded"
        elif kind == "permanent" or attempt.n == self._input.retry.max_attempts:
            state = "failed"
        else:
            state = "retrying"
        self._set_state(state, error_kind=kind)
        await self._record(attempt, state)
        if self._learning is not None:
            await self._learning.after(attempt, self._failed_before(attempt))
        return state

    async def _after_failure(self, attempt: AttemptRecord, state: TaskState) -> None:
        """After every failed attempt (``state`` says whether it will be retried): the same
        error too often blocks a task that would retry it."""
        repeats = self._repeats(attempt)
        if state == "retrying" and repeats >= self._input.stuck.same_fingerprint_limit:
            await self._open_incident(
                "blocked", f"the same error {repeats} times: {attempt.error}", since=workflow.now()
            )

    async def _retry_wait(
        self, n: int, wait: float, kind: str | None, used: list[AttemptStrategy]
    ) -> None:
        next_strategy = self._strategy(n + 1, kind, used)
        self._retry_at = workflow.now() + timedelta(seconds=wait)
        self._describe(
            f"attempt {n} failed ({kind}): {self._status.attempts[-1].error}\n\n"
            f"retry {n + 1} by {self._agent} ({next_strategy}) at {self._retry_at:%H:%M:%S} UTC"
        )
        await self._supervisor.wait_until(
            lambda: False,
            until=self._retry_at,
            until_summary=f"wait {format_duration(wait)} before retry {n + 1} ({next_strategy})",
        )
        self._retry_at = None

    async def _supervised_attempt(
        self, input: TaskInput, attempt: AttemptRecord, previous_error: str | None
    ) -> AgentRunResult:
        asynchronous = input.adapter.kind == "http"
        run = AgentRunInput(
            workflow_id=self._status.workflow_id,
            task_id=input.id,
            title=input.title,
            description=input.description,
            agent=attempt.agent,
            attempt=attempt.n,
            strategy=attempt.strategy,
            previous_error=None if attempt.strategy == "fresh" else previous_error,
            hints=self._learning.hints() if self._learning else input.hints,
            context=input.context,
            adapter=input.adapter,
            timeout=input.retry.attempt_timeout,
            progress_interval=min(60.0, max(0.5, input.stuck.no_progress / 20)),
        )
        timeout = timedelta(seconds=input.retry.attempt_timeout)
        handle = workflow.start_activity_method(
            AgentActivities.run,
            run,
            # The adapter enforces the attempt timeout itself and reports it as a failure;
            # Temporal's timeouts only catch a lost worker (heartbeat) or a silent http agent.
            start_to_close_timeout=None if asynchronous else timeout + timedelta(minutes=1),
            schedule_to_close_timeout=timeout if asynchronous else None,
            heartbeat_timeout=(
                None if asynchronous else timedelta(seconds=input.retry.heartbeat_timeout)
            ),
            retry_policy=RetryPolicy(
                initial_interval=timedelta(seconds=1),
                maximum_interval=timedelta(seconds=30),
                maximum_attempts=input.retry.infra_retries,
            ),
            summary=f"{attempt.agent} attempt {attempt.n} ({attempt.strategy})",
            # A cancelled task ends once its attempt has settled, so the agent is stopped
            # before the task reports cancelled, and the attempt never completes against a
            # closed workflow (a core "Activity not found on completion" warning, or a
            # cancelled-as-not-found traceback in the worker).
            cancellation_type=(
                ActivityCancellationType.WAIT_CANCELLATION_COMPLETED
                if self._versions.wait_for_cancelled_attempt
                else ActivityCancellationType.TRY_CANCEL
            ),
        )
        self._attempt_running = True
        try:
            await self._supervisor.wait_until(handle.done)
            return await handle
        except ActivityError as err:
            if isinstance(err.cause, TemporalTimeoutError):
                return AgentRunResult(
                    outcome="failed",
                    error=f"agent {attempt.agent} gave no answer within "
                    f"{format_duration(input.retry.attempt_timeout)}",
                    error_kind="agent",
                )
            cause = err.cause
            message = cause.message if isinstance(cause, FailureError) else err.message
            type_name = getattr(cause, "type", None)
            return AgentRunResult(
                outcome="failed",
                error=f"infrastructure failure after {input.retry.infra_retries} tries: "
                f"{type_name or 'error'}: {message}",
                error_kind=classify(message, None, type_name),
            )
        except asyncio.CancelledError:
            handle.cancel()
            with contextlib.suppress(ActivityError, asyncio.CancelledError):
                await handle  # the agent was stopped, or it finished first
            raise
        finally:
            self._attempt_running = False

    # -- the no-progress watch ------------------------------------------------------------------

    def _watch(self) -> Watch:
        """The next no-progress deadline while an attempt runs: open the stuck incident at the
        first escalation step, mark the task stuck at the stuck threshold."""
        if not self._attempt_running or self._status.last_progress_at is None:
            return None, ""
        since = self._status.last_progress_at
        marks: list[tuple[datetime, str]] = []
        if self._incident is None:
            after = self._open_after()
            marks.append(
                (since + timedelta(seconds=after), f"no progress for {format_duration(after)}?")
            )
        elif self._incident.kind == "stuck" and self._incident.stuck_at is None:
            threshold = self._input.stuck.no_progress
            marks.append(
                (
                    since + timedelta(seconds=threshold),
                    f"stuck at {format_duration(threshold)} without progress?",
                )
            )
        return min(marks) if marks else (None, "")

    def _open_after(self) -> float:
        steps = self._input.escalation.steps
        first = steps[0].after if steps else self._input.stuck.no_progress
        return min(first, self._input.stuck.no_progress)

    async def _on_watch(self) -> None:
        if not self._attempt_running or self._status.last_progress_at is None:
            return
        silent = (workflow.now() - self._status.last_progress_at).total_seconds()
        if self._incident is None and silent >= self._open_after():
            await self._open_incident(
                "stuck",
                f"no progress for {format_duration(silent)}",
                since=self._status.last_progress_at,
            )
        incident = self._incident
        if (
            incident is not None
            and incident.kind == "stuck"
            and incident.stuck_at is None
            and silent >= self._input.stuck.no_progress
        ):
            incident.stuck_at = workflow.now()
            incident.reason = f"no progress for {format_duration(silent)}"
            if self._status.state != "escalated":
                self._set_state("stuck")
            self._describe(f"stuck: {incident.reason}")
            await self._incidents.flag_stuck(incident.escalation_id, incident.stuck_at)

    # -- incidents ------------------------------------------------------------------------------

    async def _apply(self, op: Op) -> str:
        signal = op.body
        if isinstance(signal, MarkBlocked):
            self._status.blocked_reason = signal.reason
            incident = self._incident
            if incident is not None and incident.kind == "blocked":
                op.incident = incident
                return f"already blocked (incident {incident.n})"
            if incident is not None:  # a stall becomes a block
                await self._close_incident("resolved", f"blocked instead: {signal.reason}")
            await self._open_incident("blocked", signal.reason, since=workflow.now())
            op.incident = self._incident
            return f"blocked: incident {self._status.incidents[-1].n} opened"
        if isinstance(signal, ReportProgress):
            incident = self._incident
            if incident and (incident.kind == "stuck" or signal.source == "person"):
                await self._close_incident("progress", signal.note or "progress reported")
                op.incident = incident
                return f"incident {incident.n} resolved by progress"
            return "progress noted"
        if isinstance(signal, Acknowledge):
            op.incident = await self._acknowledge(signal.by)
            return f"incident {op.incident.n} acknowledged by {signal.by}: no further steps"
        if isinstance(signal, Resolve):
            incident = self._incident
            if incident is None:
                raise Refused("no open incident")
            await self._close_incident("resolved", signal.note or "resolved")
            op.incident = incident
            return f"incident {incident.n} resolved"
        if isinstance(signal, Escalated):
            self._on_escalated(signal)
        return ""

    def _on_escalated(self, signal: Escalated) -> None:
        self._status.escalations.append(
            EscalationRecord(
                step=signal.step,
                target=signal.target,
                at=signal.at,
                incident=signal.incident,
            )
        )
        # Steps that fell due together (say, after a worker outage) may signal in any order;
        # the document lists them in ladder order.
        self._status.escalations.sort(key=lambda e: (e.incident, e.at, _STEP_ORDER[e.step]))
        self._incidents.fired(
            escalation_workflow_id(self._input.id, signal.incident),
            (e.step for e in self._status.escalations if e.incident == signal.incident),
        )
        if signal.step == "lead" and self._incident and self._incident.n == signal.incident:
            self._set_state("escalated")
        self._describe(f"escalated to {signal.step} {signal.target}")

    async def _open_incident(
        self,
        kind: IncidentKind,
        reason: str,
        since: datetime,
        first_step: EscalationStepName = "peer",
    ) -> None:
        input = self._input
        n = len(self._status.incidents) + 1
        key = f"{self._status.workflow_id}#{n}"
        escalation_id = escalation_workflow_id(input.id, n)
        now = workflow.now()
        incident = IncidentSummary(
            n=n,
            key=key,
            kind=kind,
            reason=reason,
            since=since,
            opened_at=now,
            escalation_id=escalation_id,
        )
        self._status.incidents.append(incident)
        last = next((a for a in reversed(self._status.attempts) if a.error), None)
        await self._incidents.record_open(
            IncidentRecord(
                key=key,
                kind=kind,
                subject=self._status.workflow_id,
                task_id=input.id,
                agent=self._agent,
                title=input.title,
                reason=reason,
                opened_at=now,
                details={
                    "since": since.isoformat(),
                    "fingerprint": last.fingerprint if last else None,
                },
            ),
            summary=f"ledger: open {kind} incident {n}",
        )
        peers = input.peers.get(self._agent, [])
        ladder = EscalationInput(
            incident_key=key,
            n=n,
            kind=kind,
            subject=self._status.workflow_id,
            task_id=input.id,
            title=input.title,
            agent=self._agent,
            peer=peers[0] if peers else None,
            lead=input.lead,
            reason=reason,
            last_error=last.error if last else None,
            since=since,
            ladder=input.escalation,
            first_step=first_step,
            attempts=self._status.attempts,
            retry=input.retry,
            stuck=input.stuck,
            lead_adapter=input.lead_adapter,
            peers=input.peers,
            time_scale=input.time_scale,
        )
        await self._incidents.escalate(
            escalation_id,
            ladder,
            summary=f"{kind} incident {n} of {self._status.workflow_id}: {reason[:120]}",
        )
        if kind == "failed":
            return
        self._incident = incident
        if kind == "blocked":
            self._set_state("blocked")
        self._describe(f"{kind}: {reason}")

    async def _acknowledge(self, by: str) -> IncidentSummary:
        incident = self._incident
        if incident is None or incident.status != "open":
            raise Refused("no open incident")
        incident.status, incident.acknowledged_by = "acknowledged", by
        self._status.notes.append(f"incident {incident.n} acknowledged by {by}")
        if not await self._incidents.acknowledge(incident.escalation_id, by):
            # its ladder ran out: the acknowledgement is recorded here
            await self._update_incident(incident, "acknowledged", by=by)
        self._describe(f"{incident.kind}, acknowledged by {by}")
        return incident

    async def _close_incident(self, reason: str, note: str) -> None:
        incident = self._incident
        if incident is None:
            return
        self._incident = None
        now = workflow.now()
        incident.status = "resolved" if reason in ("resolved", "progress") else "closed"
        incident.resolved_at, incident.resolution = now, note
        took = (now - incident.opened_at).total_seconds()
        if self._status.state in ("stuck", "blocked", "escalated"):
            self._set_state("retrying" if self._retry_at else "running")
        self._status.blocked_reason = None
        self._describe(f"incident {incident.n} {incident.status} after {format_duration(took)}")
        await self._update_incident(
            incident, incident.status, note=note, details={"time_to_resolve_s": took}
        )
        await self._incidents.close(
            incident.escalation_id,
            CloseIncident(reason=reason, note=note),
        )

    async def _update_incident(
        self,
        incident: IncidentSummary,
        status: str,
        *,
        by: str | None = None,
        note: str | None = None,
        details: dict[str, Any] | None = None,
    ) -> None:
        await self._incidents.record_update(
            IncidentUpdate(
                key=incident.key,
                status=status,
                at=workflow.now(),
                by=by,
                note=note,
                details=details or {},
            ),
            summary=f"ledger: incident {incident.n} {status}",
        )

    def _blocked(self) -> bool:
        return self._incident is not None and self._incident.kind == "blocked"

    def _repeats(self, attempt: AttemptRecord) -> int:
        return sum(1 for a in self._status.attempts if a.fingerprint == attempt.fingerprint)

    # -- signals and query ----------------------------------------------------------------------

    @workflow.query
    def status(self) -> TaskStatus:
        return self._status.model_copy(update={"next_step": self._next_step()})

    # Every signal takes any body, or none (the `temporal workflow signal` default): ``*_extra``
    # absorbs surplus payloads, so no input ever fails a workflow task.
    @workflow.signal
    def mark_blocked(self, body: Any = None, *_extra: Any) -> None:
        self._enqueue("mark_blocked", MarkBlocked, body)

    @workflow.signal
    def report_progress(self, body: Any = None, *_extra: Any) -> None:
        if self._enqueue("report_progress", ReportProgress, body):
            self._status.last_progress_at = workflow.now()

    @workflow.signal
    def acknowledge(self, body: Any = None, *_extra: Any) -> None:
        self._enqueue("acknowledge", Acknowledge, body)

    @workflow.signal
    def resolve(self, body: Any = None, *_extra: Any) -> None:
        self._enqueue("resolve", Resolve, body)

    @workflow.signal
    def escalated(self, body: Any = None, *_extra: Any) -> None:
        self._enqueue("escalated", Escalated, body)

    def _enqueue(self, name: str, model: type[M], body: Any) -> M | None:
        """Queue a signal for the main loop. A finished task ignores signals; a malformed body
        is recorded in ``ignored_signals`` and never fails the workflow."""
        if self._status.state in FINAL_STATES:
            return None
        try:
            signal = parse(name, model, body)
        except Refused as malformed:
            self._status.ignored_signals.append(str(malformed))
            workflow.logger.warning("ignored malformed signal: %s", malformed)
            return None
        if isinstance(signal, ReportProgress) and signal.note and signal.source == "person":
            self._status.notes.append(f"progress: {signal.note}")
        self._supervisor.enqueue(name, signal)
        return signal

    # The same operations as Updates (registered in ``__init__`` from ``_UPDATES``): the validator
    # refuses what cannot apply now (a finished task, a malformed body, no open incident), and the
    # answer says what the workflow did.
    def _validate(self, name: str, body: Any = None) -> None:
        model, required = _UPDATES[name]
        self._check(name, model, body, required=required)
        if name == "acknowledge" and (self._incident is None or self._incident.status != "open"):
            raise refusal(f"task {self._status.id} has no open incident", "NoOpenIncident")
        if name == "resolve" and self._incident is None:
            raise refusal(
                f"task {self._status.id} has no open or acknowledged incident", "NoOpenIncident"
            )

    def _check(self, name: str, model: type[M], body: Any, required: str | None = None) -> M:
        if self._status.state in FINAL_STATES:
            raise refusal(
                f"task {self._status.id} has finished ({self._status.state}); {name} ignored",
                "TaskFinished",
            )
        try:
            parsed = parse(name, model, body)
        except Refused as malformed:
            raise refusal(str(malformed), "MalformedBody") from None
        if required and required not in parsed.model_fields_set:
            raise refusal(f"{name}: {required}: required", "MalformedBody")
        return parsed

    async def _ask(self, name: str, body: Any = None) -> TaskAnswer:
        model, _ = _UPDATES[name]
        op = await self._supervisor.ask(name, self._check(name, model, body))
        if op.refused is not None:
            # Decided when its turn came: the state may have changed since it was accepted.
            raise refusal(f"task {self._status.id}: {op.refused}", "Refused")
        return TaskAnswer(
            workflow_id=self._status.workflow_id,
            operation=name,
            message=op.answer,
            state=self._status.state,
            incident=op.incident.model_copy() if op.incident else None,
        )

    def _next_step(self) -> str | None:
        incident = self._incident
        if incident is None or incident.status != "open":
            return None
        fired = {e.step for e in self._status.escalations if e.incident == incident.n}
        for step in self._input.escalation.steps:
            if step.step not in fired:
                at = incident.since + timedelta(seconds=step.after)
                return f"{step.step} at {at:%H:%M:%S} UTC"
        return None

    # -- helpers --------------------------------------------------------------------------------

    def _finish_attempt(self, attempt: AttemptRecord, result: AgentRunResult) -> None:
        attempt.ended_at = workflow.now()
        attempt.outcome = result.outcome
        if result.outcome == "failed":
            error = (result.error or "failed without a message")[-2000:]
            kind: ErrorKind = result.error_kind or classify(error, result.exit_code)
            attempt.error, attempt.error_kind = error, kind
            attempt.fingerprint = fingerprint(kind, error)

    def _strategy(self, n: int, kind: str | None, used: list[AttemptStrategy]) -> AttemptStrategy:
        if n == 1:
            return "initial"
        rung = self._input.retry.strategies[n - 2]
        preference = _PREFERENCE.get(kind or "", (rung,))
        return next((s for s in preference if s not in used), rung)

    def _peer_of(self, agent: str) -> str:
        peers = self._input.peers.get(agent, [])
        tried = {a.agent for a in self._status.attempts}
        return next((p for p in peers if p not in tried), peers[0] if peers else agent)

    async def _record(self, attempt: AttemptRecord, state: TaskState) -> None:
        await workflow.execute_local_activity_method(
            LedgerActivities.record_attempt,
            AttemptLedgerEntry(
                workflow_id=self._status.workflow_id,
                task_id=self._status.id,
                title=self._status.title,
                priority=self._status.priority,
                task_state=state,
                attempt=attempt,
                context=self._failure_context(attempt),
            ),
            start_to_close_timeout=LEDGER_TIMEOUT,
            summary=f"ledger: attempt {attempt.n} {attempt.outcome}",
        )

    def _failure_context(self, attempt: AttemptRecord) -> dict[str, Any]:
        loop = self._learning
        hints = loop.hints() if loop else self._input.hints
        return {
            "strategy": attempt.strategy,
            "hints": [h.model_dump(mode="json") for h in hints],
            **(loop.context(attempt) if loop else {}),
        }

    async def _take_advice(self, loop: LearningLoop, strategy: AttemptStrategy) -> AttemptStrategy:
        """After a failure whose fingerprint has a learning, the next attempt follows its
        advice: its strategy, and for an ``agent`` fault its agent (a peer that is not the one
        that just failed)."""
        failed = self._status.attempts[-1]
        learning = await loop.advise(failed)
        if learning is None:
            return strategy
        advice = learning.advice
        if (
            failed.error_kind == "agent"
            and advice.agent
            and advice.agent != failed.agent
            and advice.agent in self._input.peers
        ):
            self._agent = advice.agent
        self._status.notes.append(f"attempt {failed.n + 1} follows learning {learning.id}")
        return advice.strategy or strategy

    def _failed_before(self, attempt: AttemptRecord) -> list[int]:
        return [a.n for a in self._status.attempts if a.n < attempt.n and a.outcome == "failed"]

    def _ensure_search_attributes(self) -> None:
        """Starters set these at start; a task started without them sets them here."""
        if workflow.info().typed_search_attributes.get(sa.STATE) is None:
            workflow.upsert_search_attributes(
                [
                    sa.KIND.value_set("task"),
                    sa.AGENT.value_set(self._input.agent),
                    sa.STATE.value_set("running"),
                    sa.ATTEMPT.value_set(1),
                ]
            )

    def _set_state(
        self,
        state: TaskState,
        *,
        agent: str | None = None,
        attempt: int | None = None,
        error_kind: str | None = None,
    ) -> None:
        if state in ("running", "retrying") and self._incident is not None:
            state = self._status.state  # an open incident's state stands until it closes
        self._status.state = state
        updates: list[SearchAttributeUpdate[Any]] = [sa.STATE.value_set(state)]
        if agent is not None:
            updates.append(sa.AGENT.value_set(agent))
        if attempt is not None:
            updates.append(sa.ATTEMPT.value_set(attempt))
        if error_kind is not None:
            updates.append(sa.ERROR_KIND.value_set(error_kind))
        workflow.upsert_search_attributes(updates)

    def _describe(self, details: str) -> None:
        next_step = self._next_step()
        suffix = f"\n\nnext escalation: {next_step}" if next_step else ""
        workflow.set_current_details(f"**{self._status.state}** · {details}{suffix}")
