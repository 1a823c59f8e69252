"""Client side of the git rollback: read a local commit, enqueue its guard, wait for the verdict.

``enqueue`` signals-with-start the repository's ``CommitQueue`` (one per repository), which runs
the ``CommitGuard`` (id ``commit-<repo name>-<path hash>-<sha[:12]>``) when the commits before it
are done.
"""

import asyncio
import shlex
import shutil
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import git
from temporalio.client import Client, WorkflowExecutionStatus
from temporalio.common import SearchAttributePair, TypedSearchAttributes
from temporalio.service import RPCError, RPCStatusCode

from activities.git import GitError, git_repo, is_ancestor, resolve
from selfheal import search_attributes as sa
from selfheal.config import Settings
from selfheal.rollback import (
    CommitCheck,
    CommitGuardInput,
    CommitQueueInput,
    GuardStatus,
    guard_workflow_id,
    needs_package_json,
    program_of,
    queue_workflow_id,
)
from workflows.commit_queue import CommitQueue

_SHELL_WORDS = frozenset({
    "cd", "test", "[", "export", "set", "if", "for", "while", "case", "true", "false",
    "exec", "env", "eval", "source", ".", "{", "(", "!", "command",
})  # fmt: skip


@dataclass(frozen=True)
class LocalCommit:
    repo_path: str
    repo_name: str
    sha: str
    branch: str | None
    first_parent: str | None


def read_commit(repo_path: str | Path, sha: str | None = None) -> LocalCommit:
    """The commit to guard (default HEAD) and the branch it is on; ``GitError`` on bad input."""
    path = Path(repo_path).expanduser()
    if not path.is_dir():
        raise GitError(f"not a git repository: {repo_path} (no such directory)")
    repo = git_repo(path)
    if repo.bare or not repo.working_tree_dir:
        raise GitError(f"{repo_path} is a bare repository; guard a checkout instead")
    root = Path(repo.working_tree_dir).resolve()
    commit = resolve(repo, sha or "HEAD")
    return LocalCommit(
        repo_path=str(root),
        repo_name=root.name,
        sha=commit.hexsha,
        branch=_branch_of(repo, commit.hexsha),
        first_parent=commit.parents[0].hexsha if commit.parents else None,
    )


def _branch_of(repo: git.Repo, sha: str) -> str | None:
    """The checked-out branch if it holds the commit, else the first branch that does."""
    if not repo.head.is_detached and is_ancestor(repo, sha, repo.active_branch.name):
        return repo.active_branch.name
    if repo.head.is_detached and repo.head.commit.hexsha == sha:
        return None  # made on a detached HEAD
    names = repo.git.branch("--contains", sha, "--format=%(refname:short)").split()
    return names[0] if names else None


def check_build_command(command: str, commit: LocalCommit | None = None) -> None:
    """A build command whose program is not installed here, or an npm tool for a commit with no
    package.json, is a broken setup: say so now, before anything is guarded."""
    try:
        words = shlex.split(command)
    except ValueError as err:
        raise ValueError(f"cannot parse build command {command!r}: {err}") from None
    if not words:
        raise ValueError("the build command is empty")
    program = program_of(command) or words[0]
    if commit and needs_package_json(command) and not _has_package_json(commit):
        raise ValueError(
            f"a broken setup: the build command {command!r} needs a package.json and "
            f"{commit.repo_path} has none at {commit.sha[:12]}; pass --build CMD "
            "(or set [policies.rollback] build_command)"
        )
    if program in _SHELL_WORDS or "/" in program:
        return
    if shutil.which(program) is None:
        raise ValueError(f"build command not found: {program!r} is not installed (a broken setup)")


def _has_package_json(commit: LocalCommit) -> bool:
    try:
        git_repo(commit.repo_path).commit(commit.sha).tree.join("package.json")
    except KeyError:
        return False
    return True


