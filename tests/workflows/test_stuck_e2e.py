"""Stuck detection and escalation end to end on the local dev server, with policies scaled so an
hour plays in seconds: a real stall, the ``temporal`` CLI's signal, a worker killed mid-ladder."""

import asyncio
import json
import subprocess
import sys
import uuid
from pathlib import Path

from temporalio.testing import WorkflowEnvironment
from temporalio.worker import Worker

from selfheal.config import Settings
from selfheal.models import AdapterSpec
from selfheal.plugins import SelfHealing
from starter.client import build_task_input, start_task, task_outcome
from starter.testing import NotificationSink, serving
from tests.waiting import eventually
from tests.workers import kill, selfheal, stack_env, start_worker
from tests.workflows.test_escalation import with_sink
from workflows.agent_task import AgentTask

TEMPORAL = Path(sys.executable).parent / "temporal"


async def test_a_stall_is_noticed_at_its_thresholds_and_resolved_by_progress(
    local_env: WorkflowEnvironment, settings: Settings
):
    # Scale 600: the peer step at 1.5 s, stuck and the lead at 3 s, the CEO at 6 s.
    sink = NotificationSink()
    async with serving(sink.app()) as url:
        settings = with_sink(settings, url)
        async with Worker(
            local_env.client, task_queue=settings.task_queue, plugins=[SelfHealing(settings)]
        ):
            input = build_task_input(
                settings,
                agent="SAM",
                title="slow build",
                adapter=AdapterSpec(kind="sim", sim="stall:4.5"),
                time_scale=600,
                task_id=f"stall-{uuid.uuid4().hex[:6]}",
            )
            handle = await start_task(local_env.client, settings, input)
            final = await asyncio.wait_for(handle.result(), 30)
    assert final.state == "succeeded"
    incident = final.incidents[0]
    assert incident.kind == "stuck"
    opened = (incident.opened_at - incident.since).total_seconds()
    stuck = (incident.stuck_at - incident.since).total_seconds()
    assert 1.5 <= opened < 2.5
    assert 3.0 <= stuck < 4.0
    assert [e.step for e in final.escalations] == ["peer", "lead"]
    assert incident.status == "resolved"  # the stall ended with progress, before the CEO step
    assert [d.path for d in sink.delivered] == ["/agents/ALEX", "/agents/MAX"]


async def test_mark_blocked_sent_by_the_temporal_cli(
    local_env: WorkflowEnvironment, settings: Settings
):
    async with Worker(
        local_env.client, task_queue=settings.task_queue, plugins=[SelfHealing(settings)]
    ):
        input = build_task_input(
            settings,
            agent="SAM",
            title="deploy",
            adapter=AdapterSpec(kind="sim", sim="transient,ok"),
            task_id=f"cli-{uuid.uuid4().hex[:6]}",
        )
        handle = await start_task(local_env.client, settings, input)

        async def retrying() -> bool:
            return (await handle.query(AgentTask.status)).state == "retrying"

        await eventually(retrying)
        result = await asyncio.to_thread(
            subprocess.run,
            [
                str(TEMPORAL), "workflow", "signal",
                "--address", local_env.client.service_client.config.target_host,
                "--workflow-id", handle.id,
                "--name", "mark_blocked",
                "--input", '{"reason":"no API key"}',
            ],
            capture_output=True, text=True, timeout=30,
        )  # fmt: skip
        assert result.returncode == 0, result.stderr

        async def blocked() -> bool:
            return (await handle.query(AgentTask.status)).state == "blocked"

        await eventually(blocked)
        status = await handle.query(AgentTask.status)
        assert status.blocked_reason == "no API key"
        assert status.incidents[0].kind == "blocked"
        assert status.next_step and status.next_step.startswith("peer at ")
        await handle.cancel()


