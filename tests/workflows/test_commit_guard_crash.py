"""A worker SIGKILLed between the revert and its verify: after a restart, exactly one revert."""

import asyncio
from pathlib import Path

from temporalio.client import WorkflowExecutionStatus
from temporalio.testing import WorkflowEnvironment

from selfheal.config import Settings
from starter.commits import build_check, enqueue, read_commit, wait_for_guard
from tests.rollback_repo import BUILD, commit, log, make_repo, message
from tests.workers import kill, start_worker


async def test_worker_killed_between_revert_and_verify(
    local_env: WorkflowEnvironment, settings: Settings, tmp_path: Path
):
    repo = make_repo(tmp_path / "crashy")
    bad = commit(repo, "break it", {"app.txt": "BROKEN\n"})
    # HEAD moves on, so the revert is verified by a build, which takes a while (slow.txt).
    commit(repo, "later", {"slow.txt": "2.5"})
    client = local_env.client
    worker = start_worker(local_env, settings)
    try:
        check = build_check(settings, read_commit(repo, bad), build=BUILD, heartbeat_timeout=2.0)
        workflow_id = await enqueue(client, settings, check)
        for _ in range(600):
            if log(repo)[0] != log(repo)[1] and "Selfheal-Revert-Of" in message(repo, "HEAD"):
                break
            await asyncio.sleep(0.05)
        else:
            raise AssertionError("the revert never landed")
        kill(worker)
        killed_mid_guard = await client.get_workflow_handle(workflow_id).describe()
        worker = start_worker(local_env, settings)
        status = await asyncio.wait_for(wait_for_guard(client, workflow_id), 60)
    finally:
        kill(worker)
    assert status.state == "reverted", status.reason
    reverts = [s for s in log(repo) if f"Selfheal-Revert-Of: {bad}" in message(repo, s)]
    assert reverts == [status.revert_sha] and log(repo)[0] == status.revert_sha
    assert killed_mid_guard.status == WorkflowExecutionStatus.RUNNING  # the verify was ahead
