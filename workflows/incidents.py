"""Incidents, workflow side: shared by AgentTask and CommitGuard.

An incident is a ledger row (opened, then acknowledged, resolved or closed) and an ``Escalation``
child that runs its ladder, abandoned so it outlives its subject. The subject tells the ladder
what happened (``acknowledge``, ``close``, ``stuck``) and learns of each step that fired
(``escalated``); once every step has fired, or it was acknowledged, the ladder is over and is
never signalled again: the signal would fail, a red event in the UI.
"""

from collections.abc import Awaitable, Callable, Iterable
from datetime import datetime, timedelta
from typing import Any

from temporalio import workflow
from temporalio.workflow import ParentClosePolicy

with workflow.unsafe.imports_passed_through():
    from activities.ledger import LedgerActivities
    from selfheal.models import (
        Acknowledge,
        CloseIncident,
        EscalationInput,
        IncidentRecord,
        IncidentUpdate,
    )
    from workflows.escalation import Escalation
    from workflows.versions import Versions


LEDGER_TIMEOUT = timedelta(seconds=30)


class Incidents:
    """The incidents of one workflow: their ledger writes and their Escalation ladders.

    Ledger writes are local activities (one marker each, no round trip); ``local_in_v1`` is
    False for a workflow whose v1 histories wrote regular ones (CommitGuard)."""

    def __init__(self, local_in_v1: bool = True) -> None:
        self._local_in_v1 = local_in_v1
        self._versions = Versions()
        self._firing: dict[str, set[str]] = {}  # per escalation id: the steps it will fire
        self._over: set[str] = set()  # escalation ids whose ladder is known to be over

    # -- the ledger -----------------------------------------------------------------------------

    async def record_open(self, record: IncidentRecord, summary: str) -> None:
        await self._write(LedgerActivities.open_incident, record, summary)

    async def record_update(self, update: IncidentUpdate, summary: str) -> None:
        await self._write(LedgerActivities.update_incident, update, summary)

    async def _write(
        self, method: Callable[[LedgerActivities, Any], Awaitable[None]], arg: Any, summary: str
    ) -> None:
        """One ledger write: a local activity, or a regular one for CommitGuard's v1 histories."""
        if self._local_in_v1 or self._versions.local_incident_writes:
            await workflow.execute_local_activity_method(
                method, arg, start_to_close_timeout=LEDGER_TIMEOUT, summary=summary
            )
        else:
            await workflow.execute_activity_method(
                method, arg, start_to_close_timeout=timedelta(seconds=60), summary=summary
            )

    def decide_versions(self, versions: Versions) -> None:
        """The history's versions, decided at the top of ``run`` (see workflows/versions.py)."""
        self._versions = versions

    # -- the ladder -----------------------------------------------------------------------------

    async def escalate(self, escalation_id: str, ladder: EscalationInput, summary: str) -> None:
        """Start the incident's ladder, abandoned: it outlives its subject."""
        self._firing[escalation_id] = set(ladder.firing_steps())
        await workflow.start_child_workflow(
            Escalation.run,
            ladder,
            id=escalation_id,
            task_queue=workflow.info().task_queue,
            parent_close_policy=ParentClosePolicy.ABANDON,
            static_summary=summary,
        )

    def fired(self, escalation_id: str, steps: Iterable[str]) -> None:
        """The steps of a ladder that have fired so far (from its ``escalated`` signals)."""
        firing = self._firing.get(escalation_id)
        if firing is not None and set(steps) >= firing:
            self._over.add(escalation_id)  # its last step: the ladder is over

    def ladder_over(self, escalation_id: str) -> bool:
        """Whether the ladder is known to be over, so nothing is sent to it."""
        return escalation_id in self._over and self._versions.quiet_ladder

    async def acknowledge(self, escalation_id: str, by: str) -> bool:
        """Stop the ladder's further steps; False if it was over (record the acknowledgement
        in the ledger then)."""
        if self.ladder_over(escalation_id):
            return False
        try:
            await _ladder(escalation_id).signal(Escalation.acknowledge, Acknowledge(by=by))
        except Exception:  # its ladder already ran out
            return False
        self._over.add(escalation_id)  # acknowledged, the ladder stops and ends
        return True

    async def close(self, escalation_id: str, close: CloseIncident) -> None:
        """End the ladder: no further steps. A ladder that is over is left alone."""
        if not self.ladder_over(escalation_id):
            await self.close_other(escalation_id, close)

    async def close_other(self, escalation_id: str, close: CloseIncident) -> None:
        """End a ladder, whoever started it (a re-check ends the ladder of the run before)."""
        try:
            await _ladder(escalation_id).signal(Escalation.close, close)
        except Exception:
            workflow.logger.info("escalation %s already over", escalation_id)

    async def flag_stuck(self, escalation_id: str, at: datetime) -> None:
        """A stall's lead step waits for this: detect, then escalate."""
        if self.ladder_over(escalation_id):
            return
        try:
            await _ladder(escalation_id).signal(Escalation.stuck, {"at": at.isoformat()})
        except Exception:
            workflow.logger.info("escalation %s already over", escalation_id)


def _ladder(escalation_id: str) -> workflow.ExternalWorkflowHandle[Escalation]:
    return workflow.get_external_workflow_handle_for(Escalation.run, escalation_id)
