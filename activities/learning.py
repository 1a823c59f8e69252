"""The learning loop's activities (M2.5): learnings for a dispatch, advice after a failure, the
uses and resolutions of each attempt, and the ``Pattern`` entity's ledger writes.

``after_attempt`` is where a failure reaches its ``Pattern`` entity: it signals-with-start
``pattern-<fingerprint>`` through the worker's client (a workflow cannot signal-with-start).
"""

import asyncio
from typing import Any

from temporalio import activity
from temporalio.client import Client, WorkflowHandle
from temporalio.common import (
    SearchAttributePair,
    TypedSearchAttributes,
    WorkflowIDConflictPolicy,
)

from activities.ledger.learnings import LearningStore
from selfheal import search_attributes as sa
from selfheal.learning import Learning, Occurrence, PatternState, pattern_workflow_id
from selfheal.patterns import (
    AdviceRequest,
    AttemptLearning,
    ConsolidateInput,
    Consolidation,
    HintsRequest,
    LoadPattern,
    PatternInput,
    PersonHint,
    PublishInput,
    StatusChange,
)


async def signal_pattern(
    client: Client, task_queue: str, pattern: PatternInput, occurrence: Occurrence
) -> WorkflowHandle[Any, Any]:
    """Signal-with-start the ``Pattern`` entity of the occurrence's fingerprint."""
    return await client.start_workflow(
        "Pattern",
        pattern,
        id=pattern_workflow_id(pattern.fingerprint),
        task_queue=task_queue,
        start_signal="occurred",
        start_signal_args=[occurrence],
        id_conflict_policy=WorkflowIDConflictPolicy.USE_EXISTING,
        search_attributes=TypedSearchAttributes(
            [
                SearchAttributePair(sa.KIND, "pattern"),
                SearchAttributePair(sa.STATE, "new"),
                SearchAttributePair(sa.ERROR_KIND, pattern.kind),
            ]
        ),
        static_summary=f"pattern {pattern.fingerprint}: {pattern.template[:150]}",
    )


class LearningActivities:
    def __init__(self, store: LearningStore, client: Client | None = None) -> None:
        self.store = store
        self.client = client

    @activity.defn(name="learning.hints_for")
    async def hints_for(self, request: HintsRequest) -> list[Learning]:
        return await asyncio.to_thread(self.store.hints_for, request)

    @activity.defn(name="learning.advice_for")
    async def advice_for(self, request: AdviceRequest) -> Learning | None:
        return await asyncio.to_thread(self.store.advice_for, request.fingerprint, request.kinds)

    @activity.defn(name="learning.after_attempt")
    async def after_attempt(self, entry: AttemptLearning) -> None:
        await asyncio.to_thread(self.store.after_attempt, entry, entry.policy)
        if entry.occurrence is None or entry.pattern is None:
            return
        if self.client is None:
            raise RuntimeError("learning.after_attempt needs the worker's client")
        await signal_pattern(
            self.client, activity.info().task_queue, entry.pattern, entry.occurrence
        )

    @activity.defn(name="learning.load_pattern")
    async def load_pattern(self, request: LoadPattern) -> PatternState:
        return await asyncio.to_thread(self.store.load_pattern, request)

    @activity.defn(name="learning.publish")
    async def publish(self, input: PublishInput) -> Learning:
        return await asyncio.to_thread(self.store.publish, input)

    @activity.defn(name="learning.set_status")
    async def set_status(self, change: StatusChange) -> Learning | None:
        return await asyncio.to_thread(self.store.set_status, change)

    @activity.defn(name="learning.consolidate")
    async def consolidate(self, input: ConsolidateInput) -> Consolidation:
        return await asyncio.to_thread(
            self.store.consolidate, input.policy, input.now, input.analysis_id
        )

    @activity.defn(name="learning.apply_person_hints")
    async def apply_person_hints(self, hints: list[PersonHint]) -> list[str]:
        """The hints people rewrote in the docs; returns the ids whose ledger text changed."""
        now = activity.info().current_attempt_scheduled_time
        changed = []
        for hint in hints:
            if await asyncio.to_thread(self.store.set_hint, hint.learning_id, hint.text, now):
                changed.append(hint.learning_id)
        return changed

    def all(self) -> list:
        return [
            self.hints_for,
            self.advice_for,
            self.after_attempt,
            self.load_pattern,
            self.publish,
            self.set_status,
            self.consolidate,
            self.apply_person_hints,
        ]
