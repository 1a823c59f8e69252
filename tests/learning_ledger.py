"""A ledger with known failures for the learning tests: rows written the way AgentTask writes
them, and learnings published through the store, as the Pattern entity does."""

import subprocess
from datetime import datetime, timedelta
from pathlib import Path

from activities.ledger import Ledger
from activities.ledger.learnings import LearningStore
from selfheal.errors import fingerprint
from selfheal.learning import Learning, LearningPolicy, UseRecord, template_of
from selfheal.models import AttemptLedgerEntry, AttemptRecord
from selfheal.patterns import AttemptLearning, LoadPattern, PublishInput


def fail(
    ledger: Ledger,
    error: str,
    task: str,
    at: datetime,
    *,
    n: int = 1,
    agent: str = "SAM",
    kind: str = "task",
    strategy: str = "initial",
    title: str | None = None,
) -> str:
    """One failed attempt in the ledger; returns its fingerprint."""
    fp = fingerprint(kind, error)
    attempt = AttemptRecord(
        n=n, agent=agent, strategy=strategy, outcome="failed", error_kind=kind, fingerprint=fp,
        error=error, started_at=at - timedelta(seconds=5), ended_at=at,
    )  # fmt: skip
    ledger.record_attempt(
        AttemptLedgerEntry(
            workflow_id=f"task-{task}", task_id=task, title=title or f"work on {task}",
            priority="normal", task_state="retrying", attempt=attempt,
            context={"strategy": strategy, "title": title or f"work on {task}",
                     "template": template_of(error)},
        )
    )  # fmt: skip
    return fp


def succeed(ledger: Ledger, task: str, at: datetime, *, n: int, agent: str, strategy: str) -> None:
    attempt = AttemptRecord(
        n=n, agent=agent, strategy=strategy, outcome="succeeded",
        started_at=at - timedelta(seconds=5), ended_at=at,
    )  # fmt: skip
    ledger.record_attempt(
        AttemptLedgerEntry(
            workflow_id=f"task-{task}", task_id=task, title=f"work on {task}", priority="normal",
            task_state="succeeded", attempt=attempt,
        )
    )  # fmt: skip
    LearningStore(ledger).after_attempt(
        AttemptLearning(
            workflow_id=f"task-{task}", attempt=n, outcome="succeeded", agent=agent,
            strategy=strategy, resolves=list(range(1, n)), at=at,
        ),
        LearningPolicy(),
    )  # fmt: skip


def publish(ledger: Ledger, fp: str, kind: str, error: str, at: datetime) -> Learning:
    store = LearningStore(ledger)
    state = store.load_pattern(
        LoadPattern(
            fingerprint=fp, kind=kind, template=template_of(error), window=7 * 86400,
            min_occurrences=2,
        )
    )  # fmt: skip
    return store.publish(PublishInput(state=state, policy=LearningPolicy(), at=at))


def use(ledger: Ledger, learning: Learning, task: str, n: int, outcome: str, at: datetime) -> None:
    LearningStore(ledger).after_attempt(
        AttemptLearning(
            workflow_id=f"task-{task}", attempt=n, outcome="succeeded" if outcome == "succeeded"
            else "failed", agent="ALEX", strategy="initial",
            uses=[UseRecord(learning_id=learning.id, workflow_id=f"task-{task}", attempt=n,
                            agent="ALEX", how="attached", outcome=outcome,  # type: ignore[arg-type]
                            fingerprint=learning.fingerprint, at=at)],
            at=at,
        ),
        LearningPolicy(),
    )  # fmt: skip


def git_repo(path: Path) -> Path:
    """A real git repository with one commit and a ``docs/patterns`` directory."""
    path.mkdir(parents=True, exist_ok=True)
    run = lambda *a: subprocess.run(["git", *a], cwd=path, check=True, capture_output=True)  # noqa: E731
    run("init", "-q", "-b", "main")
    run("config", "user.email", "dev@example.com")
    run("config", "user.name", "Dev")
    (path / "README.md").write_text("project\n")
    (path / "docs" / "patterns").mkdir(parents=True)
    (path / "docs" / "patterns" / ".keep").write_text("")
    run("add", ".")
    run("commit", "-q", "-m", "initial")
    return path / "docs" / "patterns"


def git(repo_dir: Path, *args: str) -> str:
    return subprocess.run(
        ["git", *args], cwd=repo_dir, check=True, capture_output=True, text=True
    ).stdout
