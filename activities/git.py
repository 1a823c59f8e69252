"""Git side effects of the rollback (gitpython): read a commit, revert exactly one, list a gap.

The revert is made in a scratch worktree at the branch tip, so a conflict never touches the
user's checkout; only a clean revert is brought onto the branch, by a fast-forward (the branch
is checked out: index and tree follow) or a compare-and-swap ``update-ref`` (it is not). A dirty
tree, a detached HEAD or an operation in progress is refused before anything is written, so the
repository is left exactly as it was. Before reverting, the branch is searched for an existing
revert of the sha (its ``Selfheal-Revert-Of`` trailer), which makes the activity idempotent across
retries and worker crashes. Our own git commands run without hooks.
"""

import asyncio
import contextlib
import os
import shutil
import tempfile
import time
from collections.abc import Callable
from datetime import UTC
from pathlib import Path

import git
from temporalio import activity

from selfheal.rollback import (
    CommitInfo,
    CommitsBetweenInput,
    InspectInput,
    RevertInput,
    RevertResult,
    is_revert,
    revert_message,
    revert_of,
)

_GIT_ENV_LEAKS = (
    "GIT_DIR",
    "GIT_WORK_TREE",
    "GIT_INDEX_FILE",
    "GIT_PREFIX",
    "GIT_OBJECT_DIRECTORY",
)
_IDENTITY = {
    "GIT_AUTHOR_NAME": "selfheal",
    "GIT_AUTHOR_EMAIL": "selfheal@localhost",
    "GIT_COMMITTER_NAME": "selfheal",
    "GIT_COMMITTER_EMAIL": "selfheal@localhost",
}
_IN_PROGRESS = ("MERGE_HEAD", "REVERT_HEAD", "CHERRY_PICK_HEAD", "rebase-merge", "rebase-apply")
_SEP_FIELD, _SEP_RECORD = "\x1f", "\x1e"
Heartbeat = Callable[[str], None]


class GitError(ValueError):
    """A repository problem worded for one line (not a git repo, an unknown sha)."""


def clean_git_env() -> dict[str, str]:
    """The environment without the variables a git hook exports (they would redirect git)."""
    return {k: v for k, v in os.environ.items() if k not in _GIT_ENV_LEAKS}


def git_repo(path: str | Path) -> git.Repo:
    try:
        return git.Repo(path)
    except (git.InvalidGitRepositoryError, git.NoSuchPathError):
        raise GitError(f"not a git repository: {path}") from None


def quiet_git(repo: git.Repo) -> git.Git:
    """``repo.git`` for the next command, with hooks off (ours must not trigger the user's)."""
    return repo.git(c="core.hooksPath=/dev/null")


class Worktree:
    """A detached checkout of ``rev`` in a new temp dir, removed (and pruned) afterwards: builds
    and reverts work there, never in the user's checkout. ``with Worktree(...) as path``, or
    ``create()`` and ``remove()`` from other threads."""

    def __init__(self, repo: git.Repo, rev: str, prefix: str) -> None:
        self.repo, self.rev, self.prefix = repo, rev, prefix
        self.root: Path | None = None

    def create(self) -> Path:
        self.root = Path(tempfile.mkdtemp(prefix=self.prefix))
        path = self.root / "tree"
        try:
            quiet_git(self.repo).worktree("add", "--detach", "--quiet", str(path), self.rev)
        except BaseException:
            self.remove()
            raise
        return path

    def remove(self) -> None:
        if self.root is None:
            return
        try:
            quiet_git(self.repo).worktree("remove", "--force", str(self.root / "tree"))
        except git.GitCommandError:  # then forget it the long way: delete it, prune git's record
            shutil.rmtree(self.root, ignore_errors=True)
            with contextlib.suppress(git.GitCommandError):
                quiet_git(self.repo).worktree("prune")
        shutil.rmtree(self.root, ignore_errors=True)
        self.root = None

    def __enter__(self) -> Path:
        return self.create()

    def __exit__(self, *exc: object) -> None:
        self.remove()


def resolve(repo: git.Repo, rev: str) -> git.Commit:
    try:
        return repo.commit(rev)
    except (git.BadName, ValueError, git.GitCommandError):
        raise GitError(f"unknown commit {rev!r} in {repo.working_dir}") from None


def is_ancestor(repo: git.Repo, ancestor: str, descendant: str) -> bool:
    try:
        repo.git.merge_base("--is-ancestor", ancestor, descendant)
        return True
    except git.GitCommandError:
        return False


def branch_tip(repo: git.Repo, branch: str) -> str | None:
    try:
        return repo.git.rev_parse("--verify", "--quiet", f"refs/heads/{branch}^{{commit}}")
    except git.GitCommandError:
        return None


