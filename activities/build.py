"""``build.run``: the build command in a clean ``git worktree`` of one exact commit.

The user's working tree, index and branch are never touched: each build gets its own detached
worktree in a temp dir, removed afterwards. An optional setup command (``npm ci``, say) runs
first. The activity heartbeats while the build runs, stops its process group on timeout or
cancel (``activities.process``: TERM, a grace period, KILL), and keeps the output's tail.
Exit 126/127 of the shell ("command not found", "not executable") is a broken setup, not a
broken commit; so is an npm tool (the seed's ``npx next build``) run where there is no
package.json, or whose packages are not installed (npx is never allowed to download them).

Given earlier culprits (``revert``), the build first reverts, in its own worktree, those the
commit still carries, so the commit is judged as if they were already gone.
"""

import asyncio
import re
import time
from pathlib import Path
from typing import Any

import git
from temporalio import activity

from activities.git import Worktree, clean_git_env, culprits_in, git_repo, quiet_git
from activities.process import run_in_group
from selfheal.rollback import BuildInput, BuildResult, needs_package_json

_TAIL_CHARS = 4000
_NOT_FOUND = (126, 127)
# npx (never allowed to download here) saying that the packages it should run are not installed.
_NPX_MISSING = re.compile(
    r"npx canceled due to missing packages|could not determine executable to run|"
    r"npm (?:ERR!|error) code (?:ENOTCACHED|E404|ENOTFOUND|EAI_AGAIN)"
)


class IsolationError(Exception):
    pass


def _share_installed_packages(repo: git.Repo, tree: Path) -> None:
    """Installed packages are not in git: a build in a fresh worktree uses the checkout's."""
    installed = Path(repo.working_tree_dir or "") / "node_modules"
    if installed.is_dir() and not (tree / "node_modules").exists():
        (tree / "node_modules").symlink_to(installed, target_is_directory=True)


def _revert_carried(repo: git.Repo, tree: Path, sha: str, carried: list[str]) -> None:
    """Revert ``carried`` (oldest first) in the worktree, newest first. ``IsolationError``
    when one does not revert cleanly here."""
    checkout = git.Repo(tree)
    for culprit in reversed(carried):
        merge = len(repo.commit(culprit).parents) > 1
        try:
            quiet_git(checkout).revert("--no-commit", *(["-m", "1"] if merge else []), culprit)
        except git.GitCommandError:
            raise IsolationError(
                f"the earlier culprit {culprit[:12]} does not revert cleanly under {sha[:12]}"
            ) from None


async def _run(command: str, cwd: Path, deadline: float, label: str) -> tuple[int | None, str]:
    """Run ``command`` in a shell; (exit code or None on timeout, the output's tail)."""
    output, last_line = "", ""

    def line(text: str) -> None:
        nonlocal output, last_line
        output = (output + text + "\n")[-4 * _TAIL_CHARS :]
        last_line = text.strip()[:200] or last_line

    code = await run_in_group(
        command,
        cwd=cwd,
        env=clean_git_env() | {"CI": "1", "npm_config_yes": "false"},
        timeout=max(0.0, deadline - time.monotonic()),
        on_line=line,
        heartbeat=lambda: activity.heartbeat(f"{label}: {last_line}"),
    )
    return code, output


async def run_build(input: BuildInput) -> BuildResult:
    started = time.monotonic()
    deadline = started + input.timeout

    def result(code: int | None, output: str, phase: str, **extra: Any) -> BuildResult:
        return BuildResult(
            sha=input.sha, label=input.label, ok=code == 0, exit_code=code, phase=phase,
            duration=round(time.monotonic() - started, 3), tail=output[-_TAIL_CHARS:], **extra,
        )  # fmt: skip

    repo = git_repo(input.repo_path)
    reverted = await asyncio.to_thread(culprits_in, repo, input.sha, input.revert)
    carried = await asyncio.to_thread(culprits_in, repo, input.sha, input.carried_of)
    worktree = Worktree(repo, input.sha, prefix="selfheal-build-")
    try:
        tree = await asyncio.to_thread(worktree.create)
        _share_installed_packages(repo, tree)
        if reverted:
            try:
                await asyncio.to_thread(_revert_carried, repo, tree, input.sha, reverted)
            except IsolationError as err:
                return result(None, f"[selfheal: {err}]", "build", built=False,
                              isolation_error=str(err), reverted=reverted)  # fmt: skip
        extra = {"reverted": reverted, "carried": carried}
        activity.heartbeat(f"{input.label}: worktree of {input.sha[:12]} ready")
        steps = [("setup", input.setup_command), ("build", input.command)]
        for phase, command in steps:
            if not command:
                continue
            if needs_package_json(command) and not (tree / "package.json").exists():
                note = (
                    f"[selfheal: {phase} command {command!r} needs a package.json and "
                    f"{input.sha[:12]} has none: a broken setup, not a broken commit]"
                )
                return result(127, note, phase, broken_setup=True, **extra)
            code, output = await _run(command, tree, deadline, f"{input.label} {phase}")
            if code is None:
                note = f"\n[selfheal: {phase} timed out after {input.timeout:g}s]"
                return result(None, output + note, phase, timed_out=True, **extra)
            if code in _NOT_FOUND:
                note = f"\n[selfheal: {phase} command could not run (exit {code}): {command}]"
                return result(code, output + note, phase, broken_setup=True, **extra)
            if code != 0 and needs_package_json(command) and _NPX_MISSING.search(output):
                note = (
                    f"\n[selfheal: {phase} command {command!r}: its packages are not "
                    f"installed (run your install step, or set setup_command)]"
                )
                return result(code, output + note, phase, broken_setup=True, **extra)
            if code != 0 or phase == "build":
                return result(code, output, phase, **extra)
        raise AssertionError("unreachable: the build step always returns")
    finally:
        await asyncio.to_thread(worktree.remove)


@activity.defn(name="build.run")
async def build(input: BuildInput) -> BuildResult:
    return await run_build(input)
