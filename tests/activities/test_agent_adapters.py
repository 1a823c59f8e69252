"""The ``command`` and ``http`` adapters through AgentTask on the local dev server: real
subprocesses, and a real HTTP agent on 127.0.0.1 that completes its activity later."""

import asyncio
import base64
import os
import time
import uuid
from pathlib import Path
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route
from temporalio.client import Client, WorkflowFailureError
from temporalio.testing import WorkflowEnvironment
from temporalio.worker import Worker

from selfheal.config import Settings
from selfheal.models import AdapterSpec, TaskStatus
from selfheal.plugins import SelfHealing
from selfheal.policies import Policies, RetryLadder
from starter.client import build_task_input, start_task, task_outcome
from starter.testing import serving


def quick(settings: Settings, attempt_timeout: float = 30.0) -> Settings:
    ladder = RetryLadder(waits=[0.2, 0.2, 0.2], attempt_timeout=attempt_timeout)
    return settings.model_copy(update={"policies": Policies(retry=ladder)})


async def run(client: Client, settings: Settings, adapter: AdapterSpec, **kw: Any) -> TaskStatus:
    input = build_task_input(
        settings,
        agent="SAM",
        title="fix login",
        adapter=adapter,
        task_id=f"a-{uuid.uuid4().hex[:8]}",
        **kw,
    )
    handle = await start_task(client, settings, input)
    return await task_outcome(handle)


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return (
        Path(f"/proc/{pid}").exists()
        and "Z" not in Path(f"/proc/{pid}/stat").read_text().split()[2]
    )


async def test_command_success_sees_attempt_and_strategy(
    local_env: WorkflowEnvironment, settings: Settings
):
    settings = quick(settings)
    command = 'echo "attempt=$SELFHEAL_ATTEMPT strategy=$SELFHEAL_STRATEGY agent=$SELFHEAL_AGENT"'
    async with Worker(
        local_env.client, task_queue=settings.task_queue, plugins=[SelfHealing(settings)]
    ):
        status = await run(local_env.client, settings, AdapterSpec(kind="command", command=command))
    assert status.state == "succeeded"
    assert status.result == "attempt=1 strategy=initial agent=SAM"


async def test_command_failure_by_exit_code_is_classified_and_retried_with_the_error(
    local_env: WorkflowEnvironment, settings: Settings
):
    settings = quick(settings)
    command = (
        'if [ "$SELFHEAL_ATTEMPT" = 1 ]; then '
        'echo "FAILED test_login: AssertionError"; exit 1; fi; '
        'echo "strategy=$SELFHEAL_STRATEGY previous=$SELFHEAL_PREVIOUS_ERROR"'
    )
    async with Worker(
        local_env.client, task_queue=settings.task_queue, plugins=[SelfHealing(settings)]
    ):
        status = await run(local_env.client, settings, AdapterSpec(kind="command", command=command))
    first, second = status.attempts
    assert first.outcome == "failed" and first.error_kind == "task"
    assert first.error.startswith("exit code 1: FAILED test_login")
    assert second.strategy == "alternative"
    assert status.state == "succeeded"
    assert "strategy=alternative previous=exit code 1: FAILED test_login" in status.result


async def test_command_timeout_kills_the_process_group(
    local_env: WorkflowEnvironment, settings: Settings, tmp_path: Path
):
    settings = quick(settings, attempt_timeout=1.5)
    pids = tmp_path / "pids"
    command = f"echo starting; sleep 60 & echo $! >> {pids}; wait"
    async with Worker(
        local_env.client, task_queue=settings.task_queue, plugins=[SelfHealing(settings)]
    ):
        status = await run(
            local_env.client,
            settings,
            AdapterSpec(kind="command", command=command),
            hints=["one attempt is enough"],
        )
    assert status.attempts[0].error_kind == "agent"
    assert "did not finish within" in status.attempts[0].error
    assert status.attempts[1].agent == "ALEX"  # an agent fault moves to a peer
    for pid in map(int, pids.read_text().split()):
        assert not alive(pid)


async def test_cancelling_the_task_kills_the_command(
    local_env: WorkflowEnvironment, settings: Settings, tmp_path: Path
):
    settings = quick(settings)
    pid_file = tmp_path / "pid"
    command = f"echo $$ > {pid_file}; echo working; exec sleep 60"
    async with Worker(
        local_env.client, task_queue=settings.task_queue, plugins=[SelfHealing(settings)]
    ):
        input = build_task_input(
            settings,
            agent="SAM",
            title="long",
            task_id=f"c-{uuid.uuid4().hex[:6]}",
            adapter=AdapterSpec(kind="command", command=command),
        )
        handle = await start_task(local_env.client, settings, input)
        for _ in range(200):
            if pid_file.exists() and pid_file.read_text().strip():
                break
            await asyncio.sleep(0.05)
        pid = int(pid_file.read_text())
        assert alive(pid)
        began = time.monotonic()
        await handle.cancel()
        try:
            await handle.result()
            raise AssertionError("a cancelled task should not complete")
        except WorkflowFailureError:
            pass
        # The attempt hears of the cancel on a heartbeat reply: within the plugin's 5 s throttle,
        # not the SDK's 0.8 x heartbeat timeout (24 s here). Wide margin for a loaded machine.
        assert time.monotonic() - began < 15
        for _ in range(100):
            if not alive(pid):
                break
            await asyncio.sleep(0.05)
    assert not alive(pid)


async def test_http_agent_completes_asynchronously_with_its_task_token(
    local_env: WorkflowEnvironment, settings: Settings
):
    settings = quick(settings)
    client = local_env.client
    received: list[dict[str, Any]] = []
    later: set[asyncio.Task[None]] = set()

    async def complete(body: dict[str, Any]) -> None:
        await asyncio.sleep(0.3)  # the agent works, then calls back through the client
        handle = client.get_async_activity_handle(task_token=base64.b64decode(body["task_token"]))
        if body["attempt"] == 1:
            await handle.complete({"outcome": "failed", "error": "agent lost its context window"})
        else:
            await handle.complete({"outcome": "succeeded", "output": f"done by {body['agent']}"})

    async def agent(request: Request) -> JSONResponse:
        body = await request.json()
        received.append(body)
        task = asyncio.create_task(complete(body))
        later.add(task)
        return JSONResponse({"accepted": True}, status_code=202)

    app = Starlette(routes=[Route("/task", agent, methods=["POST"])])
    plugin = SelfHealing(settings)
    async with (
        serving(app) as url,
        Worker(client, task_queue=settings.task_queue, plugins=[plugin]),
    ):
        adapter = AdapterSpec(kind="http", url=f"{url}/task")
        status = await run(client, settings, adapter, hints=["check the session cookie"])
    assert status.state == "succeeded"
    assert status.result == "done by ALEX"
    assert status.attempts[0].error_kind == "agent"  # classified by the workflow
    assert [b["strategy"] for b in received] == ["initial", "fresh"]
    # hints travel as objects (id, text, advice); a person's bare string has no id
    assert [h["text"] for h in received[0]["hints"]] == ["check the session cookie"]
    assert received[0]["hints"][0]["id"] is None and "advice" in received[0]["hints"][0]
    assert received[1]["previous_error"] is None  # fresh: a clean context
    assert received[1]["agent"] == "ALEX" and received[1]["attempt"] == 2
