"""CommitGuard end to end: real git repos in temp dirs, real builds, a real Temporal server."""

import asyncio
import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from temporalio.client import Client
from temporalio.testing import WorkflowEnvironment
from temporalio.worker import Worker

from activities.ledger import Ledger, commit_guards, incidents
from selfheal.config import Settings
from selfheal.plugins import SelfHealing
from selfheal.rollback import GuardStatus, RevertInput, guard_workflow_id, queue_workflow_id
from starter.commits import build_check, enqueue, read_commit, wait_for_guard
from tests.rollback_repo import BUILD, commit, git, log, make_repo, message, snapshot


@pytest.fixture
async def worker(local_env: WorkflowEnvironment, settings: Settings) -> AsyncIterator[Client]:
    async with Worker(
        local_env.client, task_queue=settings.task_queue, plugins=[SelfHealing(settings)]
    ):
        yield local_env.client


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    return make_repo(tmp_path / f"app-{uuid.uuid4().hex[:6]}")


async def guard(
    client: Client, settings: Settings, repo: Path, sha: str | None = None, **check: object
) -> GuardStatus:
    request = build_check(settings, read_commit(repo, sha), build=BUILD)
    if check:
        policy = request.policy.model_copy(update=check)
        request = request.model_copy(update={"policy": policy})
    return await wait_for_guard(client, await enqueue(client, settings, request))


def reverts_of(repo: Path, sha: str) -> list[str]:
    return [s for s in log(repo) if f"Selfheal-Revert-Of: {sha}" in message(repo, s)]


async def test_breaking_commit_is_reverted_and_verified(
    worker: Client, settings: Settings, repo: Path
):
    good = commit(repo, "add docs", {"docs.txt": "hello\n"})
    status = await guard(worker, settings, repo)
    assert status.state == "passed", status.reason
    assert log(repo)[0] == good  # untouched

    bad = commit(repo, "refactor app", {"app.txt": "BROKEN\n"})
    status = await guard(worker, settings, repo)
    assert status.state == "reverted", status.reason
    assert [b.ok for b in status.builds] == [False, False, True]  # build, re-run, parent
    head = log(repo)[0]
    assert status.revert_sha == head and log(repo)[1] == bad
    text = message(repo, head)
    assert bad in text and BUILD in text and "syntax error near BROKEN" in text
    assert git(repo, "rev-parse", "HEAD^{tree}") == git(repo, "rev-parse", f"{good}^{{tree}}")
    assert (repo / "app.txt").read_text() == "ok\n"
    assert git(repo, "status", "--porcelain") == ""
    assert status.verified_at and status.reverted_at and status.detected_at
    assert status.committed_at and status.committed_at <= status.detected_at

    ledger = Ledger(settings.ledger_url)
    [row] = ledger.rows(commit_guards, sha=bad)
    assert row["state"] == "reverted" and row["revert_sha"] == head and row["author"] == "SAM"
    assert "BROKEN" in row["failure_tail"] and row["build_command"] == BUILD
    assert row["verified_at"] is not None and row["reverted_at"] is not None
    [incident] = ledger.rows(incidents, key=status.workflow_id)
    assert incident["kind"] == "broken-build" and incident["status"] == "resolved"

    # A second run on the reverted sha is a no-op: same verdict, no new commit.
    again = await guard(worker, settings, repo, bad)
    assert again.revert_sha == head and log(repo)[0] == head
    assert reverts_of(repo, bad) == [head]


async def test_flaky_build_is_not_reverted(
    worker: Client, settings: Settings, repo: Path, tmp_path: Path
):
    counter = tmp_path / f"flaky-{uuid.uuid4().hex[:6]}"
    sha = commit(repo, "tune cache", {"app.txt": f"ok FLAKY {counter}\n"})
    status = await guard(worker, settings, repo)
    assert status.state == "flaky" and status.revert_sha is None
    assert log(repo)[0] == sha
    [incident] = Ledger(settings.ledger_url).rows(incidents, key=status.workflow_id)
    assert incident["kind"] == "flaky-build"


async def test_parent_already_broken_is_not_reverted_and_escalates(
    worker: Client, settings: Settings, repo: Path
):
    commit(repo, "break it", {"app.txt": "BROKEN\n"})
    sha = commit(repo, "more work", {"more.txt": "x\n"})
    status = await guard(worker, settings, repo)
    assert status.state == "parent-broken" and status.revert_sha is None
    assert log(repo)[0] == sha
    assert status.escalation_id == f"escalation-{status.workflow_id}-1"
    await worker.get_workflow_handle(status.escalation_id).describe()


