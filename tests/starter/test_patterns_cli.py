"""``selfheal patterns ...`` and ``selfheal schedules apply`` as a user runs them, against a
real ledger and the dev server: bad input is one line on stderr and exit 2."""

import asyncio
import json
import os
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from temporalio.client import ScheduleCalendarSpec, WorkflowExecutionStatus
from temporalio.testing import WorkflowEnvironment
from temporalio.worker import Worker

from activities.ledger import Ledger
from activities.ledger.learnings import LearningStore
from selfheal.config import Settings
from selfheal.patterns import ANALYSIS_SCHEDULE_ID
from selfheal.plugins import SelfHealing
from starter.cli.main import execute as run
from starter.pattern_schedule import analysis_spec
from tests.learning_ledger import fail, git_repo, publish
from tests.starter.test_task_cli import assert_refused
from tests.waiting import eventually
from tests.workers import selfheal, stack_env

ERROR = "tests fail: the orders migration is missing"


def seeded(settings: Settings) -> str:
    ledger = Ledger(settings.ledger_url)
    now = datetime.now(UTC)
    fp = fail(ledger, ERROR, "a", now - timedelta(hours=2), title="orders migration")
    fail(ledger, ERROR, "b", now - timedelta(hours=1), agent="ALEX", title="users migration")
    return publish(ledger, fp, "task", ERROR, now).id


def cli_env(settings: Settings, **extra: str) -> dict[str, str]:
    return os.environ | {
        "SELFHEAL_DATA_DIR": str(settings.data_dir),
        "SELFHEAL_TASK_QUEUE": settings.task_queue,
        **extra,
    }


def cli(capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, env: dict[str, str]):
    """``selfheal ARGS`` in this process (the console script's ``run``): (exit code, out, err)."""

    def call(*args: str) -> tuple[int, str, str]:
        for key, value in env.items():
            monkeypatch.setenv(key, value)
        try:
            code = run(list(args))
        except SystemExit as exit:
            code = int(exit.code or 0)
        out, err = capsys.readouterr()
        return code, out, err

    return call


def refused(result: tuple[int, str, str], fragment: str) -> None:
    code, _, err = result
    assert code == 2 and len(err.strip().splitlines()) == 1 and fragment in err, err


def test_list_show_retire_read_and_write_the_ledger(settings: Settings, capsys, monkeypatch):
    learning_id = seeded(settings)
    call = cli(capsys, monkeypatch, cli_env(settings, TEMPORAL_ADDRESS="127.0.0.1:1"))
    code, out, err = call("patterns", "list", "--json")
    assert code == 0, err
    [item] = json.loads(out)
    assert item["id"] == learning_id and item["status"] == "published"
    assert item["occurrences"] == 2 and item["agents_seen"] == ["ALEX", "SAM"]

    code, out, _ = call("patterns", "show", item["slug"])
    assert code == 0 and "strategy alternative" in out
    assert "2 occurrence(s) in 2 task(s)" in out

    code, out, err = call("patterns", "retire", learning_id, "--json")
    assert code == 0, err
    assert json.loads(out) == {"id": learning_id, "status": "retired", "entity_told": False}
    learning = LearningStore(Ledger(settings.ledger_url)).get(learning_id)
    assert learning.status == "retired"
    assert learning_id in call("patterns", "list", "--status", "retired")[1]


def test_bad_input_is_one_line_and_exit_2(settings: Settings, capsys, monkeypatch):
    seeded(settings)
    call = cli(capsys, monkeypatch, cli_env(settings, TEMPORAL_ADDRESS="127.0.0.1:1"))
    refused(call("patterns", "show", "L-nope"), "no learning 'L-nope'")
    refused(call("patterns", "retire", "nope"), "no learning 'nope'")
    refused(call("patterns", "list", "--status", "odd"), "invalid choice")
    refused(call("patterns", "show", " "), "must not be empty")
    refused(call("patterns", "analyze"), "cannot reach Temporal")
    # and through the console script, as a user runs it
    assert_refused(selfheal("patterns", "show", "L-nope", env=cli_env(settings)), "no learning")


async def test_analyze_wait_reports_a_missing_directory_in_one_line(
    local_env: WorkflowEnvironment, settings: Settings, tmp_path: Path
):
    seeded(settings)
    settings = settings.model_copy(update={"patterns_dir": tmp_path / "missing"})
    env = stack_env(local_env, settings, SELFHEAL_PATTERNS_DIR=str(settings.patterns_dir))
    async with Worker(
        local_env.client, task_queue=settings.task_queue, plugins=[SelfHealing(settings)]
    ):
        result = await asyncio.to_thread(selfheal, "patterns", "analyze", "--wait", env=env)
        assert_refused(result, "does not exist")
        assert "Pattern analysis" in result.stdout  # the digest was printed first

        directory = git_repo(tmp_path / "repo")
        ok_env = env | {"SELFHEAL_PATTERNS_DIR": str(directory)}
        settings = settings.model_copy(update={"patterns_dir": directory})
    async with Worker(
        local_env.client, task_queue=settings.task_queue, plugins=[SelfHealing(settings)]
    ):
        done = await asyncio.to_thread(
            selfheal, "patterns", "analyze", "--wait", "--json", env=ok_env
        )
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout)
    assert report["analysis_id"].startswith("patterns-now-") and report["docs"]["commit"]
    assert len(list(directory.glob("*.md"))) == 1


async def test_schedules_apply_creates_then_updates_and_the_schedule_runs_the_analysis(
    local_env: WorkflowEnvironment, settings: Settings, tmp_path: Path
):
    seeded(settings)
    directory = git_repo(tmp_path / "repo")
    settings = settings.model_copy(update={"patterns_dir": directory})
    env = stack_env(local_env, settings)
    client = local_env.client
    for _ in range(2):  # create, then update in place
        applied = await asyncio.to_thread(selfheal, "schedules", "apply", env=env)
        assert applied.returncode == 0, applied.stderr
        assert f"applied schedule {ANALYSIS_SCHEDULE_ID}" in applied.stdout
    schedule = client.get_schedule_handle(ANALYSIS_SCHEDULE_ID)
    description = await schedule.describe()
    [calendar] = description.schedule.spec.calendars
    assert isinstance(calendar, ScheduleCalendarSpec)
    assert [r.start for r in calendar.day_of_week] == [1]
    assert [r.start for r in calendar.hour] == [6]
    upcoming = description.info.next_action_times[0]
    assert upcoming.weekday() == 0 and (upcoming.hour, upcoming.minute) == (6, 0)
    try:
        async with Worker(client, task_queue=settings.task_queue, plugins=[SelfHealing(settings)]):
            await schedule.trigger()
            started: list[str] = []

            async def ran() -> bool:
                recent = (await schedule.describe()).info.recent_actions
                if not recent:
                    return False
                started[:] = [recent[-1].action.workflow_id]
                handle = client.get_workflow_handle(started[0])
                return (await handle.describe()).status == WorkflowExecutionStatus.COMPLETED

            await eventually(ran, timeout=30)
    finally:
        await schedule.delete()
    assert started[0].startswith("patterns-")  # patterns-<scheduled time>
    assert len(list(directory.glob("*.md"))) == 1


def test_a_time_scaled_week_keeps_its_monday_phase():
    spec = analysis_spec(time_scale=3600.0)
    [interval] = spec.intervals
    assert interval.every == timedelta(days=7) / 3600
    assert interval.offset == (timedelta(days=4, hours=6) / 3600) % interval.every
