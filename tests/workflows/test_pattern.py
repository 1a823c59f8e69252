"""The ``Pattern`` entity on the time-skipping server, over a real SQLite ledger: publication at
the second occurrence, one regression incident after three repeats, continue-as-new, retirement."""

import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime

import pytest
from pydantic import SecretStr
from temporalio.client import WorkflowExecutionStatus, WorkflowHandle
from temporalio.service import RPCError, RPCStatusCode
from temporalio.testing import WorkflowEnvironment
from temporalio.worker import Worker

from activities.learning import signal_pattern
from activities.ledger import Ledger, incidents
from activities.ledger.learnings import LearningStore
from selfheal import search_attributes as sa
from selfheal.config import Settings
from selfheal.learning import LearningPolicy, Occurrence, PatternState, pattern_workflow_id
from selfheal.models import AttemptLedgerEntry, AttemptRecord
from selfheal.patterns import PatternInput
from selfheal.plugins import SelfHealing
from starter.testing import NotificationSink, serving
from tests.waiting import eventually
from workflows.pattern import Pattern


def pattern_input(fp: str, **policy) -> PatternInput:
    return PatternInput(
        fingerprint=fp,
        kind="task",
        template="tests fail: the orders migration is missing",
        policy=LearningPolicy(**policy),
        peers={"SAM": ["ALEX"], "ALEX": ["SAM"]},
    )


ERROR = "tests fail: the orders migration is missing"


def occurrence(fp: str, task: str, at: datetime, n: int = 1, agent: str = "SAM") -> Occurrence:
    return Occurrence(
        fingerprint=fp, kind="task", template=ERROR, error=ERROR, workflow_id=f"task-{task}",
        task_id=task, attempt=n, agent=agent, strategy="initial",
        title=f"orders migration {task}", at=at,
    )  # fmt: skip


def record_failure(ledger: Ledger, occ: Occurrence) -> None:
    """The failure row AgentTask writes before it tells the entity."""
    attempt = AttemptRecord(
        n=occ.attempt, agent=occ.agent, strategy="initial", outcome="failed", error_kind="task",
        fingerprint=occ.fingerprint, error=occ.error, started_at=occ.at, ended_at=occ.at,
    )  # fmt: skip
    ledger.record_attempt(
        AttemptLedgerEntry(
            workflow_id=occ.workflow_id, task_id=occ.task_id, title=occ.title, priority="normal",
            task_state="retrying", attempt=attempt, context={"title": occ.title},
        )
    )  # fmt: skip


class Stack:
    def __init__(self, env: WorkflowEnvironment, settings: Settings, plugin: SelfHealing) -> None:
        self.env, self.client, self.settings, self.plugin = env, env.client, settings, plugin
        self.counted: dict[str, int] = {}
        self.seen: set[str] = set()

    async def send(self, input: PatternInput, task: str, n: int = 1, agent: str = "SAM"):
        """One failure of ``task``'s attempt ``n``: its ledger row, then the entity's signal;
        returns once the entity has counted it (failures happen one after another)."""
        now = await self.env.get_current_time() if self.env.supports_time_skipping else None
        occ = occurrence(input.fingerprint, task, now or datetime.now(UTC), n, agent)
        before = self.counted.get(input.fingerprint, 0)
        record_failure(self.plugin.ledger, occ)
        handle = await signal_pattern(self.client, self.settings.task_queue, input, occ)
        if f"{occ.workflow_id}#{n}" not in self.seen:
            self.seen.add(f"{occ.workflow_id}#{n}")
            self.counted[input.fingerprint] = before + 1
            await until(handle, lambda s: s.occurrences == before + 1)
        return handle


@pytest.fixture
async def stack(skipping_env: WorkflowEnvironment, settings: Settings) -> AsyncIterator[Stack]:
    plugin = SelfHealing(settings)
    async with Worker(skipping_env.client, task_queue=settings.task_queue, plugins=[plugin]):
        yield Stack(skipping_env, settings, plugin)


async def state_of(handle: WorkflowHandle) -> PatternState:
    """The latest run's state (the entity continues as new)."""
    latest = handle._client.get_workflow_handle(handle.id)
    return await latest.query(Pattern.state)


async def until(handle: WorkflowHandle, check) -> PatternState:
    async def ok() -> bool:
        state = await state_of(handle)
        return state is not None and check(state)

    await eventually(ok, timeout=30)
    return await state_of(handle)


async def test_publishes_the_learning_at_the_second_occurrence(stack: Stack):
    fp = f"task-{uuid.uuid4().hex[:12]}"
    input = pattern_input(fp)
    handle = await stack.send(input, "a")
    state = await until(handle, lambda s: s.occurrences == 1)
    assert state.status == "new"
    store = LearningStore(stack.plugin.ledger)
    assert store.advice_for(fp) is None

    await stack.send(input, "a")  # the same attempt again (a retried activity): counted once
    await stack.send(input, "b", agent="ALEX")
    state = await until(handle, lambda s: s.status == "published")
    assert state.occurrences == 2 and state.learning_id == f"L-{fp}"
    learning = store.advice_for(fp)
    assert learning is not None and learning.status == "published"
    assert learning.advice.strategy == "alternative"  # the ladder's choice for a task fault
    assert "migration" in learning.scope.words and learning.scope.agents == []
    assert fp in learning.as_hint().fingerprints
    attributes = (await handle.describe()).typed_search_attributes
    assert attributes.get(sa.KIND) == "pattern" and attributes.get(sa.STATE) == "published"