async def test_a_revert_is_never_reverted(worker: Client, settings: Settings, repo: Path):
    commit(repo, "break it", {"app.txt": "BROKEN\n"})
    fix = commit(repo, "fix it", {"app.txt": "ok\n"})
    git(repo, "revert", "--no-edit", fix)  # someone reverts the fix: the build breaks again
    status = await guard(worker, settings, repo)
    assert status.state == "refused" and "revert" in (status.reason or "")
    assert status.escalation_id


async def test_merge_commit_is_reverted_with_mainline_1(
    worker: Client, settings: Settings, repo: Path
):
    base = log(repo)[0]
    git(repo, "checkout", "-q", "-b", "feature")
    commit(repo, "feature work", {"app.txt": "BROKEN\n"})
    git(repo, "checkout", "-q", "main")
    main_tip = commit(repo, "docs on main", {"docs.txt": "d\n"})
    git(repo, "merge", "-q", "--no-ff", "-m", "Merge feature", "feature")
    merge = log(repo)[0]
    assert merge != main_tip and base
    status = await guard(worker, settings, repo)
    assert status.state == "reverted", status.reason
    assert "-m 1" in message(repo, status.revert_sha or "")
    assert git(repo, "rev-parse", "HEAD^{tree}") == git(repo, "rev-parse", f"{main_tip}^{{tree}}")


async def test_head_moved_on_still_reverts_that_commit(
    worker: Client, settings: Settings, repo: Path
):
    bad = commit(repo, "break it", {"app.txt": "BROKEN\n"})
    later = [commit(repo, f"later {i}", {f"later{i}.txt": str(i)}) for i in (1, 2)]
    status = await guard(worker, settings, repo, bad)
    assert status.state == "reverted", status.reason
    assert log(repo)[:3] == [status.revert_sha, *reversed(later)]
    assert [b.ok for b in status.builds] == [False, False, True, True]  # + verify of new head
    assert (repo / "app.txt").read_text() == "ok\n" and (repo / "later2.txt").exists()


@pytest.mark.parametrize("situation", ["dirty", "detached", "conflict"])
async def test_unsafe_repo_is_left_byte_identical(
    worker: Client, settings: Settings, repo: Path, situation: str
):
    bad = commit(repo, "break it", {"app.txt": "BROKEN\n", "notes.txt": "n\n"})
    if situation == "dirty":
        (repo / "notes.txt").write_text("work in progress\n")
        (repo / "untracked.txt").write_text("scratch\n")
        git(repo, "add", "untracked.txt")
        (repo / "untracked.txt").write_text("scratch, changed\n")
    elif situation == "detached":
        git(repo, "checkout", "-q", "--detach", "HEAD")
    else:
        commit(repo, "build on it", {"app.txt": "BROKEN and more\n"})
    before = snapshot(repo)
    status = await guard(worker, settings, repo, bad)
    assert status.state == "refused", status.reason
    assert snapshot(repo) == before
    assert status.escalation_id
    [incident] = Ledger(settings.ledger_url).rows(incidents, key=status.workflow_id)
    assert incident["kind"] == "revert-refused" and incident["reason"] == status.reason
    expected = {"dirty": "uncommitted", "detached": "detached", "conflict": "conflict"}[situation]
    assert expected in (status.reason or "")


async def test_opt_out_trailer_and_kill_switch(worker: Client, settings: Settings, repo: Path):
    sha = commit(repo, "risky\n\nSelfheal-No-Revert: true", {"app.txt": "BROKEN\n"})
    status = await guard(worker, settings, repo)
    assert status.state == "opted-out" and log(repo)[0] == sha
    other = make_repo(repo.parent / f"{repo.name}-2")
    sha = commit(other, "break it", {"app.txt": "BROKEN\n"})
    status = await guard(worker, settings, other, enabled=False)
    assert status.state == "disabled" and log(other)[0] == sha


async def test_broken_setup_is_not_a_broken_commit(worker: Client, settings: Settings, repo: Path):
    sha = commit(repo, "work", {"app.txt": "BROKEN\n"})
    request = build_check(settings, read_commit(repo), build=BUILD)
    request.policy.build_command = "selfheal-no-such-tool build"
    status = await wait_for_guard(worker, await enqueue(worker, settings, request))
    assert status.state == "setup-broken" and status.revert_sha is None
    assert log(repo)[0] == sha and len(status.builds) == 1
    [incident] = Ledger(settings.ledger_url).rows(incidents, key=status.workflow_id)
    assert incident["kind"] == "broken-setup"


