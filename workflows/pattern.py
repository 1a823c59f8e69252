"""Pattern: the long-lived entity of one failure fingerprint (``pattern-<fingerprint>``).

Every failed attempt of every AgentTask signals-with-start the entity of its fingerprint
(``occurred``). It counts the occurrences within the window and, at ``min_occurrences``, publishes
the learning at once — the next dispatch gets it within seconds, not a week later. A published
pattern that recurs more than ``max_repeats_after_learning`` times is ``regressed``: it opens one
incident ("the learning for X is not working") that escalates on the Escalation ladder. A
pattern not seen for ``retire_after`` retires itself and the entity ends; a later occurrence
starts it again from the ledger. The entity continues-as-new every ``max_events`` signals (or
when Temporal suggests it), so its history stays small however often the mistake recurs.
"""

import contextlib
from datetime import timedelta
from typing import Any

from temporalio import workflow
from temporalio.common import SearchAttributeUpdate
from temporalio.exceptions import WorkflowAlreadyStartedError
from temporalio.workflow import ParentClosePolicy

with workflow.unsafe.imports_passed_through():
    from pydantic import BaseModel, ValidationError

    from activities.learning import LearningActivities
    from activities.ledger import LedgerActivities
    from selfheal import search_attributes as sa
    from selfheal.ids import escalation_workflow_id
    from selfheal.learning import (
        Occurrence,
        PatternEvent,
        PatternState,
        decide,
        observe,
        pattern_workflow_id,
    )
    from selfheal.models import CloseIncident, Escalated, EscalationInput, IncidentRecord
    from selfheal.patterns import (
        LoadPattern,
        PatternCommand,
        PatternInput,
        PublishInput,
        StatusChange,
    )
    from workflows.escalation import Escalation

_LEDGER = timedelta(seconds=30)