async def temporal_signal(env: WorkflowEnvironment, workflow_id: str, name: str, *input: str):
    """``temporal workflow signal``, with ``--input`` only if given (the CLI's default: none)."""
    result = await asyncio.to_thread(
        subprocess.run,
        [
            str(TEMPORAL), "workflow", "signal",
            "--address", env.client.service_client.config.target_host,
            "--workflow-id", workflow_id, "--name", name,
            *(["--input", *input] if input else []),
        ],
        capture_output=True, text=True, timeout=30,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr


async def test_signals_with_no_input_from_the_temporal_cli_never_wedge_the_task(
    local_env: WorkflowEnvironment, settings: Settings
):
    async with Worker(
        local_env.client, task_queue=settings.task_queue, plugins=[SelfHealing(settings)]
    ):
        input = build_task_input(
            settings,
            agent="SAM",
            title="deploy",
            adapter=AdapterSpec(kind="sim", sim="transient,ok"),
            time_scale=12,  # the retry waits 5 s (blocked, it waits for resolve); peer at 75 s
            task_id=f"bare-{uuid.uuid4().hex[:6]}",
        )
        handle = await start_task(local_env.client, settings, input)

        async def state_is(state: str) -> bool:
            return (await handle.query(AgentTask.status)).state == state

        await eventually(lambda: state_is("retrying"))
        await temporal_signal(local_env, handle.id, "mark_blocked")
        await eventually(lambda: state_is("blocked"))
        status = await handle.query(AgentTask.status)
        await temporal_signal(local_env, status.incidents[0].escalation_id, "stuck")
        await temporal_signal(local_env, handle.id, "acknowledge")
        await temporal_signal(local_env, handle.id, "report_progress", '"not an object"')
        shown = await asyncio.to_thread(
            selfheal, "task", "show", input.id, env=stack_env(local_env, settings)
        )
        assert shown.returncode == 0 and "Traceback" not in shown.stderr, shown.stderr
        assert "blocked" in shown.stdout
        await temporal_signal(local_env, handle.id, "resolve", "null")
        final = await asyncio.wait_for(task_outcome(handle), 30)
    assert final.state == "succeeded"
    assert final.incidents[0].reason == "no reason given"
    assert final.incidents[0].acknowledged_by == "unknown"
    assert final.incidents[0].status == "resolved"
    assert final.ignored_signals == [
        "report_progress: body: Input should be a valid dictionary or instance of ReportProgress"
    ]
    for workflow_id in (handle.id, final.incidents[0].escalation_id):
        events = [e async for e in local_env.client.get_workflow_handle(workflow_id)
                  .fetch_history_events()]  # fmt: skip
        assert not [e for e in events if e.HasField("workflow_task_failed_event_attributes")]


def write_config(path: Path, sink_url: str) -> Path:
    team = {
        "SAM": (["ALEX", "LEO"], "engineer"),
        "ALEX": (["LEO", "SAM"], "engineer"),
        "LEO": (["SAM", "ALEX"], "engineer"),
        "QUINN": (["MAX"], "reviewer"),
        "MAX": (["QUINN"], "lead"),
    }
    lines = [f'[channels]\nceo = "{sink_url}/ceo"\ndev = "{sink_url}/dev"\n']
    for name, (peers, role) in team.items():
        lines.append(
            f'[agents.{name}]\nrole = "{role}"\npeers = {json.dumps(peers)}\n'
            f'notify_url = "{sink_url}/agents/{name}"\n'
            + ('lead = "MAX"\n' if name != "MAX" else "")
        )
    path.write_text("\n".join(lines))
    return path


async def test_worker_killed_mid_ladder_loses_no_step_and_sends_none_twice(
    local_env: WorkflowEnvironment, settings: Settings, tmp_path: Path
):
    sink = NotificationSink()
    async with serving(sink.app()) as url:
        config = write_config(tmp_path / "selfheal.toml", url)
        worker = start_worker(local_env, settings, SELFHEAL_CONFIG=str(config))
        try:
            # Scale 300: peer at 3 s, lead at 6 s, CEO at 12 s after the block.
            input = build_task_input(
                settings,
                agent="SAM",
                title="blocked deploy",
                adapter=AdapterSpec(kind="sim", sim="transient,ok"),
                time_scale=300,
                task_id=f"kill-{uuid.uuid4().hex[:6]}",
            )
            handle = await start_task(local_env.client, settings, input)

            async def retrying() -> bool:
                return (await handle.query(AgentTask.status)).state in ("retrying", "running")

            await eventually(retrying)
            await handle.signal("mark_blocked", {"reason": "waiting for credentials"})

            async def peer_pinged() -> bool:
                return len(sink.delivered) >= 1

            await eventually(peer_pinged)
            kill(worker)  # the lead step falls due while no worker runs
            await asyncio.sleep(4)
            worker = start_worker(local_env, settings, SELFHEAL_CONFIG=str(config))

            async def ceo_alerted() -> bool:
                return any(d.path == "/ceo" for d in sink.delivered)

            await eventually(ceo_alerted, timeout=40)
            status = await handle.query(AgentTask.status)
            await handle.signal("resolve", {"note": "credentials arrived"})
            final = await asyncio.wait_for(handle.result(), 30)
        finally:
            kill(worker)
    key = status.incidents[0].key
    assert sorted(sink.keys()) == sorted([f"{key}:peer", f"{key}:lead", f"{key}:ceo"])
    assert [e.step for e in final.escalations] == ["peer", "lead", "ceo"]
    assert final.state == "succeeded"
    lead = local_env.client.get_workflow_handle(f"task-lead-{input.id}-1")
    assert (await lead.describe()).status is not None
