"""``selfheal task ...`` as a user runs it: bad input is one line on stderr and exit 2."""

import asyncio
import json
import os
import subprocess
import sys
import uuid

import pytest
from temporalio import workflow
from temporalio.client import WorkflowExecutionStatus, WorkflowFailureError
from temporalio.testing import WorkflowEnvironment
from temporalio.worker import Worker

from selfheal import search_attributes as sa
from selfheal.config import Settings
from selfheal.ids import task_id_of
from selfheal.models import AdapterSpec, TaskInput
from selfheal.plugins import SelfHealing
from starter.client import build_task_input, start_task, task_outcome
from tests.waiting import eventually
from tests.workers import ROOT, selfheal, stack_env
from workflows.agent_task import AgentTask

START = ["task", "start", "--agent", "SAM", "--title", "x"]


def assert_refused(result, fragment: str) -> None:
    assert result.returncode == 2, (result.stdout, result.stderr)
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert "Traceback" not in result.stderr
    assert fragment in lines[0], lines[0]


@pytest.mark.parametrize(
    ("args", "env", "fragment"),
    [
        (["task", "start", "--agent", "BOB", "--title", "x", "--sim", "ok"], {},
         "unknown agent 'BOB'"),
        ([*START, "--sim", "ok,,ok"], {}, "empty token"),
        ([*START, "--sim", "stall:-1"], {}, "stall seconds"),
        ([*START, "--sim", "ok", "--time-scale", "-5"], {}, "--time-scale must be positive"),
        ([*START, "--sim", "ok", "--time-scale", "fast"], {}, "invalid float value"),
        ([*START, "--sim", "ok"], {"SELFHEAL_CONFIG": "/nonexistent/selfheal.toml"},
         "config file not found"),
        ([*START, "--sim", "ok"], {"SELFHEAL_TIME_SCALE": "-2"}, "invalid config"),
        ([*START, "--sim", "ok"], {"TEMPORAL_ADDRESS": "127.0.0.1:1"}, "cannot reach Temporal"),
        (["task", "block", "x", "--reason", " "], {}, "--reason must not be empty"),
        (["task", "frobnicate"], {}, "invalid choice"),
        ([*START, "--adapter", "http"], {}, "the http adapter needs --url"),
        ([*START, "--sim", ""], {}, "empty token"),
        (["task", "start", "--agent", "SAM", "--title", " ", "--sim", "ok"], {},
         "the title must not be empty"),
        ([*START, "--sim", "ok", "--id", "a/b"], {}, "bad task id 'a/b'"),
        ([*START, "--sim", "ok", "--id", "fix login"], {}, "bad task id 'fix login'"),
        ([*START, "--sim", "ok", "--adapter", "command"], {}, "--sim is for the sim adapter"),
        (["task", "list", "--since", "soon"], {}, "not a duration"),
        (["task", "list", "--state", "sleepy"], {}, "invalid choice"),
        (["task", "list", "--agent", 'SAM" OR "x'], {}, "bad agent name"),
    ],
)  # fmt: skip
def test_bad_input_is_one_line_and_exit_2(args: list[str], env: dict[str, str], fragment: str):
    import os

    assert_refused(selfheal(*args, env=os.environ | env), fragment)


