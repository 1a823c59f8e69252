"""``selfheal commit check`` and ``selfheal hooks install``: bad input, and the real hook."""

import asyncio
import json
import os
import stat
import subprocess
import time
from pathlib import Path

import pytest
from temporalio.client import WorkflowExecutionStatus
from temporalio.testing import WorkflowEnvironment
from temporalio.worker import Worker

from selfheal.config import Settings
from selfheal.plugins import SelfHealing
from selfheal.rollback import guard_workflow_id
from starter.cli import main
from starter.cli.commit import BEGIN, hook_build
from starter.commits import wait_for_guard
from starter.devserver import free_port
from tests.rollback_repo import BUILD, commit, git, log, make_repo, snapshot
from tests.workers import selfheal


def run_cli(argv: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    with pytest.raises(SystemExit) as exit:
        main(argv)
    out, err = capsys.readouterr()
    return int(exit.value.code or 0), out, err


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    return make_repo(tmp_path / "app")


@pytest.fixture(autouse=True)
def _data_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SELFHEAL_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.setenv("TEMPORAL_ADDRESS", f"127.0.0.1:{free_port()}")  # nothing listens


@pytest.mark.parametrize(
    ("args", "says"),
    [
        (["--repo", "{tmp}/nowhere"], "not a git repository"),
        (["--repo", "{tmp}"], "not a git repository"),
        (["--repo", "{repo}", "--sha", "0badc0de"], "unknown commit"),
        (["--repo", "{repo}", "--build", "selfheal-no-such-tool build"], "not found"),
    ],
)
def test_commit_check_bad_input_is_one_line_exit_2(
    args: list[str], says: str, repo: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
):
    before = snapshot(repo)
    argv = ["commit", "check", *(a.format(tmp=tmp_path, repo=repo) for a in args)]
    code, out, err = run_cli(argv, capsys)
    assert code == 2 and says in err and len(err.strip().splitlines()) == 1 and not out
    assert snapshot(repo) == before


def test_commit_check_without_a_server_fails_clearly_but_the_hook_mode_exits_0(
    repo: Path, capsys: pytest.CaptureFixture[str]
):
    code, _, err = run_cli(["commit", "check", "--repo", str(repo), "--build", BUILD], capsys)
    assert code == 2 and "cannot reach Temporal" in err
    code, _, err = run_cli(
        ["commit", "check", "--hook", "--repo", str(repo), "--build", BUILD], capsys
    )
    assert code == 0 and "cannot reach Temporal" in err and "not guarded" in err


def test_hooks_install_bad_input(repo: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]):
    code, _, err = run_cli(["hooks", "install", "--repo", str(tmp_path / "nope")], capsys)
    assert code == 2 and "not a git repository" in err
    (repo / ".git" / "hooks" / "post-commit").mkdir(parents=True)  # a hook path we cannot use
    before = snapshot(repo)
    code, _, err = run_cli(["hooks", "install", "--repo", str(repo), "--build", BUILD], capsys)
    assert code == 2 and "cannot write the hook" in err and len(err.strip().splitlines()) == 1
    assert snapshot(repo) == before


def test_hooks_install_keeps_a_foreign_hook_and_is_idempotent(
    repo: Path, capsys: pytest.CaptureFixture[str]
):
    hook = repo / ".git" / "hooks" / "post-commit"
    hook.parent.mkdir(parents=True, exist_ok=True)
    hook.write_text("#!/bin/sh\necho theirs\n")
    for _ in range(2):
        code, out, _ = run_cli(["hooks", "install", "--repo", str(repo), "--build", BUILD], capsys)
        assert code == 0 and str(hook) in out
    text = hook.read_text()
    assert text.startswith("#!/bin/sh\necho theirs\n") and text.count(BEGIN) == 1
    assert hook.stat().st_mode & stat.S_IXUSR


def _git_env(address: str, data_dir: Path, task_queue: str = "selfheal") -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("GIT_")}
    return env | {"TEMPORAL_ADDRESS": address, "SELFHEAL_DATA_DIR": str(data_dir),
                  "SELFHEAL_TASK_QUEUE": task_queue}  # fmt: skip


def _commit_with_hooks(repo: Path, env: dict[str, str], name: str) -> float:
    (repo / name).write_text(name)
    subprocess.run(["git", "add", name], cwd=repo, env=env, check=True)
    started = time.monotonic()
    done = subprocess.run(["git", "commit", "-q", "-m", name], cwd=repo, env=env,
                          capture_output=True, text=True)  # fmt: skip
    assert done.returncode == 0, done.stderr
    return time.monotonic() - started


def test_hook_with_the_server_down_never_blocks_the_commit(
    repo: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
):
    assert run_cli(["hooks", "install", "--repo", str(repo), "--build", BUILD], capsys)[0] == 0
    env = _git_env(f"127.0.0.1:{free_port()}", tmp_path / "data")
    took = _commit_with_hooks(repo, env, "one.txt")
    assert took < 1.0 and git(repo, "log", "-1", "--format=%s") == "one.txt"
    hook_log = repo / ".git" / "selfheal-hook.log"
    for _ in range(150):
        if hook_log.exists() and "not guarded" in hook_log.read_text():
            break
        time.sleep(0.1)
    assert "cannot reach Temporal" in hook_log.read_text()


