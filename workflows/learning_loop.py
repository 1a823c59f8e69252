"""AgentTask's side of the learning loop (M2.5), workflow code (deterministic: every lookup is a
local activity, recorded in the task's history).

- At start, the published learnings whose scope matches the task are attached to its hints (at
  most ``max_attached``; every agent gets them, not only the one that made the mistake).
- After a failure whose fingerprint has a learning, the next attempt takes its advice (its
  strategy; for an ``agent`` fault, its agent) and carries its hint.
- After each attempt, every learning it was given is recorded with the outcome (which scores the
  learning), a failure signals-with-start its fingerprint's ``Pattern`` entity, and a success
  records what resolved the task's earlier failures.
"""

from datetime import timedelta

from temporalio import workflow

with workflow.unsafe.imports_passed_through():
    from activities.learning import LearningActivities
    from selfheal.learning import (
        Hint,
        Learning,
        Occurrence,
        UseRecord,
        context_labels,
        context_repo,
        template_of,
        use_outcome,
    )
    from selfheal.models import AttemptRecord, TaskInput
    from selfheal.patterns import AdviceRequest, AttemptLearning, PatternInput, hints_request

_LOOKUP = timedelta(seconds=30)


class LearningLoop:
    """One task's learnings: those attached at start, and the advice after each failure."""

    def __init__(self, input: TaskInput, workflow_id: str) -> None:
        self._input = input
        self._workflow_id = workflow_id
        self._attached: list[Hint] = []
        self._advised: Hint | None = None

    @property
    def feedback(self) -> bool:
        return self._input.learning.feedback

    async def attach(self) -> None:
        """The learnings for this dispatch, best first."""
        if not self.feedback or self._input.learning.max_attached <= 0:
            return
        found: list[Learning] = await workflow.execute_local_activity_method(
            LearningActivities.hints_for,
            hints_request(self._input),
            start_to_close_timeout=_LOOKUP,
            summary="learnings for this dispatch",
        )
        self._attached = [item.as_hint() for item in found]

    async def advise(self, failed: AttemptRecord) -> Learning | None:
        """The learning published for the failure that just happened, if any; its hint goes
        with the next attempt."""
        self._advised = None
        policy = self._input.learning
        if (
            not self.feedback
            or not failed.fingerprint
            or failed.error_kind not in (policy.feedback_kinds)
        ):
            return None
        learning: Learning | None = await workflow.execute_local_activity_method(
            LearningActivities.advice_for,
            AdviceRequest(fingerprint=failed.fingerprint, kinds=policy.feedback_kinds),
            start_to_close_timeout=_LOOKUP,
            summary=f"a learning for {failed.fingerprint}?",
        )
        if learning is not None:
            self._advised = learning.as_hint()
        return learning

    def hints(self) -> list[Hint]:
        """A person's hints, the advised learning, then the attached ones (each once)."""
        given = [*self._input.hints]
        learned = [h for h in [self._advised, *self._attached] if h is not None]
        seen: set[str] = set()
        for hint in learned:
            if hint.id and hint.id not in seen:
                seen.add(hint.id)
                given.append(hint)
        return given

    def learning_ids(self) -> list[str]:
        return [h.id for h in self.hints() if h.id]

    async def after(self, attempt: AttemptRecord, failures_before: list[int]) -> None:
        """Record one finished attempt for the loop; nothing when there is nothing to record."""
        input = self._input
        given = [h for h in self.hints() if h.id]
        advised = self._advised.id if self._advised else None
        at = attempt.ended_at or workflow.now()
        uses = [
            UseRecord(
                learning_id=h.id or "",
                workflow_id=self._workflow_id,
                attempt=attempt.n,
                agent=attempt.agent,
                how="advised" if h.id == advised else "attached",
                outcome=use_outcome(attempt.outcome, attempt.fingerprint, h),
                fingerprint=attempt.fingerprint,
                at=at,
            )
            for h in given
        ]
        occurrence = pattern = None
        if attempt.outcome == "failed" and attempt.fingerprint and attempt.error_kind:
            occurrence = Occurrence(
                fingerprint=attempt.fingerprint,
                kind=attempt.error_kind,
                template=template_of(attempt.error or ""),
                error=(attempt.error or "")[:500],
                workflow_id=self._workflow_id,
                task_id=input.id,
                attempt=attempt.n,
                agent=attempt.agent,
                strategy=attempt.strategy,
                title=input.title,
                description=input.description[:500],
                repo=context_repo(input.context),
                labels=context_labels(input.context),
                learning_ids=[h.id or "" for h in given],
                at=at,
            )
            pattern = PatternInput(
                fingerprint=attempt.fingerprint,
                kind=attempt.error_kind,
                template=occurrence.template,
                policy=input.learning,
                escalation=input.escalation,
                retry=input.retry,
                stuck=input.stuck,
                peers=input.peers,
                lead=input.lead,
                lead_adapter=input.lead_adapter,
                time_scale=input.time_scale,
            )
        resolves = failures_before if attempt.outcome == "succeeded" else []
        if not uses and occurrence is None and not resolves:
            return
        await self._record(
            AttemptLearning(
                workflow_id=self._workflow_id,
                attempt=attempt.n,
                outcome=attempt.outcome,
                agent=attempt.agent,
                strategy=attempt.strategy,
                uses=uses,
                occurrence=occurrence,
                pattern=pattern,
                resolves=resolves,
                policy=input.learning,
                at=at,
            ),
            f"learning: attempt {attempt.n} {attempt.outcome}"
            + (f", {len(uses)} learning(s) used" if uses else ""),
        )

    async def ended_by(self, incident_key: str, failures: list[int], last: AttemptRecord) -> None:
        """The task failed for good: its failures were ended by the escalation of
        ``incident_key``."""
        if not failures:
            return
        await self._record(
            AttemptLearning(
                workflow_id=self._workflow_id,
                attempt=last.n,
                outcome="failed",
                agent=last.agent,
                strategy=last.strategy,
                resolves=failures,
                ended_by_incident=incident_key,
                policy=self._input.learning,
                at=workflow.now(),
            ),
            f"learning: failures ended by {incident_key}",
        )

    async def _record(self, entry: AttemptLearning, summary: str) -> None:
        await workflow.execute_local_activity_method(
            LearningActivities.after_attempt,
            entry,
            start_to_close_timeout=_LOOKUP,
            summary=summary,
        )

    def context(self, attempt: AttemptRecord) -> dict[str, object]:
        """The failure context the ledger keeps beside the attempt."""
        input = self._input
        return {
            "title": input.title,
            "repo": context_repo(input.context),
            "labels": context_labels(input.context),
            "template": template_of(attempt.error) if attempt.error else None,
            "learning_ids": self.learning_ids(),
        }