async def test_regression_after_three_repeats_opens_one_incident(
    skipping_env: WorkflowEnvironment, settings: Settings
):
    async with serving(NotificationSink().app()) as url:
        settings = settings.model_copy(update={"dev_channel_url": SecretStr(f"{url}/dev")})
        plugin = SelfHealing(settings)
        client = skipping_env.client
        async with Worker(client, task_queue=settings.task_queue, plugins=[plugin]):
            stack = Stack(skipping_env, settings, plugin)
            fp = f"task-{uuid.uuid4().hex[:12]}"
            input = pattern_input(fp)
            handle = await stack.send(input, "a")
            await stack.send(input, "b")
            await until(handle, lambda s: s.status == "published")
            for task in ("c", "d"):
                await stack.send(input, task)
            state = await until(handle, lambda s: s.repeats == 2)
            assert state.status == "published"  # two repeats are within the bar

            await stack.send(input, "e")
            state = await until(handle, lambda s: s.status == "regressed")
            for task in ("f", "g"):  # more repeats while regressed: no second incident
                await stack.send(input, task)
            state = await until(handle, lambda s: s.repeats == 5)
            assert state.regressions == 1

            subject = pattern_workflow_id(fp)
            escalation = client.get_workflow_handle(f"escalation-{subject}-1")
            assert (await escalation.describe()).status in (
                WorkflowExecutionStatus.RUNNING,
                WorkflowExecutionStatus.COMPLETED,
            )
            with pytest.raises(RPCError) as missing:
                await client.get_workflow_handle(f"escalation-{subject}-2").describe()
            assert missing.value.status == RPCStatusCode.NOT_FOUND
            rows = plugin.ledger.rows(incidents, subject=subject)
            assert len(rows) == 1 and rows[0]["kind"] == "regressed"
            assert "is not working" in rows[0]["reason"]
            learning = LearningStore(plugin.ledger).get(f"L-{fp}")
            assert learning.status == "regressed" and learning.regressions == 1

            # A person rewrote the hint: published again, its repeats counted afresh.
            await handle.signal(Pattern.republish, {"by": "MAX", "reason": "hint rewritten"})
            state = await until(handle, lambda s: s.status == "published")
            assert state.repeats == 0
            assert LearningStore(plugin.ledger).get(f"L-{fp}").status == "published"


async def test_continues_as_new_without_losing_a_signal(local_env: WorkflowEnvironment, settings):
    """On the dev server: the Java test server can lose a signal that races a continue-as-new,
    which the real server never does (it rejects the completion and retries the task)."""
    plugin = SelfHealing(settings)
    async with Worker(local_env.client, task_queue=settings.task_queue, plugins=[plugin]):
        await _continue_as_new(Stack(local_env, settings, plugin))


async def _continue_as_new(stack: Stack) -> None:
    client = stack.client
    fp = f"task-{uuid.uuid4().hex[:12]}"
    input = pattern_input(fp).model_copy(update={"max_events": 3})
    handle = await stack.send(input, "t0")
    first_run = (await handle.describe()).run_id
    for i in range(1, 8):
        await stack.send(input, f"t{i}")
    state = await until(handle, lambda s: s.occurrences == 8)
    assert state.status == "regressed" and state.repeats == 6 and state.regressions == 1
    latest = client.get_workflow_handle(handle.id)
    assert (await latest.describe()).run_id != first_run
    history = await client.get_workflow_handle(handle.id, run_id=first_run).fetch_history()
    assert history.events[-1].WhichOneof("attributes") == (
        "workflow_execution_continued_as_new_event_attributes"
    )


async def test_retires_itself_when_not_seen_and_reloads_from_the_ledger(stack: Stack):
    fp = f"task-{uuid.uuid4().hex[:12]}"
    input = pattern_input(fp, retire_after=3600)
    handle = await stack.send(input, "a")
    await stack.send(input, "b")
    await until(handle, lambda s: s.status == "published")
    # the time-skipping server jumps the hour
    final = PatternState.model_validate(await handle.result())
    assert final.status == "retired"
    assert LearningStore(stack.plugin.ledger).get(f"L-{fp}").status == "retired"

    again = await stack.send(input, "c")  # it is back: a new run, rebuilt from the ledger
    state = await until(again, lambda s: s.occurrences == 3)
    assert state.status == "new" and state.repeats == 0 and state.learning_id == f"L-{fp}"
    await stack.send(input, "d")
    state = await until(again, lambda s: s.status == "published")
    assert LearningStore(stack.plugin.ledger).get(f"L-{fp}").status == "published"


async def test_a_retire_signal_ends_the_entity_and_reaches_the_ledger(stack: Stack):
    fp = f"task-{uuid.uuid4().hex[:12]}"
    input = pattern_input(fp)
    handle = await stack.send(input, "a")
    await stack.send(input, "b")
    await until(handle, lambda s: s.status == "published")

    await handle.signal(Pattern.retire, {"by": "MAX", "reason": "the migration tool changed"})
    final = PatternState.model_validate(await handle.result())
    assert final.status == "retired"
    assert LearningStore(stack.plugin.ledger).get(f"L-{fp}").status == "retired"
