"""A worker SIGKILLed while the analysis commits the docs: after a restart, one commit of the
docs and no duplicate learning (the dev server, a real worker process, a real git repository)."""

import asyncio
import stat
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

import sqlalchemy as sa
from temporalio.testing import WorkflowEnvironment

from activities.ledger import Ledger
from activities.ledger.learnings import LearningStore
from activities.ledger.schema import learnings
from selfheal.config import Settings
from selfheal.learning import LearningPolicy
from selfheal.patterns import AnalysisInput, AnalysisReport
from tests.learning_ledger import fail, git, git_repo, publish
from tests.workers import kill, start_worker
from workflows.pattern_analysis import PatternAnalysis


def slow_commit_hook(repo: Path, marker: Path) -> None:
    """``prepare-commit-msg`` runs inside ``git commit`` (``--no-verify`` does not skip it), with
    the index locked: the worker dies there."""
    hook = repo / ".git" / "hooks" / "prepare-commit-msg"
    hook.write_text(f"#!/bin/sh\ntouch {marker}\nsleep 3\n")
    hook.chmod(hook.stat().st_mode | stat.S_IEXEC)


async def test_worker_killed_during_the_analysis_commits_once(
    local_env: WorkflowEnvironment, settings: Settings, tmp_path: Path
):
    directory = git_repo(tmp_path / "repo")
    marker = tmp_path / "committing"
    slow_commit_hook(tmp_path / "repo", marker)
    ledger = Ledger(settings.ledger_url)
    now = datetime.now(UTC)
    for i in range(12):
        error = f"tests fail: module{chr(97 + i)} is missing its migration"
        fp = fail(ledger, error, f"a{i}", now - timedelta(hours=3))
        fail(ledger, error, f"b{i}", now - timedelta(hours=2), agent="ALEX")
        publish(ledger, fp, "task", error, now - timedelta(hours=1))
    with ledger.engine.connect() as conn:
        rows_before = conn.execute(sa.select(sa.func.count()).select_from(learnings)).scalar_one()

    extra = {"SELFHEAL_PATTERNS_DIR": str(directory)}
    worker = start_worker(local_env, settings, **extra)
    try:
        handle = await local_env.client.start_workflow(
            PatternAnalysis.run,
            AnalysisInput(policy=LearningPolicy(), digest=False, heartbeat_timeout=2.0),
            id=f"patterns-now-{uuid.uuid4().hex[:8]}",
            task_queue=settings.task_queue,
        )
        for _ in range(400):
            if marker.exists():
                break
            await asyncio.sleep(0.05)
        else:
            raise AssertionError("the analysis never reached its commit")
        kill(worker)  # mid-commit: the files are written, the index is locked, no commit yet
        assert git(directory, "log", "--format=%b").count("Selfheal-Analysis:") == 0
        worker = start_worker(local_env, settings, **extra)
        report = AnalysisReport.model_validate(await asyncio.wait_for(handle.result(), 90))
    finally:
        kill(worker)
    assert report.problems == []
    assert any("crashed" in note for note in report.docs.notes)  # the stale index lock
    log = git(directory, "log", "--format=%b")
    assert log.count(f"Selfheal-Analysis: {handle.id}") == 1 and log.count("Selfheal-Analysis") == 1
    assert len(list(directory.glob("*.md"))) == 12
    assert git(directory, "status", "--porcelain") == ""
    with ledger.engine.connect() as conn:
        rows_after = conn.execute(sa.select(sa.func.count()).select_from(learnings)).scalar_one()
    assert rows_after == rows_before == 12
    assert len({x.fingerprint for x in LearningStore(ledger).all()}) == 12
