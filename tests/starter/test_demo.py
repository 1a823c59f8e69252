"""`selfheal demo`: scenarios are found, not listed; progress shows while they run; a broken,
slow or silent scenario is a failed check (exit 1), never a traceback; the SDK's and the core's
logs stay out of the terminal; the whole demo in a real terminal (a pty) exits 0."""

import asyncio
import io
import logging
import os
import re
import subprocess
import sys
import textwrap
import uuid
from pathlib import Path

import pytest
from temporalio.api.enums.v1 import EventType, ParentClosePolicy
from temporalio.client import Client, WorkflowExecutionStatus
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.testing import WorkflowEnvironment
from temporalio.worker import Worker

import starter.demo.scenarios
from selfheal.config import Settings
from selfheal.plugins import SelfHealing
from starter.demo.runner import run_scenarios
from starter.demo.scenario import DemoContext, Metric, Scenario, ScenarioResult
from starter.demo.scenarios import discover, review
from starter.logs import core_logging
from tests.workers import ROOT

REQUEST_CANCEL = ParentClosePolicy.PARENT_CLOSE_POLICY_REQUEST_CANCEL


def test_every_scenario_is_found_and_the_notifications_check_runs_last():
    found = discover()
    names = [s.name for s in found]
    for name in ("auto-retry (M2.1)", "blocker detection (M2.4)", "PR auto-review (M2.3)",
                 "git rollback (M2.2)", "notifications"):  # fmt: skip
        assert name in names
    assert names[-1] == "notifications" and found[-1].phase > found[0].phase
    assert all(s.metrics for s in found), "every scenario names the seed metric rows it measures"


