"""``selfheal task ...`` as a user runs it: bad input is one line on stderr and exit 2."""

import asyncio
import uuid

import pytest
from temporalio.client import WorkflowFailureError
from temporalio.testing import WorkflowEnvironment
from temporalio.worker import Worker

from selfheal.config import Settings
from selfheal.models import AdapterSpec
from selfheal.plugins import SelfHealing
from starter.client import build_task_input, start_task
from tests.workers import selfheal, stack_env
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
        final = await (await start_task(local_env.client, settings, input)).result()
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