def dirty_reason(repo: git.Repo) -> str | None:
    """Why the checkout must not be touched, or None. Untracked files do not count."""
    if repo.head.is_detached:
        return "HEAD is detached"
    git_dir = Path(repo.git_dir)
    busy = [name for name in _IN_PROGRESS if (git_dir / name).exists()]
    if busy:
        return f"an operation is in progress ({busy[0]})"
    changes = repo.git.status(
        "--porcelain", "--untracked-files=no", env={"GIT_OPTIONAL_LOCKS": "0"}
    )
    if changes:
        count = len(changes.splitlines())
        return f"the working tree has {count} uncommitted change(s)"
    return None


def inspect_commit(input: InspectInput) -> CommitInfo:
    repo = git_repo(input.repo_path)
    commit = resolve(repo, input.sha)
    on_branch = True
    if input.branch:
        tip = branch_tip(repo, input.branch)
        on_branch = tip is not None and is_ancestor(repo, commit.hexsha, tip)
    message = str(commit.message)
    return CommitInfo(
        sha=commit.hexsha,
        parents=[p.hexsha for p in commit.parents],
        author=str(commit.author.name),
        author_email=str(commit.author.email),
        subject=message.splitlines()[0] if message else "",
        message=message,
        committed_at=commit.committed_datetime.astimezone(UTC),
        on_branch=on_branch,
    )


def _log(repo: git.Repo, revs: str, *flags: str) -> list[tuple[str, str]]:
    out = repo.git.log(*flags, f"--format=%H{_SEP_FIELD}%B{_SEP_RECORD}", revs)
    records = [r.strip("\n") for r in out.split(_SEP_RECORD) if r.strip()]
    return [tuple(r.split(_SEP_FIELD, 1)) for r in records]


def find_revert(repo: git.Repo, sha: str, tip: str) -> str | None:
    """A selfheal revert of ``sha`` already on the branch (between ``sha`` and ``tip``)."""
    for found, message in _log(repo, f"{sha}..{tip}"):
        if revert_of(message) == sha:
            return found
    return None


def culprits_in(repo: git.Repo, sha: str, culprits: list[str], depth: int = 5000) -> list[str]:
    """The culprits that ``sha`` still carries: its ancestors (or itself) within ``depth``
    commits, not reverted since by selfheal (its trailer) or by ``git revert`` (its "This
    reverts commit <sha>" body). Two git commands, whatever the number of culprits."""
    if not culprits:
        return []
    order = {h: i for i, h in enumerate(repo.git.rev_list(f"--max-count={depth}", sha).split())}
    candidates = [k for k in dict.fromkeys(culprits) if k in order]
    if not candidates:
        return []
    oldest = max(candidates, key=order.__getitem__)
    messages = [m for _, m in _log(repo, f"{oldest}..{sha}")]
    return [
        k for k in candidates
        if not any(revert_of(m) == k or f"This reverts commit {k}" in m for m in messages)
    ]  # fmt: skip


def later_commits(repo: git.Repo, sha: str, tip: str) -> list[str]:
    """First-parent commits after ``sha`` up to ``tip``, oldest first, reverts left out."""
    found = [s for s, m in _log(repo, f"{sha}..{tip}", "--first-parent") if not is_revert(m)]
    return found[::-1]


def commits_between(input: CommitsBetweenInput) -> list[str]:
    """First-parent commits after ``base`` and before ``head``, oldest first, without reverts."""
    repo = git_repo(input.repo_path)
    if not is_ancestor(repo, input.base, input.head):
        return []
    found = [s for s, m in _log(repo, f"{input.base}..{input.head}", "--first-parent")
             if not revert_of(m)]  # fmt: skip
    found.reverse()
    return [s for s in found if s != input.head][-input.limit :]


def _tree_of(repo: git.Repo, rev: str) -> str:
    return repo.git.rev_parse(f"{rev}^{{tree}}")


def _make_revert(repo: git.Repo, input: RevertInput, tip: str) -> tuple[str | None, str | None]:
    """(the revert commit, None), or (None, why not): made in a scratch worktree at ``tip``."""
    commit = repo.commit(input.sha)
    merge = len(commit.parents) > 1
    message = revert_message(
        str(commit.message).splitlines()[0] if commit.message else input.sha[:12],
        input.sha, commit.parents[0].hexsha, input.build_command, input.failure, merge,
    )  # fmt: skip
    with Worktree(repo, tip, prefix="selfheal-revert-") as scratch:
        wt = git.Repo(scratch)
        try:
            quiet_git(wt).revert("--no-commit", *(["-m", "1"] if merge else []), input.sha)
        except git.GitCommandError as err:
            conflicted = wt.git.diff("--name-only", "--diff-filter=U").split()
            with contextlib.suppress(git.GitCommandError):
                quiet_git(wt).revert("--abort")
            if conflicted:
                return None, f"reverting it conflicts in {', '.join(conflicted[:5])}"
            return None, f"git revert failed: {str(err.stderr).strip().splitlines()[-1:]}"
        if not wt.git.diff("--cached", "--name-only"):
            with contextlib.suppress(git.GitCommandError):
                quiet_git(wt).revert("--abort")
            return None, "reverting it changes nothing (was it undone already?)"
        msg_file = scratch.parent / "message"
        msg_file.write_text(message)
        quiet_git(wt).commit("--no-verify", "--quiet", "-F", str(msg_file), env=_IDENTITY)
        return wt.head.commit.hexsha, None


