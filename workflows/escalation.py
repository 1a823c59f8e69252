"""Escalation: one incident's ladder (M2.4) — ping the peer, dispatch the lead, alert the CEO.

Started by the workflow the incident is about (its ``subject``) with a snapshot of the ladder.
Each step fires once, at ``since + after``; ``acknowledge`` stops further steps; ``close`` ends
the incident. Notices are sent by activities that retry for as long as an endpoint is down, but
the ladder never waits for them: its timers keep their times.

Every signal takes any body, or none: a missing one takes the defaults (``close`` with no body
closes the incident as resolved), a malformed one is recorded in the outcome's
``ignored_signals``. The subject of a ``failed`` incident has ended: it is not signalled.
"""

import asyncio
import contextlib
from collections.abc import Callable, Coroutine
from datetime import timedelta
from typing import Any, TypeVar

from temporalio import workflow
from temporalio.common import RetryPolicy
from temporalio.exceptions import WorkflowAlreadyStartedError
from temporalio.workflow import ParentClosePolicy

with workflow.unsafe.imports_passed_through():
    from pydantic import BaseModel

    from activities.ledger import LedgerActivities
    from activities.notify import NotifyActivities
    from selfheal import search_attributes as sa
    from selfheal.durations import format_duration
    from selfheal.ids import task_workflow_id
    from selfheal.models import (
        Acknowledge,
        CloseIncident,
        Escalated,
        EscalationInput,
        EscalationOutcome,
        EscalationRecord,
        IncidentUpdate,
        Notice,
        TaskInput,
    )
    from selfheal.policies import EscalationStep
    from selfheal.task_options import task_options
    from workflows.supervision import Refused, parse


M = TypeVar("M", bound=BaseModel)

_STUCK_FLAG_GRACE = 5.0
# What each step's notice says (Slack mrkdwn).
_TEXTS = {
    "peer": ":eyes: {agent}'s task *{title}* ({subject}) is {kind}: {reason}. "
    "Could you take a look?",
    "lead": ":rotating_light: {agent}'s task *{title}* ({subject}) is {kind}: {reason}. "
    "Dispatched to you as {lead_workflow_id}.",
    "ceo": ":fire: Escalated to the CEO channel: {agent}'s task *{title}* ({subject}) has been "
    "{kind} since {since:%Y-%m-%d %H:%M} UTC: {reason}",
}
# A failed task has ended before its escalation fires: its steps are not signalled to it.
_PATCH_QUIET_SUBJECT = "no-escalated-signal-to-a-finished-task"
_NOTIFY_RETRY = RetryPolicy(
    initial_interval=timedelta(seconds=1),
    backoff_coefficient=2.0,
    maximum_interval=timedelta(seconds=60),
    maximum_attempts=0,  # for as long as the endpoint is down
)


