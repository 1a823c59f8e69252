"""Every README snippet is a tested example: each `python`/`sh` block is marked (tests/docs.py),
and the marked ones run here as written against a real local Temporal server, as a user would
run them: the plugin in "your own worker" serves the task queue `selfheal`, the orchestrator
snippet starts a task running a real `./run-agent.sh` from its directory, the plain-JSON start and
the `temporal workflow signal` lines drive a task, and `selfheal task start` waits for one."""

import asyncio
import contextlib
import json
import os
import subprocess
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from temporalio.client import Client
from temporalio.testing import WorkflowEnvironment

from selfheal import search_attributes as sa
from tests.docs import ROOT, block, code_blocks, run_python

README = "README.md"
TESTED = {"task-start", "orchestrator", "plain-json", "temporal-signals", "search-attributes",
          "own-worker"}  # fmt: skip
RUN_AGENT = """#!/bin/sh
echo "working on $SELFHEAL_TITLE (attempt $SELFHEAL_ATTEMPT, $SELFHEAL_STRATEGY)"
echo "done"
"""


def test_every_code_block_is_marked_and_every_runnable_one_is_tested():
    blocks = [b for page in (README, "docs/pr-review.md") for b in code_blocks(page)]
    unmarked = [f"line {b.line} ({b.lang})" for b in blocks if b.mark is None]
    assert not unmarked, (
        f"mark these blocks <!-- test: NAME --> or <!-- test: skip: why -->: {unmarked}"
    )
    readme = {b.mark for b in code_blocks(README) if b.runnable}
    assert readme == TESTED


def sh(code: str, env: dict[str, str], cwd: Path = ROOT) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["bash", "-e", "-c", code], cwd=cwd, env=env, capture_output=True, text=True, timeout=120
    )


@pytest.fixture(scope="module")
async def readme_env(
    local_env: WorkflowEnvironment, tmp_path_factory: pytest.TempPathFactory
) -> AsyncIterator[dict[str, str]]:
    """The environment a README reader has: Temporal at TEMPORAL_ADDRESS, the default task queue,
    `temporal` and `selfheal` on PATH, and "your own worker" from the README running."""
    home = tmp_path_factory.mktemp("readme")
    env = {
        "TEMPORAL_ADDRESS": local_env.client.service_client.config.target_host,
        "SELFHEAL_DATA_DIR": str(home / "data"),
        "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}",
    }
    with pytest.MonkeyPatch.context() as patch:
        for name in ("SELFHEAL_TASK_QUEUE", "SELFHEAL_CONFIG", "SELFHEAL_TIME_SCALE",
                     "TEMPORAL_NAMESPACE", "TEMPORAL_API_KEY"):  # fmt: skip
            patch.delenv(name, raising=False)
        for name, value in env.items():
            patch.setenv(name, value)
        patch.chdir(home)
        worker = asyncio.create_task(run_python(block(README, "own-worker")))
        await asyncio.sleep(0.5)
        assert not worker.done(), worker.exception()
        try:
            yield os.environ.copy()
        finally:
            worker.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await worker


async def test_the_orchestrator_snippet_runs_run_agent_sh_from_its_directory(
    readme_env: dict[str, str],
):
    script = Path.cwd() / "run-agent.sh"
    script.write_text(RUN_AGENT)
    script.chmod(0o755)
    names = await asyncio.wait_for(run_python(block(README, "orchestrator")), 60)
    status = names["status"]
    assert status.state == "succeeded", status.attempts[-1].error
    assert status.result == "working on fix login (attempt 1, initial)\ndone"
    assert names["handle"].id == f"task-{names['task'].id}"


async def test_plain_json_start_then_the_temporal_cli_signals(readme_env: dict[str, str]):
    client = await Client.connect(readme_env["TEMPORAL_ADDRESS"])  # any client, no converter
    await run_python(block(README, "plain-json"), {"client": client})
    handle = client.get_workflow_handle("task-fix-login")
    try:
        # The first attempt fails (transient); the seed ladder then waits a real minute.
        for _ in range(200):
            status = await handle.query("status")
            if status["state"] == "retrying":
                break
            await asyncio.sleep(0.05)
        assert status["state"] == "retrying" and status["attempts"][0]["strategy"] == "initial"

        done = sh(block(README, "temporal-signals"), readme_env)
        assert done.returncode == 0, done.stderr

        for _ in range(200):
            status = await handle.query("status")
            incident = (status.get("incidents") or [{}])[0]
            if incident.get("status") == "resolved":
                break
            await asyncio.sleep(0.05)
        assert incident["kind"] == "blocked" and incident["reason"] == "no API key"
        assert incident["acknowledged_by"] == "MAX" and incident["status"] == "resolved"
        assert not status.get("ignored_signals")
    finally:
        await handle.terminate("README test done")


async def test_selfheal_task_start_as_written(readme_env: dict[str, str]):
    done = await asyncio.to_thread(sh, block(README, "task-start"), readme_env)
    assert done.returncode == 0, done.stderr
    status = json.loads(done.stdout)
    assert status["state"] == "succeeded"
    assert [a["strategy"] for a in status["attempts"]] == ["initial", "same", "fresh"]


async def test_registering_the_search_attributes_on_a_bare_cluster(tmp_path: Path):
    bare = await WorkflowEnvironment.start_local(
        dev_server_existing_path=str(Path(sys.executable).parent / "temporal"),
        dev_server_log_level="error",
    )
    try:
        env = os.environ | {
            "TEMPORAL_ADDRESS": bare.client.service_client.config.target_host,
            "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}",
        }
        done = await asyncio.to_thread(sh, block(README, "search-attributes"), env, tmp_path)
        assert done.returncode == 0, done.stderr
        from temporalio.api.operatorservice.v1 import ListSearchAttributesRequest

        listed = await bare.client.operator_service.list_search_attributes(
            ListSearchAttributesRequest(namespace=bare.client.namespace)
        )
        for key in sa.ALL:
            assert listed.custom_attributes[key.name] == key.indexed_value_type
    finally:
        await bare.shutdown()