async def test_hook_guards_each_commit(
    local_env: WorkflowEnvironment, settings: Settings, repo: Path, tmp_path: Path
):
    def install() -> None:
        with pytest.raises(SystemExit) as exit:
            main(["hooks", "install", "--repo", str(repo), "--build", BUILD])
        assert exit.value.code == 0

    await asyncio.to_thread(install)
    address = local_env.client.service_client.config.target_host
    env = _git_env(address, settings.data_dir, settings.task_queue)
    async with Worker(
        local_env.client, task_queue=settings.task_queue, plugins=[SelfHealing(settings)]
    ):
        took = await asyncio.to_thread(_commit_with_hooks, repo, env, "good.txt")
        assert took < 1.0
        sha = log(repo)[0]
        status = await asyncio.wait_for(
            wait_for_guard(
                local_env.client, guard_workflow_id(repo.name, str(repo.resolve()), sha)
            ),
            30,
        )
    assert status.state == "passed" and status.sha == sha


def test_the_seed_build_without_a_package_json_is_a_broken_setup(
    repo: Path, capsys: pytest.CaptureFixture[str]
):
    """``npx next build`` (the policy's default) for a repository with no package.json: refused
    as a broken setup by ``commit check`` and by ``hooks install``, before anything runs."""
    before = snapshot(repo)
    for argv in (
        ["commit", "check", "--repo", str(repo)],
        ["hooks", "install", "--repo", str(repo)],
    ):
        code, out, err = run_cli(argv, capsys)
        assert code == 2 and not out and len(err.strip().splitlines()) == 1, err
        assert "broken setup" in err and "package.json" in err and "--build" in err
    assert snapshot(repo) == before


def test_hooks_install_without_build_keeps_the_hooks_build(
    repo: Path, capsys: pytest.CaptureFixture[str]
):
    hook = repo / ".git" / "hooks" / "post-commit"
    other = f"{BUILD} --strict"
    assert run_cli(["hooks", "install", "--repo", str(repo), "--build", other], capsys)[0] == 0
    code, out, _ = run_cli(["hooks", "install", "--repo", str(repo)], capsys)
    assert code == 0 and f"build: {other} (kept from the hook)" in out
    assert hook_build(hook.read_text()) == other and hook.read_text().count(BEGIN) == 1
    code, out, _ = run_cli(["hooks", "install", "--repo", str(repo), "--build", BUILD], capsys)
    assert code == 0 and hook_build(hook.read_text()) == BUILD and "kept" not in out


async def test_a_refused_commit_is_rechecked_with_the_given_build_once_the_tree_is_clean(
    local_env: WorkflowEnvironment, settings: Settings, repo: Path, tmp_path: Path
):
    from activities.ledger import Ledger, incidents

    bad = commit(repo, "break it", {"app.txt": "BROKEN\n", "notes.txt": "n\n"})
    (repo / "notes.txt").write_text("work in progress\n")  # a dirty tree: never forced
    env = _git_env(local_env.client.service_client.config.target_host, settings.data_dir,
                   settings.task_queue)  # fmt: skip
    guard_id = guard_workflow_id(repo.name, str(repo.resolve()), bad)
    other = f"{BUILD} --again"

    def cli(*args: str) -> subprocess.CompletedProcess[str]:
        return selfheal("commit", "check", "--repo", str(repo), *args, env=env, timeout=90)

    async with Worker(
        local_env.client, task_queue=settings.task_queue, plugins=[SelfHealing(settings)]
    ):
        first = await asyncio.to_thread(cli, "--build", BUILD, "--wait", "--json")
        assert first.returncode == 1, first.stderr
        refused = json.loads(first.stdout)
        assert refused["state"] == "refused" and refused["workflow_id"] == guard_id
        assert refused["escalation_id"] == f"escalation-{guard_id}-1"

        # Judged already: another --build is not silently ignored.
        again = await asyncio.to_thread(cli, "--build", other, "--wait")
        assert again.returncode == 2 and len(again.stderr.strip().splitlines()) == 1
        assert "judged already" in again.stderr and "--recheck" in again.stderr

        git(repo, "checkout", "--", "notes.txt")  # the cause is fixed
        rechecked = await asyncio.to_thread(cli, "--recheck", "--build", other, "--wait", "--json")
        assert rechecked.returncode == 0, rechecked.stderr
        status = json.loads(rechecked.stdout)
        assert status["state"] == "reverted" and status["recheck"] == 1
        assert status["build_command"] == other and status["workflow_id"] == guard_id
        assert status["incident_key"] == f"{guard_id}-recheck-1"
        assert log(repo)[0] == status["revert_sha"] and (repo / "app.txt").read_text() == "ok\n"

        ledger = Ledger(settings.ledger_url)
        [old] = ledger.rows(incidents, key=guard_id)
        assert old["kind"] == "revert-refused" and old["status"] == "resolved"
        assert "re-checked" in old["resolution"]
        ladder = await local_env.client.get_workflow_handle(refused["escalation_id"]).describe()
        assert ladder.status == WorkflowExecutionStatus.COMPLETED  # its steps stopped
        runs = await local_env.client.count_workflows(f"WorkflowId = '{guard_id}'")
        assert runs.count == 2
