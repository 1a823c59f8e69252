"""``build.run``: the build command in a clean ``git worktree`` of one exact commit.

The user's working tree, index and branch are never touched: each build gets its own detached
worktree in a temp dir, removed afterwards. An optional setup command (``npm ci``, say) runs
first. The activity heartbeats while the build runs, kills the process group on timeout or
cancel, and keeps the output's tail. Exit 126/127 of the shell ("command not found", "not
executable") is a broken setup, not a broken commit; so is an npm tool (the seed's ``npx next
build``) run where there is no package.json, or whose packages are not installed (npx is never
allowed to download them).

Given earlier culprits (``revert``), the build first reverts, in its own worktree, those the
commit still carries, so the commit is judged as if they were already gone.
"""

import asyncio
import contextlib
import os
import re
import shutil
import signal
import tempfile
import time
from pathlib import Path
from typing import Any

import git
from temporalio import activity

from activities.git import clean_git_env, culprits_in, git_repo, quiet_git
from selfheal.rollback import BuildInput, BuildResult, needs_package_json

_TAIL_CHARS = 4000
_HEARTBEAT_EVERY = 1.0
_NOT_FOUND = (126, 127)
# npx (never allowed to download here) saying that the packages it should run are not installed.
_NPX_MISSING = re.compile(
    r"npx canceled due to missing packages|could not determine executable to run|"
    r"npm (?:ERR!|error) code (?:ENOTCACHED|E404|ENOTFOUND|EAI_AGAIN)"
)


class IsolationError(Exception):
    pass


class Worktree:
    """A detached checkout of ``sha`` in a temp dir (``create``), and its removal (``remove``)."""

    def __init__(self, repo_path: str, sha: str) -> None:
        self.repo = git_repo(repo_path)
        self.sha = sha
        self.root: Path | None = None
        self.path = Path()

    def create(self) -> Path:
        self.root = Path(tempfile.mkdtemp(prefix="selfheal-build-"))
        self.path = self.root / "tree"
        quiet_git(self.repo).worktree("add", "--detach", "--quiet", str(self.path), self.sha)
        # Installed packages are not in git: a build in a fresh worktree uses the checkout's.
        installed = Path(self.repo.working_tree_dir or "") / "node_modules"
        if installed.is_dir() and not (self.path / "node_modules").exists():
            (self.path / "node_modules").symlink_to(installed, target_is_directory=True)
        return self.path

    def carried(self, culprits: list[str]) -> list[str]:
        """The culprits this commit still carries (they need no worktree to be found)."""
        return culprits_in(self.repo, self.sha, culprits)

    def revert(self, carried: list[str]) -> None:
        """Revert ``carried`` (oldest first) in the worktree, newest first. ``IsolationError``
        when one does not revert cleanly here."""
        tree = git.Repo(self.path)
        for culprit in reversed(carried):
            merge = len(self.repo.commit(culprit).parents) > 1
            try:
                quiet_git(tree).revert("--no-commit", *(["-m", "1"] if merge else []), culprit)
            except git.GitCommandError:
                raise IsolationError(
                    f"the earlier culprit {culprit[:12]} does not revert cleanly under "
                    f"{self.sha[:12]}"
                ) from None

    def remove(self) -> None:
        if self.root is None:
            return
        try:
            quiet_git(self.repo).worktree("remove", "--force", str(self.path))
        except Exception:  # then forget it the long way: delete it, and prune git's record
            shutil.rmtree(self.root, ignore_errors=True)
            with contextlib.suppress(Exception):
                quiet_git(self.repo).worktree("prune")
        shutil.rmtree(self.root, ignore_errors=True)


async def _run(command: str, cwd: Path, deadline: float, label: str) -> tuple[int | None, str]:
    """Run ``command`` in a shell; (exit code or None on timeout, output)."""
    proc = await asyncio.create_subprocess_shell(
        command,
        cwd=cwd,
        env=clean_git_env() | {"CI": "1", "npm_config_yes": "false"},
        stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
        start_new_session=True,
    )
    output = bytearray()
    last_line = ""

    async def read() -> None:
        nonlocal last_line
        assert proc.stdout is not None
        async for line in proc.stdout:
            output.extend(line)
            del output[: max(0, len(output) - 4 * _TAIL_CHARS)]
            last_line = line.decode(errors="replace").strip()[:200] or last_line

    reader = asyncio.ensure_future(read())
    try:
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                _kill(proc)
                await proc.wait()
                return None, output.decode(errors="replace")
            try:
                await asyncio.wait_for(
                    asyncio.shield(proc.wait()), min(_HEARTBEAT_EVERY, remaining)
                )
                break
            except TimeoutError:
                activity.heartbeat(f"{label}: {last_line}")
        await reader
        return proc.returncode, output.decode(errors="replace")
    except asyncio.CancelledError:
        _kill(proc)
        raise
    finally:
        reader.cancel()


def _kill(proc: asyncio.subprocess.Process) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGKILL)


async def run_build(input: BuildInput) -> BuildResult:
    started = time.monotonic()
    deadline = started + input.timeout

    def result(code: int | None, output: str, phase: str, **extra: Any) -> BuildResult:
        return BuildResult(
            sha=input.sha, label=input.label, ok=code == 0, exit_code=code, phase=phase,
            duration=round(time.monotonic() - started, 3), tail=output[-_TAIL_CHARS:], **extra,
        )  # fmt: skip

    worktree = Worktree(input.repo_path, input.sha)
    reverted = await asyncio.to_thread(worktree.carried, input.revert)
    carried = await asyncio.to_thread(worktree.carried, input.carried_of)
    try:
        tree = await asyncio.to_thread(worktree.create)
        if reverted:
            try:
                await asyncio.to_thread(worktree.revert, reverted)
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
