"""Signals of CommitGuard and CommitQueue with no body, null or a malformed one (issue 8, defect
1), sent with the real ``temporal workflow signal`` (no ``--input`` is its default): recorded,
never a failed workflow task, and the queue goes on guarding."""

import asyncio
import subprocess
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from temporalio.api.enums.v1 import EventType
from temporalio.client import Client, WorkflowHandle
from temporalio.testing import WorkflowEnvironment
from temporalio.worker import Worker

from selfheal.config import Settings
from selfheal.plugins import SelfHealing
from selfheal.rollback import queue_workflow_id
from starter.commits import build_check, enqueue, read_commit, wait_for_guard
from tests.conftest import TEMPORAL
from tests.rollback_repo import BUILD, commit, make_repo
from tests.waiting import eventually


@pytest.fixture
async def worker(local_env: WorkflowEnvironment, settings: Settings) -> AsyncIterator[Client]:
    async with Worker(
        local_env.client, task_queue=settings.task_queue, plugins=[SelfHealing(settings)]
    ):
        yield local_env.client


async def temporal_signal(client: Client, workflow_id: str, name: str, *input: str) -> None:
    """``temporal workflow signal``, as a person types it; ``input`` empty: no ``--input``."""
    argv = [str(TEMPORAL), "workflow", "signal", "--address",
            client.service_client.config.target_host, "--namespace", client.namespace,
            "--workflow-id", workflow_id, "--name", name]  # fmt: skip
    if input:
        argv += ["--input", *input]
    done = await asyncio.to_thread(subprocess.run, argv, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr


async def task_failures(handle: WorkflowHandle) -> list[str]:
    return [
        e.workflow_task_failed_event_attributes.failure.message
        async for e in handle.fetch_history_events()
        if e.event_type == EventType.EVENT_TYPE_WORKFLOW_TASK_FAILED
    ]


async def test_signals_without_a_body_never_fail_a_workflow_task(
    worker: Client, settings: Settings, tmp_path: Path
):
    repo = make_repo(tmp_path / "signals")
    commit(repo, "slow build", {"slow.txt": "2"})
    check = build_check(settings, read_commit(repo), build=BUILD)
    guard_id = await enqueue(worker, settings, check)
    queue = worker.get_workflow_handle(queue_workflow_id(repo.name, str(repo.resolve())))

    async def guard_running() -> bool:
        return (await queue.query("status"))["current"] == check.sha

    await eventually(guard_running)
    guard = worker.get_workflow_handle(guard_id)
    await temporal_signal(worker, guard_id, "escalated")  # while it builds
    await temporal_signal(worker, guard_id, "escalated", "null")
    for name in ("enqueue", "verdict"):
        await temporal_signal(worker, queue.id, name)
        await temporal_signal(worker, queue.id, name, "null")
        await temporal_signal(worker, queue.id, name, '{"sha": 42}')
    status = await asyncio.wait_for(wait_for_guard(worker, guard_id), 30)
    assert status.state == "passed" and status.ignored_signals == [
        "escalated: incident: Field required",  # validated as AgentTask's is
        "escalated: incident: Field required",
    ]

    # The queue took all six in, recorded them, and goes on guarding.
    commit(repo, "next", {"next.txt": "n\n"})
    check = build_check(settings, read_commit(repo), build=BUILD)
    assert (await wait_for_guard(worker, await enqueue(worker, settings, check))).state == "passed"
    ignored = (await queue.query("status"))["ignored_signals"]
    assert [i.split(":")[0] for i in ignored] == ["enqueue"] * 3 + ["verdict"] * 3
    assert ignored[0] == "enqueue: no body" and "42" in ignored[2]
    assert await task_failures(guard) == [] and await task_failures(queue) == []
