"""``build.run``: the build command in a clean ``git worktree`` of one exact commit.

The user's working tree, index and branch are never touched: each build gets its own detached
worktree in a temp dir, removed afterwards. An optional setup command (``npm ci``, say) runs
first. The activity heartbeats while the build runs, kills the process group on timeout or
cancel, and keeps the output's tail. Exit 126/127 of the shell ("command not found", "not
executable") is a broken setup, not a broken commit.
"""

import asyncio
import contextlib
import os
import shutil
import signal
import tempfile
import time
from pathlib import Path

from temporalio import activity

from activities.git import clean_git_env, git_repo, quiet_git
from selfheal.rollback import BuildInput, BuildResult, CommitActivities

_TAIL_CHARS = 4000
_HEARTBEAT_EVERY = 1.0
_NOT_FOUND = (126, 127)


class Worktree:
    """A detached checkout of ``sha`` in a temp dir (``create``), and its removal (``remove``)."""

    def __init__(self, repo_path: str, sha: str) -> None:
        self.repo = git_repo(repo_path)
        self.sha = sha
        self.root = Path(tempfile.mkdtemp(prefix="selfheal-build-"))
        self.path = self.root / "tree"

    def create(self) -> Path:
        quiet_git(self.repo).worktree("add", "--detach", "--quiet", str(self.path), self.sha)
        return self.path

    def remove(self) -> None:
        with contextlib.suppress(Exception):
            quiet_git(self.repo).worktree("remove", "--force", str(self.path))
        shutil.rmtree(self.root, ignore_errors=True)
        with contextlib.suppress(Exception):
            quiet_git(self.repo).worktree("prune")


async def _run(command: str, cwd: Path, deadline: float, label: str) -> tuple[int | None, str]:
    """Run ``command`` in a shell; (exit code or None on timeout, output)."""
    proc = await asyncio.create_subprocess_shell(
        command,
        cwd=cwd,
        env=clean_git_env() | {"CI": "1"},
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

    def result(code: int | None, output: str, phase: str, **extra: object) -> BuildResult:
        return BuildResult(
            sha=input.sha, label=input.label, ok=code == 0, exit_code=code, phase=phase,  # type: ignore[arg-type]
            duration=round(time.monotonic() - started, 3), tail=output[-_TAIL_CHARS:], **extra,
        )  # fmt: skip

    worktree = Worktree(input.repo_path, input.sha)
    try:
        tree = await asyncio.to_thread(worktree.create)
        activity.heartbeat(f"{input.label}: worktree of {input.sha[:12]} ready")
        steps = [("setup", input.setup_command), ("build", input.command)]
        for phase, command in steps:
            if not command:
                continue
            code, output = await _run(command, tree, deadline, f"{input.label} {phase}")
            if code is None:
                note = f"\n[selfheal: {phase} timed out after {input.timeout:g}s]"
                return result(None, output + note, phase, timed_out=True)
            if code in _NOT_FOUND:
                note = f"\n[selfheal: {phase} command could not run (exit {code}): {command}]"
                return result(code, output + note, phase, broken_setup=True)
            if code != 0 or phase == "build":
                return result(code, output, phase)
        raise AssertionError("unreachable: the build step always returns")
    finally:
        await asyncio.to_thread(worktree.remove)


@activity.defn(name=CommitActivities.BUILD)
async def build(input: BuildInput) -> BuildResult:
    return await run_build(input)
