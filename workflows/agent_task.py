"""AgentTask: one unit of agent work that retries itself on a declared ladder (M2.1).

Each attempt is one ``agent.run`` activity. Its failure is classified, then the next attempt waits
on a durable timer and runs with a different strategy; an ``agent`` failure moves the work to a
peer, a ``permanent`` one stops at once. Infrastructure blips (a lost worker, a network error
reaching the agent) are retried by the activity's retry policy and never use up a ladder step.
"""

from datetime import timedelta
from typing import Any, TypeVar

from temporalio import workflow
from temporalio.common import RetryPolicy, SearchAttributeUpdate
from temporalio.exceptions import ActivityError, TimeoutError

with workflow.unsafe.imports_passed_through():
    from pydantic import BaseModel, ValidationError

    from selfheal import search_attributes as sa
    from selfheal.durations import format_duration
    from selfheal.errors import ErrorKind, classify, fingerprint
    from selfheal.ids import Activities
    from selfheal.models import (
        FINAL_STATES,
        Acknowledge,
        AgentRunInput,
        AgentRunResult,
        AttemptLedgerEntry,
        AttemptRecord,
        AttemptStrategy,
        MarkBlocked,
        ReportProgress,
        Resolve,
        TaskInput,
        TaskState,
        TaskStatus,
    )

# Which strategy a retry prefers after each kind of failure; the first not yet used is taken.
_PREFERENCE: dict[str, tuple[AttemptStrategy, ...]] = {
    "transient": ("same", "fresh", "alternative"),
    "agent": ("fresh", "same", "alternative"),
    "task": ("alternative", "fresh", "same"),
}
_LEDGER_TIMEOUT = timedelta(seconds=30)
M = TypeVar("M", bound=BaseModel)


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

    @workflow.run
    async def run(self, input: TaskInput) -> TaskStatus:
        self._ensure_search_attributes()
        agent, kind, previous_error = input.agent, None, None
        used: list[AttemptStrategy] = []
        for n in range(1, input.retry.max_attempts + 1):
            strategy = self._strategy(n, kind, used)
            used.append(strategy)
            attempt = AttemptRecord(n=n, agent=agent, strategy=strategy, started_at=workflow.now())
            self._status.attempts.append(attempt)
            if n > 1:
                self._set_state("running", agent=agent, attempt=n)
            self._describe(f"attempt {n} by {agent} ({strategy}) is running")

            result = await self._run_attempt(input, attempt, previous_error)
            self._finish_attempt(attempt, result)
            self._status.last_progress_at = attempt.ended_at
            kind = attempt.error_kind
            last = n == input.retry.max_attempts
            if attempt.outcome == "succeeded":
                self._status.result = result.output[-2000:] or "ok"
                state: TaskState = "succeeded"
            elif kind == "permanent" or last:
                state = "failed"
            else:
                state = "retrying"
            self._set_state(state, error_kind=kind)
            await self._record(attempt, state)
            if state != "retrying":
                break

            wait = input.retry.waits[n - 1]
            previous_error = attempt.error
            if kind == "agent":
                agent = self._peer_of(agent)
            next_strategy = self._strategy(n + 1, kind, used)
            self._describe(
                f"attempt {n} failed ({kind}): {attempt.error}\n\n"
                f"retry {n + 1} by {agent} ({next_strategy}) in {format_duration(wait)}"
            )
            await workflow.sleep(
                timedelta(seconds=wait),
                summary=f"wait {format_duration(wait)} before retry {n + 1} ({next_strategy})",
            )

        self._describe(f"{self._status.state} after {len(self._status.attempts)} attempt(s)")
        return self._status

    @workflow.query
    def status(self) -> TaskStatus:
        return self._status

    @workflow.signal
    def mark_blocked(self, body: Any) -> None:
        signal = self._accept("mark_blocked", MarkBlocked, body)
        if signal:
            self._status.blocked_reason = signal.reason
            self._status.notes.append(f"blocked: {signal.reason}")
            self._set_state("blocked")

    @workflow.signal
    def report_progress(self, body: Any) -> None:
        signal = self._accept("report_progress", ReportProgress, body)
        if signal:
            self._status.last_progress_at = workflow.now()
            if signal.note and signal.source == "person":
                self._status.notes.append(f"progress: {signal.note}")

    @workflow.signal
    def acknowledge(self, body: Any) -> None:
        signal = self._accept("acknowledge", Acknowledge, body)
        if signal:
            self._status.notes.append(f"acknowledged by {signal.by}")

    @workflow.signal
    def resolve(self, body: Any) -> None:
        signal = self._accept("resolve", Resolve, body)
        if signal:
            self._status.notes.append(f"resolved: {signal.note}" if signal.note else "resolved")

    def _accept(self, name: str, model: type[M], body: Any) -> M | None:
        """The validated signal body, or None: a finished task ignores signals, a malformed body
        is recorded in ``ignored_signals`` and never fails the workflow."""
        if self._status.state in FINAL_STATES:
            return None
        try:
            return model.model_validate(body if body is not None else {})
        except ValidationError as err:
            first = err.errors()[0]
            where = ".".join(str(p) for p in first["loc"]) or "body"
            self._status.ignored_signals.append(f"{name}: {where}: {first['msg']}")
            workflow.logger.warning("ignored malformed %s signal: %s", name, first["msg"])
            return None

    async def _run_attempt(
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
            hints=input.hints,
            context=input.context,
            adapter=input.adapter,
            timeout=input.retry.attempt_timeout,
            progress_interval=min(60.0, max(0.5, input.stuck.no_progress / 20)),
        )
        timeout = timedelta(seconds=input.retry.attempt_timeout)
        try:
            return await workflow.execute_activity(
                Activities.RUN_AGENT,
                run,
                result_type=AgentRunResult,
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
            )
        except ActivityError as err:
            if isinstance(err.cause, TimeoutError):
                return AgentRunResult(
                    outcome="failed",
                    error=f"agent {attempt.agent} gave no answer within "
                    f"{format_duration(input.retry.attempt_timeout)}",
                    error_kind="agent",
                )
            cause = err.cause.message if err.cause else err.message
            return AgentRunResult(
                outcome="failed",
                error=f"infrastructure failure after {input.retry.infra_retries} tries: {cause}",
                error_kind="transient",
            )

    def _finish_attempt(self, attempt: AttemptRecord, result: AgentRunResult) -> None:
        attempt.ended_at = workflow.now()
        attempt.outcome = result.outcome
        if result.outcome == "failed":
            error = (result.error or "failed without a message")[-2000:]
            kind: ErrorKind = result.error_kind or classify(error, result.exit_code)
            attempt.error, attempt.error_kind = error, kind
            attempt.fingerprint = fingerprint(kind, error)

    def _strategy(
        self, n: int, kind: str | None, used: list[AttemptStrategy]
    ) -> AttemptStrategy:
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
        await workflow.execute_local_activity(
            Activities.RECORD_ATTEMPT,
            AttemptLedgerEntry(
                workflow_id=self._status.workflow_id,
                task_id=self._status.id,
                title=self._status.title,
                priority=self._status.priority,
                task_state=state,
                attempt=attempt,
                context={"strategy": attempt.strategy, "hints": self._input.hints},
            ),
            start_to_close_timeout=_LEDGER_TIMEOUT,
            summary=f"ledger: attempt {attempt.n} {attempt.outcome}",
        )

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
        workflow.set_current_details(f"**{self._status.state}** · {details}")