def build_check(
    settings: Settings,
    commit: LocalCommit,
    *,
    build: str | None = None,
    time_scale: float | None = None,
    heartbeat_timeout: float | None = None,
) -> CommitCheck:
    scale = time_scale or settings.time_scale
    policies = settings.policies.scaled(scale)
    policy = policies.rollback
    if build:
        policy = policy.model_copy(update={"build_command": build})
    check_build_command(policy.build_command, commit)
    if policy.setup_command:
        check_build_command(policy.setup_command, commit)
    extra: dict[str, Any] = {"heartbeat_timeout": heartbeat_timeout} if heartbeat_timeout else {}
    return CommitCheck(
        **asdict(commit),
        policy=policy,
        escalation=policies.escalation,
        peers=settings.peers(),
        lead=settings.lead,
        requested_at=datetime.now(UTC),
        time_scale=scale,
        **extra,
    )


async def enqueue(client: Client, settings: Settings, check: CommitCheck) -> str:
    """Hand the commit to its repository's queue; returns the guard's workflow id."""
    await client.start_workflow(
        CommitQueue.run,
        CommitQueueInput(repo_path=check.repo_path, repo_name=check.repo_name),
        id=queue_workflow_id(check.repo_name, check.repo_path),
        task_queue=settings.task_queue,
        start_signal="enqueue",
        start_signal_args=[check],
        search_attributes=TypedSearchAttributes(
            [SearchAttributePair(sa.KIND, "commit-queue"), SearchAttributePair(sa.STATE, "running")]
        ),
        static_summary=f"commit queue of {check.repo_name} ({check.repo_path})",
    )
    return guard_workflow_id(check.repo_name, check.repo_path, check.sha)


@dataclass(frozen=True)
class Judgement:
    """The latest run of a commit's guard: how it stands, what it was asked, what it said."""

    run_id: str
    running: bool
    input: CommitGuardInput
    status: GuardStatus | None  # its verdict, when it completed

    @property
    def build_command(self) -> str:
        return self.input.check.policy.build_command


async def latest_judgement(client: Client, workflow_id: str) -> Judgement | None:
    """The guard's latest run, or None when the commit was never guarded."""
    handle = client.get_workflow_handle(workflow_id, result_type=GuardStatus)
    try:
        description = await handle.describe()
    except RPCError as err:
        if err.status == RPCStatusCode.NOT_FOUND:
            return None
        raise
    run = client.get_workflow_handle(workflow_id, run_id=description.run_id)
    started = None
    async for event in run.fetch_history_events():
        started = event.workflow_execution_started_event_attributes
        break
    assert started is not None
    input = CommitGuardInput.model_validate_json(started.input.payloads[0].data)
    running = description.status == WorkflowExecutionStatus.RUNNING
    completed = description.status == WorkflowExecutionStatus.COMPLETED
    status = await handle.result() if completed else None
    return Judgement(description.run_id, running, input, status)


async def running(client: Client, workflow_id: str | None) -> bool:
    if not workflow_id:
        return False
    try:
        description = await client.get_workflow_handle(workflow_id).describe()
    except RPCError as err:
        if err.status == RPCStatusCode.NOT_FOUND:
            return False
        raise
    return description.status == WorkflowExecutionStatus.RUNNING


async def wait_for_guard(
    client: Client, workflow_id: str, poll: float = 0.1, after_run: str | None = None
) -> GuardStatus:
    """The guard's final status, once the queue has started it and it has finished; with
    ``after_run``, that of a newer run than that one (a re-check)."""
    handle = client.get_workflow_handle(workflow_id, result_type=GuardStatus)
    while True:
        try:
            description = await handle.describe()
        except RPCError as err:
            if err.status != RPCStatusCode.NOT_FOUND:
                raise
            await asyncio.sleep(poll)
            continue
        if after_run and description.run_id == after_run:
            await asyncio.sleep(poll)
            continue
        if description.status in (
            WorkflowExecutionStatus.RUNNING,
            WorkflowExecutionStatus.COMPLETED,
        ):
            return await handle.result()
        ended = description.status.name.lower() if description.status else "unknown"
        raise RuntimeError(f"guard {workflow_id} ended as {ended}")