async def test_unknown_task_finished_task_and_no_incident_are_refused(
    local_env: WorkflowEnvironment, settings: Settings
):
    env = stack_env(local_env, settings)
    unknown = await asyncio.to_thread(selfheal, "task", "show", "no-such-task", env=env)
    assert_refused(unknown, "no task 'no-such-task'")

    async with Worker(local_env.client, task_queue=settings.task_queue,
                      plugins=[SelfHealing(settings)]):  # fmt: skip
        input = build_task_input(settings, agent="SAM", title="x",
                                 adapter=AdapterSpec(kind="sim", sim="transient,ok"),
                                 task_id=f"cli-{uuid.uuid4().hex[:6]}")  # fmt: skip
        handle = await start_task(local_env.client, settings, input)
        for _ in range(200):
            if (await handle.query(AgentTask.status)).state == "retrying":
                break
            await asyncio.sleep(0.05)
        no_incident = await asyncio.to_thread(
            selfheal, "task", "ack", input.id, "--by", "MAX", env=env
        )
        assert_refused(no_incident, "has no open incident")
        blocked = await asyncio.to_thread(
            selfheal, "task", "block", input.id, "--reason", "no API key", env=env
        )
        assert blocked.returncode == 0, blocked.stderr
        for _ in range(200):
            if (await handle.query(AgentTask.status)).state == "blocked":
                break
            await asyncio.sleep(0.05)
        shown = await asyncio.to_thread(selfheal, "task", "show", handle.id, env=env)
        assert "blocked" in shown.stdout and "incident 1" in shown.stdout
        acked = await asyncio.to_thread(selfheal, "task", "ack", input.id, "--by", "MAX", env=env)
        assert acked.returncode == 0, acked.stderr
        resolved = await asyncio.to_thread(selfheal, "task", "resolve", input.id, env=env)
        assert resolved.returncode == 0, resolved.stderr
        for _ in range(200):
            status = await handle.query(AgentTask.status)
            if status.incidents[0].status == "resolved":
                break
            await asyncio.sleep(0.05)
        assert status.incidents[0].acknowledged_by == "MAX"
        assert status.state == "retrying"
        await handle.cancel()
        with pytest.raises(WorkflowFailureError):
            await handle.result()
    finished = await asyncio.to_thread(
        selfheal, "task", "block", input.id, "--reason", "late", env=env
    )
    # A signal to a finished task is ignored, not an error (DESIGN §4).
    assert finished.returncode == 0, finished.stderr
    assert "has finished; mark_blocked ignored" in finished.stderr


async def test_show_of_a_failed_task_lists_the_escalation_that_outlived_it(
    local_env: WorkflowEnvironment, settings: Settings
):
    import json

    env = stack_env(local_env, settings)
    async with Worker(
        local_env.client, task_queue=settings.task_queue, plugins=[SelfHealing(settings)]
    ):
        input = build_task_input(
            settings, agent="SAM", title="rotate key", task_id=f"f-{uuid.uuid4().hex[:6]}",
            adapter=AdapterSpec(kind="sim", sim="permanent"),
        )  # fmt: skip
        final = await task_outcome(await start_task(local_env.client, settings, input))
        assert final.escalations == []  # the task ended before its escalation fired
        for _ in range(100):
            shown = await asyncio.to_thread(selfheal, "task", "show", input.id, "--json", env=env)
            status = json.loads(shown.stdout)
            if status["escalations"]:
                break
            await asyncio.sleep(0.1)
    assert status["state"] == "failed"
    assert [e["step"] for e in status["escalations"]] == ["lead"]
    assert status["escalations"][0]["target"] == "MAX"


def sim_input(settings: Settings, script: str, prefix: str = "cli") -> TaskInput:
    return build_task_input(
        settings, agent="SAM", title="fix login", adapter=AdapterSpec(kind="sim", sim=script),
        task_id=f"{prefix}-{uuid.uuid4().hex[:6]}",
    )  # fmt: skip