@workflow.defn(name="Escalation")
class Escalation:
    @workflow.init
    def __init__(self, input: EscalationInput) -> None:
        self._input = input
        self._outcome = EscalationOutcome(incident_key=input.incident_key)
        self._acknowledged: Acknowledge | None = None
        self._closed: CloseIncident | None = None
        self._pending: list[asyncio.Future[Any]] = []
        self._stuck_flagged = False

    @workflow.run
    async def run(self, input: EscalationInput) -> EscalationOutcome:
        workflow.upsert_search_attributes(
            [
                sa.KIND.value_set("escalation"),
                sa.AGENT.value_set(input.agent),
                sa.STATE.value_set("escalated"),
            ]
        )
        for step in self._steps():
            fire_at = input.since + timedelta(seconds=step.after - self._offset())
            wait = max(0.0, (fire_at - workflow.now()).total_seconds())
            self._describe(f"next: {step.step} at {fire_at:%H:%M:%S} UTC")
            after_flag = self._after_stuck_flag(step)
            if after_flag:
                wait += _STUCK_FLAG_GRACE
            if wait > 0:
                with contextlib.suppress(TimeoutError):
                    await workflow.wait_condition(
                        self._woken(after_flag),
                        timeout=timedelta(seconds=wait),
                        timeout_summary=f"{step.step} step in {format_duration(wait)}"
                        + (" (or once the task is flagged stuck)" if after_flag else ""),
                    )
            if self._over():
                break
            await self._fire(step)

        if self._acknowledged and not self._closed:
            await workflow.execute_local_activity_method(
                LedgerActivities.update_incident,
                IncidentUpdate(
                    key=input.incident_key,
                    status="acknowledged",
                    at=workflow.now(),
                    by=self._acknowledged.by,
                ),
                start_to_close_timeout=timedelta(seconds=30),
            )
        self._describe(
            "closed"
            if self._closed
            else "acknowledged"
            if self._acknowledged
            else "all steps fired"
        )
        if self._pending:
            await asyncio.gather(*self._pending)
        return self._outcome

    @workflow.signal
    def acknowledge(self, body: Any = None, *_extra: Any) -> None:
        signal = self._parse("acknowledge", Acknowledge, body)
        if signal and not self._acknowledged:
            self._acknowledged = signal
            self._outcome.acknowledged_by = signal.by

    @workflow.signal
    def close(self, body: Any = None, *_extra: Any) -> None:
        signal = self._parse("close", CloseIncident, body)
        if signal:
            self._closed = self._closed or signal
            self._outcome.closed = self._closed.reason

    @workflow.signal
    def stuck(self, body: Any = None, *_extra: Any) -> None:
        """From the subject: it has just flagged itself stuck (the body is not read)."""
        self._stuck_flagged = True

    def _parse(self, name: str, model: type[M], body: Any) -> M | None:
        try:
            return parse(name, model, body)
        except Refused as malformed:
            self._outcome.ignored_signals.append(str(malformed))
            workflow.logger.warning("ignored malformed signal: %s", malformed)
            return None

    def _after_stuck_flag(self, step: EscalationStep) -> bool:
        """A stall's step that falls due at the stuck threshold itself (the lead, by default)
        fires once the task has flagged itself stuck: detect, then escalate, rather than race
        the task for the same instant. If the flag is slow to come, the step fires anyway
        ``_STUCK_FLAG_GRACE`` seconds later."""
        input = self._input
        return (
            input.kind == "stuck"
            and self._offset() == 0
            and step.after == input.stuck.no_progress
            and not self._stuck_flagged
        )

    @workflow.query
    def outcome(self) -> EscalationOutcome:
        return self._outcome

    def _woken(self, by_stuck_flag: bool) -> Callable[[], bool]:
        """A step's wait ends early when the incident is over, or, for a step that waits for
        it, once the task has flagged itself stuck."""
        return lambda: self._over() or (by_stuck_flag and self._stuck_flagged)

    def _over(self) -> bool:
        return self._acknowledged is not None or self._closed is not None

    def _steps(self) -> list[EscalationStep]:
        return self._input.ladder_steps()

    def _offset(self) -> float:
        """A ladder that starts at a later step (a final failure goes straight to the lead)
        fires that step at once; the later steps keep their spacing."""
        steps = self._steps()
        return steps[0].after if steps and self._input.first_step != "peer" else 0.0

    async def _fire(self, step: EscalationStep) -> None:
        """Fire one step. Its commands (dispatch, notice, the subject's signal) go out in one
        workflow task; the next step's timer does not wait for any of them."""
        input = self._input
        target = input.target(step.step)
        if not target:
            return
        lead_workflow_id = None
        if step.step == "lead":
            lead_workflow_id = task_workflow_id(f"lead-{input.task_id}-{input.n}")
            self._background(self._dispatch_lead(target, lead_workflow_id))
        self._notify(target, step.step, self._text(step.step, lead_workflow_id))
        record = EscalationRecord(
            step=step.step, target=target, at=workflow.now(), incident=input.n
        )
        self._outcome.steps.append(record)
        if input.kind == "failed" and workflow.patched(_PATCH_QUIET_SUBJECT):
            return
        self._background(
            self._tell_subject(
                Escalated(
                    incident=input.n,
                    step=step.step,
                    target=target,
                    at=record.at,
                    lead_workflow_id=lead_workflow_id,
                )
            )
        )

    def _background(self, work: Coroutine[Any, Any, None]) -> None:
        self._pending.append(asyncio.ensure_future(work))

    def _notify(self, target: str, step: str, text: str) -> None:
        notice = Notice(
            target=target,
            text=text,
            idempotency_key=f"{self._input.incident_key}:{step}",
            incident_key=self._input.incident_key,
            step=step,
            fields={
                "task": self._input.subject,
                "agent": self._input.agent,
                "reason": self._input.reason[:200],
            },
        )
        self._pending.append(
            workflow.start_activity_method(
                NotifyActivities.send,
                notice,
                start_to_close_timeout=timedelta(seconds=30),
                schedule_to_close_timeout=timedelta(days=1),
                retry_policy=_NOTIFY_RETRY,
                summary=f"notify {target} ({step})",
            )
        )

    async def _dispatch_lead(self, lead: str, workflow_id: str) -> None:
        input = self._input
        task = TaskInput(
            id=workflow_id.removeprefix("task-"),
            agent=lead,
            title=f"Unblock {input.agent}: {input.title}",
            description=f"{input.kind}: {input.reason}",
            priority="high",
            adapter=input.lead_adapter,
            peers=input.peers,
            lead=None,
            retry=input.retry,
            stuck=input.stuck,
            escalation=input.ladder,
            context={
                "escalated_task_id": input.task_id,
                "escalated_workflow_id": input.subject,
                "incident": input.incident_key,
                "kind": input.kind,
                "reason": input.reason,
                "last_error": input.last_error,
                "attempts": [a.model_dump(mode="json") for a in input.attempts],
                **input.context,
            },
            time_scale=input.time_scale,
        )
        # Already started before a worker restart: the same lead task, not a second one.
        with contextlib.suppress(WorkflowAlreadyStartedError):
            # By name: AgentTask starts Escalation, and importing it back would be a cycle.
            await workflow.start_child_workflow(
                "AgentTask",
                task,
                **task_options(
                    task,
                    workflow.info().task_queue,
                    summary=f"{lead}: unblock {input.agent}'s task {input.task_id}",
                ),
                parent_close_policy=ParentClosePolicy.ABANDON,
            )

    async def _tell_subject(self, signal: Escalated) -> None:
        try:  # by name: the subject is an AgentTask or a CommitGuard, and both take it
            await workflow.get_external_workflow_handle(self._input.subject).signal(
                "escalated", signal
            )
        except Exception:  # the subject may have finished; the ladder goes on regardless
            workflow.logger.info(
                "subject %s did not take the escalated signal", self._input.subject
            )

    def _text(self, step: str, lead_workflow_id: str | None = None) -> str:
        # The templates name the input's fields (agent, title, subject, kind, reason, since).
        return _TEXTS[step].format(**dict(self._input), lead_workflow_id=lead_workflow_id)

    def _describe(self, details: str) -> None:
        i = self._input
        fired = ", ".join(f"{s.step}→{s.target}" for s in self._outcome.steps) or "none yet"
        workflow.set_current_details(
            f"**{i.kind}** {i.subject}: {i.reason}\n\nsteps fired: {fired}\n\n{details}"
        )
