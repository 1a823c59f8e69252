"""A relative ``command`` (``./run-agent.sh``) runs the script of the directory the task was
started from (or, for a command from the team config, of the worker's directory), not a missing
one in the task's workspace (exit 127, escalated); a missing script is refused at start."""

import os
import subprocess
import sys
import uuid
from pathlib import Path

import pytest
from temporalio.testing import WorkflowEnvironment
from temporalio.worker import Worker

from selfheal.config import Settings
from selfheal.models import AdapterSpec, TaskStatus
from selfheal.plugins import SelfHealing
from selfheal.policies import Policies, RetryLadder
from starter.client import build_task_input, start_task
from tests.workers import ROOT

SCRIPT = '#!/bin/sh\necho "agent $SELFHEAL_AGENT in $(pwd) with $*"\n'


def script(directory: Path, name: str) -> Path:
    path = directory / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(SCRIPT)
    path.chmod(0o755)
    return path


def one_attempt(settings: Settings) -> Settings:
    policies = Policies(retry=RetryLadder(waits=[], attempt_timeout=30))
    return settings.model_copy(update={"policies": policies})


async def _run(env: WorkflowEnvironment, settings: Settings, input) -> TaskStatus:
    async with Worker(env.client, task_queue=settings.task_queue, plugins=[SelfHealing(settings)]):
        return await (await start_task(env.client, settings, input)).result()


async def test_a_relative_command_runs_from_where_the_task_was_started(
    local_env: WorkflowEnvironment, settings: Settings, tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
):  # fmt: skip
    settings = one_attempt(settings)
    start_dir, elsewhere = tmp_path / "orchestrator", tmp_path / "elsewhere"
    script(start_dir, "run-agent.sh")
    elsewhere.mkdir()
    monkeypatch.chdir(start_dir)
    input = build_task_input(
        settings, agent="SAM", title="fix login", task_id=f"rel-{uuid.uuid4().hex[:6]}",
        adapter=AdapterSpec(kind="command", command="./run-agent.sh --fast"),
    )  # fmt: skip
    monkeypatch.chdir(elsewhere)  # the worker is not where the task was started
    status = await _run(local_env, settings, input)
    assert status.state == "succeeded", status.attempts[-1].error
    workspace = (settings.data_dir / "workspaces" / input.id).resolve()
    assert status.result == f"agent SAM in {workspace} with --fast"


async def test_a_relative_command_of_the_team_config_runs_from_the_workers_directory(
    local_env: WorkflowEnvironment, settings: Settings, tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
):  # fmt: skip
    settings = one_attempt(settings)
    agents = dict(settings.agents)
    agents["SAM"] = agents["SAM"].model_copy(update={"command": "./agents/sam.sh"})
    settings = settings.model_copy(update={"agents": agents})
    script(tmp_path, "agents/sam.sh")
    monkeypatch.chdir(tmp_path)  # where `selfheal worker` runs, beside its selfheal.toml
    input = build_task_input(
        settings, agent="SAM", title="fix login", task_id=f"cfg-{uuid.uuid4().hex[:6]}",
        adapter=AdapterSpec(kind="command"),
    )  # fmt: skip
    status = await _run(local_env, settings, input)
    assert status.state == "succeeded", status.attempts[-1].error
    assert status.result.startswith("agent SAM in ")


def test_a_missing_relative_command_is_refused_with_one_line(tmp_path: Path):
    env = os.environ | {"TEMPORAL_ADDRESS": "127.0.0.1:9", "SELFHEAL_DATA_DIR": str(tmp_path)}
    done = subprocess.run(
        [sys.executable, "-m", "starter.cli", "task", "start", "--agent", "SAM", "--title", "x",
         "--adapter", "command", "--command", "./run-agent.sh"],
        cwd=tmp_path, env=env | {"PYTHONPATH": str(ROOT)}, capture_output=True, text=True,
        timeout=60,
    )  # fmt: skip
    assert done.returncode == 2
    assert done.stderr.count("\n") == 1 and "Traceback" not in done.stderr
    assert "'./run-agent.sh' is not a file in" in done.stderr and str(tmp_path) in done.stderr
