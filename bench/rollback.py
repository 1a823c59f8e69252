"""Rollback benchmark (M2.2): commit → revert committed, CommitGuard vs a bare shell script.

A real repository whose build takes about 1 s and fails. For each of several breaking commits,
in the same run and interleaved: (a) selfheal — the commit is handed to its CommitQueue (as the
post-commit hook does, from a client already connected) and the clock stops when the revert is on
the branch; (b) a bare shell script in a twin repository — build; build again; ``git revert
--no-edit``. Both run against the same kind of commit on the same machine; selfheal builds in
clean worktrees and runs the re-run and the parent build side by side, the script builds in place.

Prints the median of each and the difference. The bar: selfheal ≤ 1 s beyond the script.
Exit 0 only if it held.

    .venv/bin/python bench/rollback.py [--commits 7] [--build-seconds 1.0]
"""

import argparse
import asyncio
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from temporalio.contrib.pydantic import pydantic_data_converter  # noqa: E402
from temporalio.testing import WorkflowEnvironment  # noqa: E402
from temporalio.worker import Worker  # noqa: E402

from selfheal import search_attributes as sa  # noqa: E402
from selfheal.config import Settings  # noqa: E402
from selfheal.plugins import SelfHealing  # noqa: E402
from selfheal.policies import Policies, RollbackPolicy  # noqa: E402
from starter.commits import build_check, enqueue, read_commit  # noqa: E402
from starter.testing import git, init_repo  # noqa: E402

BUILD_PY = """\
import pathlib, sys, time
time.sleep(float(pathlib.Path("build.seconds").read_text()))
if "BROKEN" in pathlib.Path("app.txt").read_text():
    sys.exit("error: app.txt does not compile")
print("build ok")
"""
SCRIPT = """\
#!/bin/sh
# the bare baseline: build; build again; revert
{build} >/dev/null 2>&1 && exit 0
{build} >/dev/null 2>&1 && exit 0
git revert --no-edit HEAD >/dev/null
"""


def make_repo(path: Path, seconds: float) -> Path:
    files = {"build.py": BUILD_PY, "build.seconds": str(seconds), "app.txt": "ok\n"}
    return init_repo(path, files)


def break_it(repo: Path, n: int) -> str:
    (repo / "app.txt").write_text(f"BROKEN {n}\n")
    git(repo, "commit", "-q", "-am", f"break {n}")
    return git(repo, "rev-parse", "HEAD")


async def selfheal_once(client, settings: Settings, repo: Path, n: int, build: str) -> float:
    sha = break_it(repo, n)
    started = time.perf_counter()
    await enqueue(client, settings, build_check(settings, read_commit(repo), build=build))
    while True:
        head = git(repo, "log", "-1", "--format=%B")
        if f"Selfheal-Revert-Of: {sha}" in head:
            return time.perf_counter() - started
        await asyncio.sleep(0.01)


def script_once(repo: Path, script: Path, n: int) -> float:
    sha = break_it(repo, n)
    started = time.perf_counter()
    subprocess.run(["sh", str(script)], cwd=repo, check=True)
    took = time.perf_counter() - started
    assert sha in git(repo, "log", "-1", "--format=%B"), "the script did not revert"
    return took


async def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--commits", type=int, default=7)
    parser.add_argument("--build-seconds", type=float, default=1.0)
    args = parser.parse_args()

    tmp = Path(tempfile.mkdtemp(prefix="selfheal-bench-rollback-"))
    build = f"{sys.executable} build.py"
    ours = make_repo(tmp / "guarded", args.build_seconds)
    theirs = make_repo(tmp / "scripted", args.build_seconds)
    script = tmp / "revert.sh"
    script.write_text(SCRIPT.format(build=build))
    settings = Settings(
        data_dir=tmp / "data",
        task_queue=f"bench-rollback-{uuid.uuid4().hex[:6]}",
        policies=Policies(rollback=RollbackPolicy(max_reverts_per_day=1000)),
    )
    env = await WorkflowEnvironment.start_local(
        dev_server_existing_path=str(Path(sys.executable).parent / "temporal"),
        data_converter=pydantic_data_converter,
        search_attributes=list(sa.ALL),
        dev_server_log_level="error",
    )
    try:
        worker = Worker(env.client, task_queue=settings.task_queue,
                        plugins=[SelfHealing(settings)])  # fmt: skip
        async with worker:
            await selfheal_once(env.client, settings, ours, 0, build)  # warm-up
            guarded, scripted = [], []
            for n in range(1, args.commits + 1):
                guarded.append(await selfheal_once(env.client, settings, ours, n, build))
                scripted.append(await asyncio.to_thread(script_once, theirs, script, n))
    finally:
        await env.shutdown()

    ours_median, theirs_median = statistics.median(guarded), statistics.median(scripted)
    extra = ours_median - theirs_median
    print(f"rollback bench: {args.commits} breaking commits, build ≈ {args.build_seconds:g}s "
          f"that fails")  # fmt: skip
    print(f"  selfheal  commit → revert committed  median {ours_median:.3f}s  "
          f"(min {min(guarded):.3f}s, max {max(guarded):.3f}s)")  # fmt: skip
    print(f"  script    build; build; git revert   median {theirs_median:.3f}s  "
          f"(min {min(scripted):.3f}s, max {max(scripted):.3f}s)")  # fmt: skip
    held = extra <= 1.0
    print(f"  selfheal - script = {extra:+.3f}s  (bar: ≤ +1.000s)  {'held' if held else 'MISSED'}")
    return 0 if held else 1


if __name__ == "__main__":
    raise SystemExit(asyncio.run(main()))