@workflow.defn(name="Pattern")
class Pattern:
    @workflow.init
    def __init__(self, input: PatternInput) -> None:
        self._input = input
        self._state: PatternState | None = input.state
        self._inbox: list[tuple[str, BaseModel]] = []
        self._handled = 0
        self._last_occurrence: Occurrence | None = None
        self._shown: str | None = None

    @workflow.run
    async def run(self, input: PatternInput) -> PatternState:
        if self._state is None:
            self._state = await workflow.execute_local_activity_method(
                LearningActivities.load_pattern,
                LoadPattern(
                    fingerprint=input.fingerprint,
                    kind=input.kind,
                    template=input.template,
                    window=input.policy.window,
                    min_occurrences=input.policy.min_occurrences,
                ),
                start_to_close_timeout=_LEDGER,
                summary="ledger: what is known of this fingerprint",
            )
        state = self._state
        await self._act(decide(state, input.policy), None)  # owed from what the ledger had
        self._show()
        while True:
            if state.status == "retired" and not self._inbox:
                await workflow.wait_condition(workflow.all_handlers_finished)
                if not self._inbox:  # the ledger has it; a new occurrence starts it again
                    return state
            idle = self._idle_left()
            if idle == timedelta(0) and not self._inbox:
                await self._retire(PatternCommand(reason="not seen for retire_after"))
                self._show()
                continue
            with contextlib.suppress(TimeoutError):
                await workflow.wait_condition(
                    lambda: bool(self._inbox) or self._should_continue_as_new(),
                    timeout=idle,
                    timeout_summary="retire when not seen for retire_after",
                )
            await self._handle_inbox()
            if self._should_continue_as_new():
                await workflow.wait_condition(workflow.all_handlers_finished)
                await self._handle_inbox()  # nothing received is lost across the new run
                workflow.continue_as_new(input.model_copy(update={"state": state}))

    def _idle_left(self) -> timedelta | None:
        state = self._state
        if state is None or state.status == "retired" or state.last_seen is None:
            return None
        due = state.last_seen + timedelta(seconds=self._input.policy.retire_after)
        return max(timedelta(0), due - workflow.now())

    def _should_continue_as_new(self) -> bool:
        return self._handled >= self._input.max_events or (
            workflow.info().is_continue_as_new_suggested()
        )

    async def _handle_inbox(self) -> None:
        while self._inbox:
            name, body = self._inbox.pop(0)
            self._handled += 1
            if isinstance(body, Occurrence):
                await self._occurred(body)
            elif isinstance(body, PatternCommand) and name == "retire":
                await self._retire(body)
            elif isinstance(body, PatternCommand) and name == "republish":
                await self._republish(body)
            self._show()

    async def _occurred(self, occurrence: Occurrence) -> None:
        assert self._state is not None
        if occurrence.fingerprint != self._input.fingerprint:
            return
        self._last_occurrence = occurrence
        await self._act(observe(self._state, occurrence, self._input.policy), occurrence)

    async def _act(self, event: PatternEvent, occurrence: Occurrence | None) -> None:
        assert self._state is not None
        if event == "publish":
            learning = await workflow.execute_activity_method(
                LearningActivities.publish,
                PublishInput(state=self._state, policy=self._input.policy, at=workflow.now()),
                start_to_close_timeout=_LEDGER,
                summary=f"publish the learning after {self._state.occurrences} occurrences",
            )
            self._state.status = "published"
            self._state.published_at = learning.published_at or workflow.now()
            self._state.learning_id = learning.id
            self._state.repeats = 0
        elif event == "regress":
            await self._regress(occurrence)

    async def _regress(self, occurrence: Occurrence | None) -> None:
        state, input = self._state, self._input
        assert state is not None
        n = state.regressions
        subject = pattern_workflow_id(input.fingerprint)
        key = f"{subject}#{n}"
        agent = occurrence.agent if occurrence else (state.agents[-1] if state.agents else "")
        reason = (
            f"the learning for {input.template[:120]!r} is not working: it recurred "
            f"{state.repeats} times after it was published"
        )
        await workflow.execute_activity_method(
            LearningActivities.set_status,
            StatusChange(
                fingerprint=input.fingerprint, status="regressed", at=workflow.now(), reason=reason
            ),
            start_to_close_timeout=_LEDGER,
            summary="ledger: the learning regressed",
        )
        await workflow.execute_local_activity_method(
            LedgerActivities.open_incident,
            IncidentRecord(
                key=key,
                kind="regressed",
                subject=subject,
                task_id=subject,
                agent=agent or None,
                title=f"the learning for {input.fingerprint} is not working",
                reason=reason,
                opened_at=workflow.now(),
                details={"fingerprint": input.fingerprint, "learning_id": state.learning_id},
            ),
            start_to_close_timeout=_LEDGER,
            summary=f"ledger: open regression incident {n}",
        )
        peers = input.peers.get(agent, [])
        escalation_id = escalation_workflow_id(subject, n)
        with contextlib.suppress(WorkflowAlreadyStartedError):
            await workflow.start_child_workflow(
                Escalation.run,
                EscalationInput(
                    incident_key=key,
                    n=n,
                    kind="regressed",
                    subject=subject,
                    task_id=subject,
                    title=f"the learning for {input.fingerprint} is not working",
                    agent=agent,
                    peer=peers[0] if peers else None,
                    lead=input.lead,
                    reason=reason,
                    last_error=occurrence.error if occurrence else None,
                    since=workflow.now(),
                    ladder=input.escalation,
                    retry=input.retry,
                    stuck=input.stuck,
                    lead_adapter=input.lead_adapter,
                    peers=input.peers,
                    time_scale=input.time_scale,
                    context={"fingerprint": input.fingerprint, "learning_id": state.learning_id},
                ),
                id=escalation_id,
                parent_close_policy=ParentClosePolicy.ABANDON,
                static_summary=f"regressed: {reason[:150]}",
            )
        state.open_escalations.append(escalation_id)

    async def _retire(self, command: PatternCommand) -> None:
        state = self._state
        assert state is not None
        if state.status == "retired":
            return
        state.status = "retired"
        await self._record_status(command, f"ledger: retired ({command.reason or command.by})")
        await self._close_escalations(f"retired: {command.reason}")

    async def _republish(self, command: PatternCommand) -> None:
        """A regressed learning whose hint a person rewrote is published again: its repeats
        count afresh, and a new regression opens a new incident."""
        state = self._state
        assert state is not None
        if state.status not in ("regressed", "retired"):
            return
        state.status, state.repeats = "published", 0
        state.published_at = workflow.now()
        await self._record_status(command, "ledger: published again")
        await self._close_escalations(f"republished: {command.reason}")

    async def _record_status(self, command: PatternCommand, summary: str) -> None:
        """The ledger learns the pattern's new status, and who set it and why."""
        assert self._state is not None
        await workflow.execute_activity_method(
            LearningActivities.set_status,
            StatusChange(
                fingerprint=self._input.fingerprint,
                status=self._state.status,
                at=workflow.now(),
                by=command.by,
                reason=command.reason,
            ),
            start_to_close_timeout=_LEDGER,
            summary=summary,
        )

    async def _close_escalations(self, note: str) -> None:
        assert self._state is not None
        for escalation_id in self._state.open_escalations:
            try:
                await workflow.get_external_workflow_handle(escalation_id).signal(
                    "close", CloseIncident(reason="resolved", note=note)
                )
            except Exception:
                workflow.logger.info("escalation %s already over", escalation_id)
        self._state.open_escalations.clear()

    # -- signals and query ----------------------------------------------------------------------

    @workflow.signal
    def occurred(self, body: Any) -> None:
        self._enqueue("occurred", Occurrence, body)

    @workflow.signal
    def retire(self, body: Any = None) -> None:
        self._enqueue("retire", PatternCommand, body)

    @workflow.signal
    def republish(self, body: Any = None) -> None:
        self._enqueue("republish", PatternCommand, body)

    @workflow.signal
    def escalated(self, body: Any = None) -> None:
        """From a regression's Escalation: a step fired (shown in the details)."""
        with contextlib.suppress(ValidationError):
            step = Escalated.model_validate(body or {})
            workflow.set_current_details(
                f"{self._details()}\n\nescalated to {step.step} {step.target}"
            )

    @workflow.query
    def state(self) -> PatternState | None:
        return self._state

    def _enqueue(self, name: str, model: type[BaseModel], body: Any) -> None:
        try:
            self._inbox.append((name, model.model_validate(body if body is not None else {})))
        except ValidationError as err:
            workflow.logger.warning("ignored malformed %s signal: %s", name, err.errors()[0])

    # -- the UI ---------------------------------------------------------------------------------

    def _details(self) -> str:
        state = self._state
        if state is None:
            return "loading"
        seen = f"{state.last_seen:%Y-%m-%d %H:%M:%S} UTC" if state.last_seen else "never"
        after = f" · {state.repeats} after publication" if state.status != "new" else ""
        return (
            f"**{state.status}** · {state.occurrences} occurrence(s){after} · "
            f"{len(state.agents)} agent(s) · last seen {seen}"
            + (f" · learning {state.learning_id}" if state.learning_id else "")
        )

    def _show(self) -> None:
        state = self._state
        if state is None:
            return
        if self._shown != state.status:  # one upsert per change of state, not per signal
            self._shown = state.status
            updates: list[SearchAttributeUpdate[Any]] = [
                sa.KIND.value_set("pattern"),
                sa.STATE.value_set(state.status),
                sa.ERROR_KIND.value_set(state.kind),
            ]
            workflow.upsert_search_attributes(updates)
        workflow.set_current_details(self._details())