def _push(repo: git.Repo, branch: str) -> tuple[bool | None, str | None]:
    reader = repo.config_reader()
    remote = reader.get_value(f'branch "{branch}"', "remote", default="") or (
        "origin" if "origin" in [r.name for r in repo.remotes] else ""
    )
    if not remote:
        return None, "no remote configured"
    try:
        quiet_git(repo).push("--quiet", str(remote), f"refs/heads/{branch}")
        return True, None
    except git.GitCommandError as err:
        return False, (str(err.stderr).strip().splitlines() or ["push failed"])[-1][:300]


def _settled(repo: git.Repo, settle: float, heartbeat: Heartbeat) -> str | None:
    """Why the checkout must not be touched, after waiting up to ``settle`` seconds for a
    change in progress (an agent between ``git add`` and ``git commit``) to be committed."""
    deadline = time.monotonic() + settle
    while True:
        reason = dirty_reason(repo)
        if reason is None or time.monotonic() >= deadline:
            return reason
        heartbeat(f"waiting for the checkout to settle: {reason}")
        time.sleep(0.1)


def revert_commit(input: RevertInput, heartbeat: Heartbeat = lambda _note: None) -> RevertResult:
    repo = git_repo(input.repo_path)
    if input.branch is None:
        return RevertResult(outcome="refused", reason="the commit was made on a detached HEAD")
    tip = branch_tip(repo, input.branch)
    if tip is None:
        return RevertResult(outcome="gone", reason=f"branch {input.branch} no longer exists")
    if not is_ancestor(repo, input.sha, tip):
        return RevertResult(
            outcome="gone", reason=f"{input.sha[:12]} is no longer on {input.branch}"
        )
    if not repo.commit(input.sha).parents:
        return RevertResult(outcome="refused", reason="a root commit has no parent to go back to")
    parent_tree = _tree_of(repo, f"{input.sha}^1")
    existing = find_revert(repo, input.sha, tip)
    if existing:
        return RevertResult(
            outcome="existing", revert_sha=existing,
            tree_is_parent=_tree_of(repo, existing) == parent_tree,
            tip=repo.commit(existing).parents[0].hexsha,
            later=later_commits(repo, input.sha, existing),
        )  # fmt: skip
    reason = _settled(repo, input.settle, heartbeat)
    if reason:
        return RevertResult(outcome="refused", reason=reason)
    message = str(repo.commit(input.sha).message)
    if is_revert(message):
        return RevertResult(outcome="refused", reason="the commit is itself a revert")
    heartbeat("making the revert in a scratch worktree")
    new, why_not = _make_revert(repo, input, tip)
    if new is None:
        return RevertResult(outcome="refused", reason=why_not)
    heartbeat(f"bringing {new[:12]} onto {input.branch}")
    checked_out = repo.active_branch.name == input.branch
    if checked_out:
        reason = _settled(repo, input.settle, heartbeat)  # someone may be editing meanwhile
        if reason:
            return RevertResult(outcome="refused", reason=reason)
        # A commit that lands meanwhile makes this not a fast-forward: git refuses, the
        # activity fails and its retry makes the revert again on the new tip.
        quiet_git(repo).merge("--ff-only", "--quiet", new)
    else:
        quiet_git(repo).update_ref(f"refs/heads/{input.branch}", new, tip)
    result = RevertResult(
        outcome="reverted", revert_sha=new, tree_is_parent=_tree_of(repo, new) == parent_tree,
        tip=tip, later=later_commits(repo, input.sha, tip),
    )  # fmt: skip
    if input.push:
        result.pushed, result.push_error = _push(repo, input.branch)
    return result


class GitActivities:
    """The git activities; each runs its (blocking) gitpython work off the event loop."""

    @activity.defn(name="git.inspect_commit")
    async def inspect(self, input: InspectInput) -> CommitInfo:
        return await asyncio.to_thread(inspect_commit, input)

    @activity.defn(name="git.revert_commit")
    async def revert(self, input: RevertInput) -> RevertResult:
        loop = asyncio.get_running_loop()

        def heartbeat(note: str) -> None:
            loop.call_soon_threadsafe(activity.heartbeat, note)

        return await asyncio.to_thread(revert_commit, input, heartbeat)

    @activity.defn(name="git.commits_between")
    async def commits_between(self, input: CommitsBetweenInput) -> list[str]:
        return await asyncio.to_thread(commits_between, input)
