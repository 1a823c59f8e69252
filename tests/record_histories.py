"""Record the histories that tests/test_replay.py replays.

Run ``python -m tests.record_histories [tasks|guards|queue]`` (all by default) after a deliberate
change to workflow code, then read the diff: a history that no longer replays means running
workflows would break on upgrade.
Histories named ``v1_*`` were recorded before the ``workflow.patched`` changes (a failed task
fails its execution; no signal to an escalation that is over; CommitGuard's incident ledger
writes are local activities) and are never re-recorded: they prove the old branch of each patch
still replays. (``v1_commit_guard_*``: ``guards v1_`` run against the code before that patch.)
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
from selfheal.rollback import CommitQueueInput, guard_workflow_id, queue_workflow_id
from starter.client import build_task_input, start_task
from starter.commits import build_check, enqueue, read_commit, wait_for_guard
from tests.rollback_repo import BUILD, commit, make_repo
from workflows.commit_queue import CommitQueue

HISTORIES = Path(__file__).parent / "histories"
TEST_SERVER = Path(sys.executable).parent / "temporal-test-server"


async def save(handle: WorkflowHandle, name: str) -> None:
    history = await handle.fetch_history()
    (HISTORIES / f"{name}.json").write_text(history.to_json())
    # A history's JSON does not hold its workflow id, and CommitGuard's commands use it.
    ids = HISTORIES / "workflow_ids.txt"
    lines = [x for x in ids.read_text().splitlines() if not x.startswith(f"{name} ")]
    ids.write_text("\n".join(sorted([*lines, f"{name} {handle.id}"])) + "\n")
    print(f"recorded {name}: {len(history.events)} events")


async def start(client: Client, settings: Settings, script: str, task_id: str) -> WorkflowHandle:
    input = build_task_input(
        settings, agent="SAM", title="fix login", task_id=task_id,
        adapter=AdapterSpec(kind="sim", sim=script),
    )  # fmt: skip
    return await start_task(client, settings, input)


async def record(which: str = "all", prefix: str = "") -> None:
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
    async with Worker(env.client, task_queue="record", plugins=[SelfHealing(settings)]):
        if which in ("all", "tasks"):
            await record_tasks(env, settings)
        if which in ("all", "guards"):
            await record_guards(env.client, settings, prefix)
        if which in ("all", "queue"):
            await record_queue(env.client, settings)
    await env.shutdown()


async def record_tasks(env: WorkflowEnvironment, settings: Settings) -> None:
    client = env.client
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


async def record_guards(client: Client, settings: Settings, prefix: str = "") -> None:
    """CommitGuard: a breaking commit reverted, and a culprit that opted out (escalated)."""
    repo = make_repo(Path(tempfile.mkdtemp()) / "app", delay=0)
    commit(repo, "refactor app", {"app.txt": "BROKEN\n"})
    guarded = await guard(client, settings, repo)
    await save(client.get_workflow_handle(guarded), f"{prefix}commit_guard_reverted")
    commit(repo, "risky\n\nSelfheal-No-Revert: true", {"app.txt": "BROKEN again\n"})
    guarded = await guard(client, settings, repo)
    await save(client.get_workflow_handle(guarded), f"{prefix}commit_guard_opted_out")


async def record_queue(client: Client, settings: Settings) -> None:
    """CommitQueue: three commits across a continue-as-new (after two guards), both runs."""
    repo = make_repo(Path(tempfile.mkdtemp()) / "queued", delay=0)
    checks = []
    for n in range(3):
        commit(repo, f"change {n}", {f"mod{n}.txt": "BROKEN\n" if n == 1 else "ok\n"})
        checks.append(build_check(settings, read_commit(repo), build=BUILD))
    name, path, last = checks[-1].repo_name, checks[-1].repo_path, checks[-1].sha
    queue = await client.start_workflow(
        CommitQueue.run,
        CommitQueueInput(repo_path=path, repo_name=name, continue_after=2),
        id=queue_workflow_id(name, path),
        task_queue=settings.task_queue,
    )
    for check in checks:
        await queue.signal(CommitQueue.enqueue, check)
    await wait_for_guard(client, guard_workflow_id(name, path, last))
    while (await queue.query(CommitQueue.status)).current is not None:
        await asyncio.sleep(0.05)
    first = client.get_workflow_handle(queue.id, run_id=queue.first_execution_run_id)
    await save(first, "commit_queue_continued_as_new")
    # The run after it, idle now (it ends after 24 h): a history still open replays too.
    await save(client.get_workflow_handle(queue.id), "commit_queue_after_continue_as_new")


async def guard(client: Client, settings: Settings, repo: Path) -> str:
    check = build_check(settings, read_commit(repo), build=BUILD)
    guard_id = await enqueue(client, settings, check)
    await wait_for_guard(client, guard_id)
    return guard_id


if __name__ == "__main__":
    asyncio.run(record(*sys.argv[1:3]))
