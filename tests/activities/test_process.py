"""The one process runner (activities/process.py) for agents and builds: a timeout or a cancel
stops the whole process group with TERM, a grace period, then KILL."""

import asyncio
import time
from pathlib import Path

import pytest
from temporalio.testing import ActivityEnvironment

from activities.build import build
from activities.process import run_in_group
from selfheal.rollback import BuildInput
from tests.rollback_repo import commit, make_repo

# Cleans up on TERM (a marker file), as a well-behaved build or agent does.
POLITE = "trap 'echo cleaned > {marker}; exit 1' TERM; echo started; while :; do sleep 0.05; done"
# Ignores TERM, and so does the grandchild it leaves behind (it inherits the ignore).
STUBBORN = "trap '' TERM; sleep 30 & echo $! > {pid}; echo started; wait"


def gone(pid: int) -> bool:
    """The process has exited (a zombie waiting for a reaper counts as gone)."""
    status = Path(f"/proc/{pid}/status")
    try:
        return "\nState:\tZ" in status.read_text()
    except FileNotFoundError:
        return True


async def run(command: str, cwd: Path, timeout: float, lines: list[str], grace: float = 3.0):
    return await run_in_group(
        command, cwd=cwd, env={"PATH": "/usr/bin:/bin"}, timeout=timeout,
        on_line=lines.append, heartbeat=lambda: None, grace=grace,
    )  # fmt: skip


async def test_a_timeout_sends_term_first_so_the_command_can_clean_up(tmp_path: Path) -> None:
    marker, lines = tmp_path / "marker", []
    code = await run(POLITE.format(marker=marker), tmp_path, 0.5, lines)
    assert code is None
    assert lines[0] == "started"
    assert marker.read_text() == "cleaned\n"


async def test_what_ignores_term_is_killed_after_the_grace_period(tmp_path: Path) -> None:
    pid_file, lines = tmp_path / "pid", []
    started = time.monotonic()
    code = await run(STUBBORN.format(pid=pid_file), tmp_path, 0.5, lines, grace=0.5)
    assert code is None
    assert time.monotonic() - started < 5
    assert gone(int(pid_file.read_text()))


async def test_a_cancel_stops_the_group_and_is_raised(tmp_path: Path) -> None:
    pid_file, marker, lines = tmp_path / "pid", tmp_path / "marker", []
    command = f"trap 'echo cleaned > {marker}; kill $child; exit 1' TERM; " \
        f"sleep 30 & child=$!; echo $child > {pid_file}; echo started; wait"  # fmt: skip
    task = asyncio.create_task(run(command, tmp_path, 60, lines))
    while not lines:
        await asyncio.sleep(0.02)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert marker.read_text() == "cleaned\n"
    assert gone(int(pid_file.read_text()))


async def test_an_exit_code_and_every_line_come_back(tmp_path: Path) -> None:
    lines: list[str] = []
    code = await run("echo one; echo two >&2; exit 3", tmp_path, 10, lines)
    assert code == 3 and lines == ["one", "two"]


async def test_a_build_that_times_out_gets_term_before_kill(tmp_path: Path) -> None:
    repo = make_repo(tmp_path / "repo")
    sha = commit(repo, "a commit", {"app.txt": "ok again\n"})
    marker = tmp_path / "marker"
    result = await ActivityEnvironment().run(
        build,
        BuildInput(repo_path=str(repo), sha=sha, command=POLITE.format(marker=marker), timeout=1),
    )
    assert result.timed_out and not result.ok
    assert "started" in result.tail
    assert marker.read_text() == "cleaned\n"