def test_a_new_scenario_is_one_module(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    (tmp_path / "extra_health.py").write_text(
        textwrap.dedent("""
        from starter.demo.scenario import Scenario, ScenarioResult

        async def run(ctx):
            return ScenarioResult("health", [])

        SCENARIO = Scenario("health dashboard (M2.6)", run, metrics=("agent uptime",), order=45)
        """)
    )
    monkeypatch.setattr(
        starter.demo.scenarios, "__path__", [*starter.demo.scenarios.__path__, str(tmp_path)]
    )
    monkeypatch.delitem(sys.modules, "starter.demo.scenarios.extra_health", raising=False)
    names = [s.name for s in discover()]
    assert names.index("health dashboard (M2.6)") == names.index("git rollback (M2.2)") + 1


class Quick(Scenario):
    def time_limit(self, time_scale: float) -> float:
        return 1.0


async def _fine(ctx: DemoContext) -> ScenarioResult:
    ctx.report("step one")
    await asyncio.sleep(0.05)
    ctx.report("step two")
    return ScenarioResult("fine", ["a"], rows=[["1"]], metrics=[
        Metric("fine rate", "100%", "> 80%", True, note="counts what it says"),
    ])  # fmt: skip


async def _broken(ctx: DemoContext) -> ScenarioResult:
    raise RuntimeError("boom\nsecond line")


async def _slow(ctx: DemoContext) -> ScenarioResult:
    await asyncio.sleep(60)
    raise AssertionError("unreachable")


async def _silent(ctx: DemoContext) -> ScenarioResult:
    return ScenarioResult("silent", [])


async def test_progress_lines_and_failed_checks_without_a_traceback(
    local_env: WorkflowEnvironment, settings: Settings, caplog: pytest.LogCaptureFixture
):
    out = io.StringIO()  # not a terminal: one plain line per step
    scenarios = [
        Scenario("fine", _fine, metrics=("fine rate",), order=1),
        Scenario("broken", _broken, metrics=("broken rate",), order=2),
        Quick("slow", _slow, order=3),
        Scenario("silent", _silent, metrics=("silent rate",), order=4),
    ]
    code = await run_scenarios(settings, local_env.client, None, out=out, scenarios=scenarios)
    text = out.getvalue()
    assert code == 1
    progress = [line.split("] ", 1)[1] for line in text.splitlines() if line.startswith("[")]
    assert progress.index("fine: step one") < progress.index("fine: step two")
    assert "fine: done: fine rate: 100%" in progress
    assert "broken: FAILED: raised RuntimeError: boom" in progress
    assert "check failed: broken: raised RuntimeError: boom" in text
    assert "check failed: slow: did not finish within 1s" in text
    assert "check failed: silent rate is not measured, target -" in text
    assert "fine rate counts what it says" in text
    assert "Traceback" not in text and text.rstrip().endswith("4 check(s) failed")
    assert any("scenario broken raised" in r.getMessage() and r.exc_info for r in caplog.records)

    out = io.StringIO()
    ok = await run_scenarios(
        settings, local_env.client, None, as_json=True, out=out, scenarios=scenarios[:1]
    )
    assert ok == 0 and "all checks held" in out.getvalue()
    assert '"note": "counts what it says"' in out.getvalue()


async def test_the_review_scenario_is_quiet(
    local_env: WorkflowEnvironment, settings: Settings, caplog: pytest.LogCaptureFixture
):
    """The superseded review cancels its task; the task stops its running attempt before it
    ends, so neither the core ("Activity not found on completion", "Task not found when
    completing") nor the SDK (a not-found cancel traceback) has anything to warn about."""
    caplog.set_level(logging.WARNING)
    # A client of its own whose core logs are forwarded to Python logging, where caplog sees them.
    target = local_env.client.service_client.config.target_host
    client = await Client.connect(
        target,
        data_converter=pydantic_data_converter,
        runtime=core_logging(logging.getLogger("tests.core"), "WARN"),
    )
    settings = settings.model_copy(update={"time_scale": 60.0})
    ctx = DemoContext(settings=settings, client=client, ui_url=None)
    async with Worker(client, task_queue=settings.task_queue, plugins=[SelfHealing(settings)]):
        results = [await review.run(ctx) for _ in range(2)]
        await asyncio.sleep(1.0)  # a late completion of a cancelled attempt would log now
    assert [r.failures for r in results] == [[], []]
    warnings = [f"{r.name}: {r.getMessage()}" for r in caplog.records if r.levelno >= logging.WARN]
    assert warnings == []
    for result in results:
        superseded = next(r[4].text for r in result.rows if r[3] == "superseded")
        task = client.get_workflow_handle(f"task-review-{superseded.removeprefix('pr-')}")
        assert (await task.describe()).status == WorkflowExecutionStatus.CANCELED
        started = [
            e.start_child_workflow_execution_initiated_event_attributes
            async for e in client.get_workflow_handle(superseded).fetch_history_events()
            if e.event_type == EventType.EVENT_TYPE_START_CHILD_WORKFLOW_EXECUTION_INITIATED
        ]
        # Closed before its task (superseded while the task started), the review cancels it.
        assert started[0].parent_close_policy == REQUEST_CANCEL


def run_in_terminal(args: list[str], env: dict[str, str], timeout: float) -> tuple[int, str]:
    """``args`` with a pty as stdin, stdout and stderr, as in a terminal: (exit code, output)."""
    main, side = os.openpty()
    process = subprocess.Popen(args, cwd=ROOT, env=env, stdin=side, stdout=side, stderr=side,
                               start_new_session=True)  # fmt: skip
    os.close(side)
    chunks = []
    while True:
        try:
            chunk = os.read(main, 65536)
        except OSError:  # EIO: every writer has closed the terminal
            break
        if not chunk:
            break
        chunks.append(chunk)
    os.close(main)
    return process.wait(timeout=timeout), b"".join(chunks).decode(errors="replace")


async def test_the_demo_in_a_terminal_shows_live_progress_and_exits_0(
    local_env: WorkflowEnvironment, tmp_path: Path
):
    env = os.environ | {
        "TEMPORAL_ADDRESS": local_env.client.service_client.config.target_host,
        "SELFHEAL_TASK_QUEUE": f"demo-{uuid.uuid4().hex[:8]}",
        "COLUMNS": "120",
        "LINES": "40",
    }
    args = [sys.executable, "-m", "starter.cli", "demo", "--data-dir", str(tmp_path)]
    code, output = await asyncio.to_thread(run_in_terminal, args, env, 300)
    plain = re.sub(r"\x1b\[[0-9;?]*[A-Za-z]|\x1b\]8;[^\x1b]*\x1b\\", "", output)
    assert code == 0, "\n".join(line for line in plain.splitlines() if "check failed" in line)
    assert "\x1b[" in output  # drawn for a terminal: the live table, then coloured tables
    assert "✓" in output and "all checks held" in output
    assert "retry success rate counts the 8 of 9 tasks that failed at least once" in output
    for noise in ("Traceback", "WARN", "Completing activity"):
        assert noise not in output
    assert (tmp_path / "demo" / "demo.log").exists()
