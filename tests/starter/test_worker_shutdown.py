"""`selfheal worker` stops gracefully on SIGTERM: running activities finish within the grace
period, or are handed back to Temporal and finished by another worker, using no ladder step."""

import asyncio
import shlex
import signal
import subprocess
import sys
import uuid
from pathlib import Path

from temporalio.testing import WorkflowEnvironment

from selfheal.config import Settings
from selfheal.models import AdapterSpec
from selfheal.policies import Policies, RetryLadder
from starter.client import build_task_input, start_task
from tests.workers import ROOT, kill, stack_env


def start_worker(env: WorkflowEnvironment, settings: Settings, grace: float) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-m", "starter.cli", "worker", "--shutdown-grace", str(grace)],
        cwd=ROOT,
        env=stack_env(env, settings),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
    )


def agent_command(runs: Path, seconds: float) -> str:
    """Counts its runs in ``runs``, then prints a line every 0.2 s for ``seconds``."""
    script = (
        f"import pathlib, time; p = pathlib.Path({str(runs)!r}); "
        "p.write_text(p.read_text() + 'x' if p.exists() else 'x'); "
        f"[print(i, flush=True) or time.sleep(0.2) for i in range(int({seconds} / 0.2))]"
    )
    return f"{shlex.quote(sys.executable)} -c {shlex.quote(script)}"


async def run_then_sigterm(
    local_env: WorkflowEnvironment, settings: Settings, tmp_path: Path, *, grace: float, work: float
) -> tuple[int, str, int, list[str]]:
    settings = settings.model_copy(
        update={"policies": Policies(retry=RetryLadder(waits=[0.5, 0.5, 0.5], heartbeat_timeout=2))}
    )
    runs = tmp_path / "runs"
    task = build_task_input(
        settings,
        agent="SAM",
        title="long job",
        task_id=f"sigterm-{uuid.uuid4().hex[:6]}",
        adapter=AdapterSpec(kind="command", command=agent_command(runs, work)),
    )
    first = start_worker(local_env, settings, grace)
    second = None
    try:
        handle = await start_task(local_env.client, settings, task)
        for _ in range(1200):  # until the agent runs on the first worker (a slow start under load)
            if runs.exists():
                break
            await asyncio.sleep(0.05)
        assert runs.exists(), "the attempt never started"
        first.send_signal(signal.SIGTERM)
        code = await asyncio.to_thread(first.wait, grace + 30)
        output = first.stdout.read() if first.stdout else ""
        second = start_worker(local_env, settings, grace)
        status = await asyncio.wait_for(handle.result(), 60)
    finally:
        kill(first)
        if second is not None:
            kill(second)
    assert status.state == "succeeded"
    return code, output, len(runs.read_text()), [a.outcome for a in status.attempts]


async def test_sigterm_lets_a_running_attempt_finish(
    local_env: WorkflowEnvironment, settings: Settings, tmp_path: Path
):
    code, output, runs, outcomes = await run_then_sigterm(
        local_env, settings, tmp_path, grace=30, work=2
    )
    assert code == 0
    assert "stopping (SIGTERM)" in output
    assert runs == 1  # finished on the worker that was stopping, not run again
    assert outcomes == ["succeeded"]


async def test_sigterm_hands_back_an_attempt_that_outlives_the_grace(
    local_env: WorkflowEnvironment, settings: Settings, tmp_path: Path
):
    code, _output, runs, outcomes = await run_then_sigterm(
        local_env, settings, tmp_path, grace=0.5, work=3
    )
    assert code == 0
    assert runs == 2  # cancelled on the stopping worker, run again by the next one
    assert outcomes == ["succeeded"]  # an infrastructure retry, not a ladder step
