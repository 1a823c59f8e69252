"""Record the AgentTask and Escalation histories that tests/test_replay.py replays.

Run ``python -m tests.record_histories`` after a deliberate change to workflow code, then read
the diff: a history that no longer replays means running workflows would break on upgrade.
Histories named ``v1_*`` were recorded before the ``workflow.patched`` changes (a failed task
fails its execution; no signal to an escalation that is over) and are never re-recorded: they
prove the old branch of each patch still replays.
"""

import asyncio
import contextlib
import sys
import tempfile
import uuid
from datetime import timedelta
from pathlib import Path

from temporalio.api.operatorservice.v1 import AddSearchAttributesRequest
from temporalio.client import Client, WorkflowFailureError, WorkflowHandle
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.testing import WorkflowEnvironment
from temporalio.worker import Worker

from selfheal import search_attributes as sa
from selfheal.config import Settings
from selfheal.models import AdapterSpec
from selfheal.plugins import SelfHealing
from starter.client import build_task_input, start_task

HISTORIES = Path(__file__).parent / "histories"
TEST_SERVER = Path(sys.executable).parent / "temporal-test-server"


async def save(handle: WorkflowHandle, name: str) -> None:
    history = await handle.fetch_history()
    (HISTORIES / f"{name}.json").write_text(history.to_json())
    print(f"recorded {name}: {len(history.events)} events")


async def start(client: Client, settings: Settings, script: str, task_id: str) -> WorkflowHandle:
    input = build_task_input(
        settings, agent="SAM", title="fix login", task_id=task_id,
        adapter=AdapterSpec(kind="sim", sim=script),
    )  # fmt: skip
    return await start_task(client, settings, input)


async def record() -> None:
    env = await WorkflowEnvironment.start_time_skipping(
        test_server_existing_path=str(TEST_SERVER), data_converter=pydantic_data_converter
    )
    await env.client.operator_service.add_search_attributes(
        AddSearchAttributesRequest(
            namespace="default",
            search_attributes={k.name: k.indexed_value_type for k in sa.ALL},
        )
    )
    settings = Settings(data_dir=Path(tempfile.mkdtemp()), task_queue="record")
    client = env.client
    async with Worker(client, task_queue="record", plugins=[SelfHealing(settings)]):
        for script, name in [
            ("transient,transient,ok", "agent_task_retry_succeeded"),
            ("agent,task,ok", "agent_task_reassigned_then_alternative"),
        ]:
            handle = await start(client, settings, script, f"rec-{uuid.uuid4().hex[:6]}")
            await handle.result()
            await save(handle, name)

        handle = await start(client, settings, "transient,ok", "rec-blocked")
        while (await handle.query("status"))["state"] != "retrying":
            await asyncio.sleep(0.05)
        await handle.signal("mark_blocked", {"reason": "no API key"})
        await env.sleep(timedelta(minutes=20))
        await handle.signal("acknowledge", {"by": "MAX"})
        await handle.signal("mark_blocked", "malformed")
        await handle.signal("resolve", {"note": "key added"})
        await handle.result()
        await save(handle, "agent_task_blocked_acknowledged_resolved")
        escalation = client.get_workflow_handle("escalation-rec-blocked-1")
        await escalation.result()
        await save(escalation, "escalation_acknowledged")

        # The same story told through the Updates the selfheal CLI uses.
        handle = await start(client, settings, "transient,ok", "rec-updates")
        while (await handle.query("status"))["state"] != "retrying":
            await asyncio.sleep(0.05)
        await handle.execute_update("mark_blocked", {"reason": "no API key"})
        await env.sleep(timedelta(minutes=20))
        await handle.execute_update("acknowledge", {"by": "MAX"})
        await handle.execute_update("resolve", {"note": "key added"})
        await handle.result()
        await save(handle, "agent_task_updates")

        # Last: a failed task ends before its escalation, which the test server then stops
        # skipping time for. Its lead step fires at once; the history is saved from there.
        handle = await start(client, settings, "permanent", "rec-failed")
        with contextlib.suppress(WorkflowFailureError):
            await handle.result()
        await save(handle, "agent_task_failed")
        escalation = client.get_workflow_handle("escalation-rec-failed-1")
        while not (await escalation.query("outcome"))["steps"]:
            await asyncio.sleep(0.05)
        await save(escalation, "escalation_failed_lead")
    await env.shutdown()


if __name__ == "__main__":
    asyncio.run(record())
