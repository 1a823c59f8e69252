"""Real git repositories with a real (tiny) build for the rollback tests (on starter.testing's
scratch repositories)."""

import hashlib
import subprocess
import sys
import time
from pathlib import Path

from starter.testing import commit, git, git_env, init_repo

__all__ = ["BUILD", "commit", "commit_racing", "git", "log", "make_repo", "message", "snapshot"]

BUILD_SCRIPT = """\
import pathlib, sys, time
time.sleep(float(pathlib.Path("build.delay").read_text() or 0))
text = pathlib.Path("app.txt").read_text()
if pathlib.Path("slow.txt").exists():
    time.sleep(float(pathlib.Path("slow.txt").read_text()))
if "FLAKY" in text:
    counter = pathlib.Path(text.split("FLAKY", 1)[1].split()[0])
    if not counter.exists():
        counter.write_text("failed once")
        sys.exit("error: a flaky failure (timing)")
if "BROKEN" in text:
    print("compiling app.txt ...")
    sys.exit("error: app.txt: syntax error near BROKEN")
for module in sorted(pathlib.Path(".").glob("mod*.txt")):
    if "BROKEN" in module.read_text():
        sys.exit(f"error: {module}: syntax error near BROKEN")
print("build ok")
"""
BUILD = f"{sys.executable} build.py"


def make_repo(path: Path, delay: float = 0.05) -> Path:
    files = {"build.py": BUILD_SCRIPT, "build.delay": str(delay), "app.txt": "ok\n"}
    return init_repo(path, files)


def commit_racing(repo: Path, message: str, files: dict[str, str], tries: int = 50) -> str:
    """``commit`` while a guard may be bringing a revert onto the branch: git's own locks
    (index.lock, the branch ref) can be held for a moment, and the branch can move between the
    commit's read of HEAD and its ref update; a refused commit is staged and tried again."""
    for name, text in files.items():
        (repo / name).write_text(text)
    for attempt in range(tries):
        done = None
        for step in (["add", *files], ["commit", "-q", "-m", message]):
            done = subprocess.run(
                ["git", "-c", "core.hooksPath=/dev/null", *step], cwd=repo, env=git_env(),
                capture_output=True, text=True,
            )  # fmt: skip
            if done.returncode != 0:
                break
        assert done is not None
        if done.returncode == 0:
            break
        if "nothing to commit" in done.stdout:
            # An earlier try's commit landed, and only its index write met a lock: it is ours.
            landed = git(repo, "log", "-1", "--format=%H", f"--grep=^{message}$", "HEAD")
            assert landed, done.stdout
            return landed
        refused = ".lock" in done.stderr or "cannot lock ref" in done.stderr
        assert attempt < tries - 1 and refused, done.stderr + done.stdout
        time.sleep(0.02)
    return git(repo, "rev-parse", "HEAD")


def log(repo: Path, rev: str = "HEAD") -> list[str]:
    return git(repo, "log", "--format=%H", rev).split()


def message(repo: Path, sha: str) -> str:
    return git(repo, "log", "-1", "--format=%B", sha)


def snapshot(repo: Path) -> dict[str, object]:
    """Everything a guard must leave alone: status, HEAD, refs, index and every file's hash."""
    files = {}
    for p in sorted(repo.rglob("*")):
        if p.is_file() and ".git" not in p.relative_to(repo).parts:
            files[str(p.relative_to(repo))] = hashlib.sha256(p.read_bytes()).hexdigest()
    return {
        "status": git(repo, "status", "--porcelain", "--untracked-files=all"),
        "head": git(repo, "rev-parse", "HEAD"),
        "symbolic": git(repo, "symbolic-ref", "-q", "HEAD", check=False),
        "refs": git(repo, "for-each-ref", "--format=%(refname) %(objectname)"),
        "index": hashlib.sha256((repo / ".git" / "index").read_bytes()).hexdigest(),
        "stage": git(repo, "ls-files", "--stage"),
        "files": files,
        "worktrees": git(repo, "worktree", "list", "--porcelain"),
    }