@pytest.mark.parametrize("package_json", [False, True])
async def test_npx_without_its_packages_is_a_broken_setup_not_a_red_parent(
    worker: Client, settings: Settings, repo: Path, package_json: bool
):
    """The seed's build, ``npx next build``, in a repository with no package.json, or with one
    whose packages are not installed (npx may not download them): a broken setup."""
    files = {"app.txt": "BROKEN\n"} | (
        {"package.json": '{"name": "app"}\n'} if package_json else {}
    )
    sha = commit(repo, "work", files)
    request = build_check(settings, read_commit(repo), build=BUILD)
    request.policy.build_command = "npx next build"
    status = await wait_for_guard(worker, await enqueue(worker, settings, request))
    assert status.state == "setup-broken", status.reason
    assert log(repo)[0] == sha and len(status.builds) == 1 and status.builds[0].broken_setup
    says = "packages are not installed" if package_json else "needs a package.json"
    assert says in status.builds[0].tail and status.escalation_id


async def test_quick_succession_is_guarded_in_commit_order(
    worker: Client, settings: Settings, repo: Path
):
    await guard(worker, settings, repo)  # the queue now knows the branch's last guarded commit
    a = commit(repo, "a", {"a.txt": "a\n"})
    b = commit(repo, "b", {"b.txt": "b\n"})
    c = commit(repo, "c", {"c.txt": "c\n"})
    # The hooks raced: c's check arrives first, then b's, a's never.
    for sha in (c, b):
        await enqueue(worker, settings, build_check(settings, read_commit(repo, sha), build=BUILD))
    path = str(repo.resolve())
    statuses = [
        await wait_for_guard(worker, guard_workflow_id(repo.name, path, s)) for s in (a, b, c)
    ]
    assert [s.state for s in statuses] == ["passed"] * 3
    # One at a time, in order: each guard starts after the one before handed over its verdict
    # (it then closes on its own, a moment later).
    spans = []
    for s in statuses:
        handle = worker.get_workflow_handle(s.workflow_id)
        events = [e async for e in handle.fetch_history_events()]
        handed = next(e for e in events if e.HasField(
            "signal_external_workflow_execution_initiated_event_attributes"))  # fmt: skip
        spans.append((events[0].event_time.ToDatetime(), handed.event_time.ToDatetime()))
    assert spans[0][1] <= spans[1][0] and spans[1][1] <= spans[2][0], spans
    queue = worker.get_workflow_handle(queue_workflow_id(repo.name, str(repo.resolve())))
    for _ in range(50):  # the queue takes in c's verdict just after c's guard closes
        status = await queue.query("status")
        if status["current"] is None:
            break
        await asyncio.sleep(0.1)
    assert status["guarded"][-3:] == [a, b, c]


async def test_revert_activity_is_idempotent(repo: Path):
    from activities.git import revert_commit

    bad = commit(repo, "break it", {"app.txt": "BROKEN\n"})
    input = RevertInput(repo_path=str(repo), sha=bad, branch="main", build_command=BUILD,
                        failure="error: BROKEN")  # fmt: skip
    first = revert_commit(input)
    second = revert_commit(input)
    assert first.outcome == "reverted" and second.outcome == "existing"
    assert first.revert_sha == second.revert_sha and first.tree_is_parent
    assert reverts_of(repo, bad) == [first.revert_sha]
    assert revert_commit(input.model_copy(update={"sha": first.revert_sha})).outcome == "refused"


async def test_two_repos_with_the_same_folder_name_get_their_own_guards(
    worker: Client, settings: Settings, tmp_path: Path
):
    """A clone named like its origin holds the same shas: each repository is guarded on its own
    (the guard id carries a hash of the repository path), never handed the other's verdict."""
    first = make_repo(tmp_path / "one" / "app")
    bad = commit(first, "break it", {"app.txt": "BROKEN\n"})
    second = tmp_path / "two" / "app"
    git(tmp_path, "clone", "-q", str(first), str(second))
    assert log(second)[0] == bad
    statuses = [await guard(worker, settings, repo, bad) for repo in (first, second)]
    assert statuses[0].workflow_id != statuses[1].workflow_id
    for repo, status in zip((first, second), statuses, strict=True):
        assert status.state == "reverted", status.reason
        assert status.workflow_id == guard_workflow_id("app", str(repo.resolve()), bad)
        assert status.workflow_id.startswith("commit-app-") and status.workflow_id.endswith(
            bad[:12]
        )
        assert reverts_of(repo, bad) == [log(repo)[0]]
    rows = Ledger(settings.ledger_url).rows(commit_guards, sha=bad)
    assert sorted(r["repo_path"] for r in rows) == sorted(str(r.resolve()) for r in (first, second))
