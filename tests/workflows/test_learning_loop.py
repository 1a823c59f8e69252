"""AgentTask and the learning loop: a mistake is learned at its second occurrence and the next
attempt follows the learning (time-skipping); another agent's task with the same mistake gets the
learning at start and succeeds on its first attempt (the dev server, end to end)."""

import uuid

from temporalio.client import WorkflowFailureError
from temporalio.testing import WorkflowEnvironment
from temporalio.worker import Worker

from activities.ledger.learnings import LearningStore
from activities.ledger.schema import failure_resolutions, learning_uses
from selfheal.config import Settings
from selfheal.learning import LearningPolicy, learning_id, pattern_workflow_id
from selfheal.models import AdapterSpec, TaskStatus
from selfheal.plugins import SelfHealing
from selfheal.policies import RetryLadder
from selfheal.sim import mistake_fingerprint
from starter.client import build_task_input, start_task
from tests.waiting import eventually
from workflows.agent_task import AgentTask
from workflows.pattern import Pattern


def task(settings: Settings, agent: str, title: str, script: str, **kw):
    return build_task_input(
        settings, agent=agent, title=title, task_id=f"t-{uuid.uuid4().hex[:8]}",
        adapter=AdapterSpec(kind="sim", sim=script), context={"repo": "shop"}, **kw,
    )  # fmt: skip


async def test_the_attempt_after_the_second_occurrence_follows_the_learning(
    skipping_env: WorkflowEnvironment, settings: Settings
):
    name = f"skip-migration-{uuid.uuid4().hex[:6]}".replace("0", "o")
    fp = mistake_fingerprint(name)
    plugin = SelfHealing(settings)
    client = skipping_env.client
    async with Worker(client, task_queue=settings.task_queue, plugins=[plugin]):
        # Scaled, and waited for by query: the time-skipping server would otherwise jump on to
        # the Pattern entity's 30-day retirement once the task is done.
        input = task(settings, "SAM", "add the orders migration", f"mistake:{name}",
                     time_scale=600.0)  # fmt: skip
        handle = await start_task(client, settings, input)

        async def finished() -> bool:
            return (await handle.query(AgentTask.status)).state == "succeeded"

        await eventually(finished, timeout=30)
        status = await handle.query(AgentTask.status)
        pattern = client.get_workflow_handle(pattern_workflow_id(fp))

        async def published() -> bool:
            state = await pattern.query(Pattern.state)
            return state is not None and state.status == "published"

        await eventually(published)
    assert status.state == "succeeded"
    first, second, third = status.attempts
    assert [a.outcome for a in status.attempts] == ["failed", "failed", "succeeded"]
    assert first.fingerprint == second.fingerprint == fp and first.learnings == []
    assert third.learnings == [learning_id(fp)] and third.strategy == "alternative"
    assert f"follows learning {learning_id(fp)}" in status.notes[-1]
    store = LearningStore(plugin.ledger)
    learning = store.get(learning_id(fp))
    assert learning.status == "published" and learning.occurrences == 2
    assert learning.score == 3  # used (advised) and succeeded
    [use] = plugin.ledger.rows(learning_uses, workflow_id=status.workflow_id)
    assert (use["how"], use["outcome"], use["attempt"]) == ("advised", "succeeded", 3)
    resolved = plugin.ledger.rows(failure_resolutions, workflow_id=status.workflow_id)
    assert sorted(r["n"] for r in resolved) == [1, 2]
    assert {r["attempt"] for r in resolved} == {3} and all(
        learning.id in r["learning_ids"] for r in resolved
    )


async def test_learning_off_still_counts_but_feeds_nothing_back(
    skipping_env: WorkflowEnvironment, settings: Settings
):
    settings = settings.model_copy(update={"learning": LearningPolicy(feedback=False)})
    name = f"stale-lockfile-{uuid.uuid4().hex[:6]}".replace("0", "o")
    plugin = SelfHealing(settings)
    async with Worker(skipping_env.client, task_queue=settings.task_queue, plugins=[plugin]):
        handle = await start_task(
            skipping_env.client, settings,
            task(settings, "SAM", "bump the lockfile", f"mistake:{name},mistake:{name},ok",
                 time_scale=60.0),
        )  # fmt: skip
        status = await handle.result()
    assert [a.outcome for a in status.attempts] == ["failed", "failed", "succeeded"]
    assert all(a.learnings == [] for a in status.attempts)
    assert plugin.ledger.rows(learning_uses) == []


async def test_a_failed_task_links_its_failures_to_the_escalation(
    skipping_env: WorkflowEnvironment, settings: Settings
):
    plugin = SelfHealing(settings)
    async with Worker(skipping_env.client, task_queue=settings.task_queue, plugins=[plugin]):
        handle = await start_task(
            skipping_env.client, settings, task(settings, "SAM", "deploy", "permanent")
        )
        try:
            await handle.result()
            raise AssertionError("a permanent failure fails the task")
        except WorkflowFailureError:
            pass
    [row] = plugin.ledger.rows(failure_resolutions, workflow_id=handle.id)
    assert row["by"] == "escalation" and row["incident_key"] == f"{handle.id}#1"


async def test_another_agents_task_gets_the_learning_at_start(
    local_env: WorkflowEnvironment, settings: Settings
):
    """End to end on the dev server: SAM's task fails with a mistake twice (and for good); the
    same mistake in ALEX's new task succeeds on its first attempt, the learning in its hints."""
    name = f"wrong-env-{uuid.uuid4().hex[:6]}".replace("0", "o")
    fp = mistake_fingerprint(name)
    settings = settings.model_copy(update={"time_scale": 600.0})
    one_retry = RetryLadder(waits=[1.0], strategies=["alternative"])
    plugin = SelfHealing(settings)
    client = local_env.client
    async with Worker(client, task_queue=settings.task_queue, plugins=[plugin]):
        first = task(settings, "SAM", "read the staging env config", f"mistake:{name}")
        first = first.model_copy(update={"retry": one_retry})
        handle = await start_task(client, settings, first)
        try:
            await handle.result()
            raise AssertionError("the first task makes the mistake on both attempts")
        except WorkflowFailureError:
            pass
        pattern = client.get_workflow_handle(pattern_workflow_id(fp))

        async def published() -> bool:
            state = await pattern.query(Pattern.state)
            return state is not None and state.status == "published"

        await eventually(published, timeout=30)
        second = task(settings, "ALEX", "env vars for the deploy", f"mistake:{name}")
        status: TaskStatus = await (await start_task(client, settings, second)).result()
    assert status.state == "succeeded" and len(status.attempts) == 1
    [attempt] = status.attempts
    assert attempt.agent == "ALEX" and attempt.learnings == [learning_id(fp)]
    assert "thanks to" in (status.result or "")
    learning = LearningStore(plugin.ledger).get(learning_id(fp))
    assert learning.agents_seen == ["SAM"] and learning.score == 3
    [use] = plugin.ledger.rows(learning_uses, workflow_id=status.workflow_id)
    assert (use["how"], use["outcome"]) == ("attached", "succeeded")