async def cli(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return await asyncio.to_thread(selfheal, *args, env=env)


async def test_start_with_the_id_of_a_running_or_finished_task_is_refused(
    local_env: WorkflowEnvironment, settings: Settings
):
    env = stack_env(local_env, settings)
    running = await start_task(local_env.client, settings, sim_input(settings, "hang"))
    again = await cli(env, *START, "--sim", "ok", "--id", task_id_of(running.id))
    assert_refused(again, "is already running")
    await running.cancel()

    async with Worker(local_env.client, task_queue=settings.task_queue,
                      plugins=[SelfHealing(settings)]):  # fmt: skip
        input = sim_input(settings, "ok")
        assert (await task_outcome(await start_task(local_env.client, settings, input))).state
        twice = await cli(env, *START, "--sim", "ok", "--id", input.id)
        assert_refused(twice, f"task {input.id} already ran")
        assert "--rerun" in twice.stderr
        rerun = await cli(env, *START, "--sim", "ok", "--id", input.id, "--rerun", "--wait")
    assert rerun.returncode == 0, rerun.stderr
    runs = await local_env.client.count_workflows(f"WorkflowId = 'task-{input.id}'")
    assert runs.count == 2


async def test_a_failed_task_is_a_failed_execution_and_wait_prints_its_document(
    local_env: WorkflowEnvironment, settings: Settings
):
    env = stack_env(local_env, settings)
    async with Worker(local_env.client, task_queue=settings.task_queue,
                      plugins=[SelfHealing(settings)]):  # fmt: skip
        result = await cli(env, *START, "--sim", "permanent", "--wait", "--json")
        assert result.returncode == 1, result.stderr
        status = json.loads(result.stdout)
        assert status["state"] == "failed" and len(status["attempts"]) == 1
        handle = local_env.client.get_workflow_handle(status["workflow_id"])
        assert (await handle.describe()).status == WorkflowExecutionStatus.FAILED
        with pytest.raises(WorkflowFailureError) as failed:
            await handle.result()
        assert failed.value.cause.type == "TaskFailed"
        shown = await cli(env, "task", "show", status["id"])
    assert shown.returncode == 0, shown.stderr
    assert f"{status['workflow_id']}  SAM  failed" in shown.stdout


async def test_show_into_a_closed_pipe_exits_quietly(
    local_env: WorkflowEnvironment, settings: Settings
):
    async with Worker(local_env.client, task_queue=settings.task_queue,
                      plugins=[SelfHealing(settings)]):  # fmt: skip
        input = sim_input(settings, "ok")
        await task_outcome(await start_task(local_env.client, settings, input))

    def show_into_closed_pipe() -> tuple[int, str]:
        read, write = os.pipe()
        os.close(read)  # `| head` that has already exited
        try:
            proc = subprocess.run(
                [sys.executable, "-m", "starter.cli", "task", "show", input.id, "--json"],
                cwd=ROOT, env=stack_env(local_env, settings), stdout=write,
                stderr=subprocess.PIPE, text=True, timeout=60, stdin=subprocess.DEVNULL,
            )  # fmt: skip
        finally:
            os.close(write)
        return proc.returncode, proc.stderr

    code, stderr = await asyncio.to_thread(show_into_closed_pipe)
    assert "Traceback" not in stderr and "BrokenPipe" not in stderr, stderr
    assert code == 0, stderr


@workflow.defn(name="AgentTask", sandboxed=False)
class WedgedTask:
    """Stands in for an AgentTask whose every workflow task fails (say, a bad signal handler)."""

    @workflow.run
    async def run(self, input: dict) -> None:
        raise RuntimeError("wedged on purpose")


async def test_show_of_a_wedged_or_cancelled_task_prints_what_is_known(
    local_env: WorkflowEnvironment, settings: Settings
):
    env = stack_env(local_env, settings)
    input = sim_input(settings, "ok", prefix="wedged")
    async with Worker(local_env.client, task_queue=settings.task_queue, workflows=[WedgedTask]):
        handle = await start_task(local_env.client, settings, input)

        async def failing() -> bool:
            events = [e async for e in handle.fetch_history_events()]
            return any(e.HasField("workflow_task_failed_event_attributes") for e in events)

        await eventually(failing)
        wedged = await cli(env, "task", "show", input.id)
    assert "Traceback" not in wedged.stderr, wedged.stderr
    assert wedged.returncode == 1
    assert f"{handle.id}  SAM  running (last known; workflow running)" in wedged.stdout
    assert "its workflow task keeps failing: wedged on purpose" in wedged.stdout
    await handle.terminate()

    async with Worker(local_env.client, task_queue=settings.task_queue,
                      plugins=[SelfHealing(settings)]):  # fmt: skip
        input = sim_input(settings, "hang", prefix="cancel")
        handle = await start_task(local_env.client, settings, input)
        cancelled = await cli(env, "task", "cancel", input.id, "--reason", "not needed")
        assert cancelled.returncode == 0, cancelled.stderr
        assert cancelled.stdout.strip() == f"cancel requested: {handle.id}"
        with pytest.raises(WorkflowFailureError):
            await handle.result()
        # A worker replays the cancelled task's history to answer: the whole document.
        shown = await cli(env, "task", "show", input.id, "--json")
        assert shown.returncode == 0, shown.stderr
        assert json.loads(shown.stdout)["state"] == "cancelled"
        again = await cli(env, "task", "cancel", input.id)
    assert again.returncode == 0 and "has finished; cancel ignored" in again.stderr


async def test_ack_resolve_block_are_updates_that_answer(
    local_env: WorkflowEnvironment, settings: Settings
):
    env = stack_env(local_env, settings)
    async with Worker(local_env.client, task_queue=settings.task_queue,
                      plugins=[SelfHealing(settings)]):  # fmt: skip
        input = sim_input(settings, "hang")  # an attempt that runs until the task is cancelled
        handle = await start_task(local_env.client, settings, input)
        assert_refused(await cli(env, "task", "resolve", input.id), "has no open or acknowledged")
        blocked = await cli(env, "task", "block", input.id, "--reason", "no API key", "--json")
        assert blocked.returncode == 0, blocked.stderr
        answer = json.loads(blocked.stdout)
        assert answer["state"] == "blocked" and answer["incident"]["n"] == 1
        acked = await cli(env, "task", "ack", input.id, "--by", "MAX")
        assert acked.stdout.strip() == (
            f"{handle.id}: incident 1 acknowledged by MAX: no further steps"
        )
        assert_refused(await cli(env, "task", "ack", input.id, "--by", "LEO"), "no open incident")
        resolved = await cli(env, "task", "resolve", input.id, "--note", "key added")
        assert resolved.stdout.strip() == f"{handle.id}: incident 1 resolved", resolved.stderr
        final = await handle.query(AgentTask.status)
        await handle.cancel()
    assert final.state == "running"
    assert final.incidents[0].acknowledged_by == "MAX"
    assert final.incidents[0].resolution == "key added"
    assert final.ignored_signals == []  # the refusals were answers, not ignored signals


async def test_list_filters_on_the_search_attributes(
    local_env: WorkflowEnvironment, settings: Settings
):
    env = stack_env(local_env, settings)
    async with Worker(local_env.client, task_queue=settings.task_queue,
                      plugins=[SelfHealing(settings)]):  # fmt: skip
        ok = build_task_input(settings, agent="LEO", title="add list",
                              task_id=f"l-{uuid.uuid4().hex[:6]}",
                              adapter=AdapterSpec(kind="sim", sim="ok"))  # fmt: skip
        failed = build_task_input(settings, agent="LEO", title="rotate key",
                                  task_id=f"l-{uuid.uuid4().hex[:6]}",
                                  adapter=AdapterSpec(kind="sim", sim="permanent"))  # fmt: skip
        for input in (ok, failed):
            await task_outcome(await start_task(local_env.client, settings, input))

    async def visible() -> bool:  # the dev server's visibility is eventually consistent
        query = f'SelfhealAgent = "LEO" AND WorkflowId IN ("task-{ok.id}", "task-{failed.id}")'
        states = [
            e.typed_search_attributes.get(sa.STATE)
            async for e in local_env.client.list_workflows(query)
        ]
        return sorted(states) == ["failed", "succeeded"]

    await eventually(visible, timeout=30)
    out = await cli(env, "task", "list", "--agent", "leo", "--state", "failed", "--since", "10m",
                    "--json")  # fmt: skip
    assert out.returncode == 0, out.stderr
    rows = {r["id"]: r for r in json.loads(out.stdout)}
    assert failed.id in rows and ok.id not in rows
    assert rows[failed.id]["title"] == "rotate key"
    assert rows[failed.id]["execution"] == "failed" and rows[failed.id]["agent"] == "LEO"
    text = await cli(env, "task", "list", "--agent", "LEO", "--since", "1h")
    assert text.returncode == 0, text.stderr
    lines = {line.split()[0]: line for line in text.stdout.splitlines()}
    assert "succeeded" in lines[f"task-{ok.id}"] and "add list" in lines[f"task-{ok.id}"]
    assert "failed" in lines[f"task-{failed.id}"]
