"""Two breaking commits close together (issue 8, defect 4): each culprit is reverted once and the
branch ends green; a commit red only because of an earlier culprit is closed as inherited.

Real git repositories, a real build, a real dev server and worker; the five commits are handed to
the repository's queue as the post-commit hook does, while the guards already revert."""

import asyncio
import subprocess
import sys
import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from temporalio.client import Client
from temporalio.testing import WorkflowEnvironment
from temporalio.worker import Worker

from activities.ledger import Ledger, incidents
from selfheal.config import Settings
from selfheal.plugins import SelfHealing
from selfheal.rollback import GuardStatus, guard_workflow_id
from starter.commits import build_check, enqueue, read_commit, wait_for_guard
from tests.rollback_repo import BUILD, commit_racing, git, log, make_repo, message

REPETITIONS = 10
SPACING = 0.3  # five commits in about 2 s (each commit takes a moment too)


@pytest.fixture
async def worker(local_env: WorkflowEnvironment, settings: Settings) -> AsyncIterator[Client]:
    async with Worker(
        local_env.client, task_queue=settings.task_queue, plugins=[SelfHealing(settings)]
    ):
        yield local_env.client


def reverts_of(repo: Path, sha: str) -> list[str]:
    return [s for s in log(repo) if f"Selfheal-Revert-Of: {sha}" in message(repo, s)]


async def burst(client: Client, settings: Settings, repo: Path) -> list[tuple[str, str]]:
    """Five commits, the 2nd and 4th breaking the build, each enqueued right after it is made."""
    changes = [("ok", "1"), ("BROKEN", "2"), ("ok", "3"), ("BROKEN", "4"), ("ok", "5")]
    made: list[tuple[str, str]] = []
    for n, (text, name) in enumerate(changes):
        if n:
            await asyncio.sleep(SPACING)
        sha = await asyncio.to_thread(
            commit_racing, repo, f"change {name}", {f"mod{name}.txt": f"{text}\n"}
        )
        check = build_check(settings, read_commit(repo, sha), build=BUILD)
        made.append((sha, await enqueue(client, settings, check)))
    return made


async def test_two_breaking_commits_close_together_leave_the_branch_green(
    worker: Client, settings: Settings, tmp_path: Path
):
    orders: set[tuple[str, ...]] = set()
    for rep in range(REPETITIONS):
        repo = make_repo(tmp_path / f"burst-{rep}-{uuid.uuid4().hex[:6]}")
        made = await burst(worker, settings, repo)
        statuses: list[GuardStatus] = [
            await asyncio.wait_for(wait_for_guard(worker, workflow_id), 60)
            for _, workflow_id in made
        ]
        shas = [sha for sha, _ in made]
        states = [s.state for s in statuses]
        where = f"repetition {rep}: {states} {[s.reason for s in statuses]}"
        assert states[0] == "passed" and states[1] == states[3] == "reverted", where
        assert states[2] in ("passed", "inherited") and states[4] in ("passed", "inherited"), where
        assert all(s.escalation_id is None for s in statuses), where
        for culprit in (shas[1], shas[3]):
            assert len(reverts_of(repo, culprit)) == 1, where
        for other in (shas[0], shas[2], shas[4]):
            assert reverts_of(repo, other) == [], where
        # The branch ends green: its tip builds, and the checkout is clean and at the tip.
        built = subprocess.run(BUILD.split(), cwd=repo, capture_output=True, text=True, check=False)
        assert built.returncode == 0, (where, built.stderr)
        assert sys.executable in BUILD and git(repo, "status", "--porcelain") == "", where
        for inherited in (s for s in statuses if s.state == "inherited"):
            assert inherited.culprits and set(inherited.culprits) <= {shas[1], shas[3]}, where
            [row] = Ledger(settings.ledger_url).rows(incidents, key=inherited.incident_key)
            assert row["kind"] == "inherited" and row["status"] == "closed", where
        # Where each revert landed, relative to the five commits: the interleaving varies.
        tip_order = [s for s in reversed(log(repo)) if s in shas or message(repo, s).startswith(
            "Revert")]  # fmt: skip
        orders.add(tuple("R" if s not in shas else str(shas.index(s) + 1) for s in tip_order))
    print(f"interleavings seen: {sorted(orders)}")


async def guard_one(client: Client, settings: Settings, repo: Path, sha: str) -> str:
    return await enqueue(
        client, settings, build_check(settings, read_commit(repo, sha), build=BUILD)
    )


def builds_green(repo: Path) -> bool:
    return subprocess.run(BUILD.split(), cwd=repo, capture_output=True, check=False).returncode == 0


async def test_a_culprit_reverted_before_the_next_one_is_committed(
    worker: Client, settings: Settings, tmp_path: Path
):
    """The other interleaving: the first revert lands, then two more commits, the first of them
    breaking; only the last one's hook ran, so the queue fills the gap in order."""
    repo = make_repo(tmp_path / "between")
    c1 = commit_racing(repo, "change 1", {"mod1.txt": "ok\n"})
    c2 = commit_racing(repo, "change 2", {"mod2.txt": "BROKEN\n"})
    await wait_for_guard(worker, await guard_one(worker, settings, repo, c1))
    first = await wait_for_guard(worker, await guard_one(worker, settings, repo, c2))
    assert first.state == "reverted" and first.culprit and log(repo)[0] == first.revert_sha
    c3 = commit_racing(repo, "change 3", {"mod3.txt": "ok\n"})
    c4 = commit_racing(repo, "change 4", {"mod4.txt": "BROKEN\n"})
    c5 = commit_racing(repo, "change 5", {"mod5.txt": "ok\n"})
    last = await wait_for_guard(worker, await guard_one(worker, settings, repo, c5))
    path = str(repo.resolve())
    states = [(await wait_for_guard(worker, guard_workflow_id(repo.name, path, s))).state
              for s in (c3, c4)]  # fmt: skip
    assert states == ["passed", "reverted"] and last.state == "inherited", (states, last)
    assert last.culprits == [c4]  # c2's revert is already under c5: only c4 is reverted
    assert [len(reverts_of(repo, s)) for s in (c2, c4)] == [1, 1] and builds_green(repo)


async def test_a_red_tip_after_a_revert_has_the_later_commits_guarded_next(
    worker: Client, settings: Settings, tmp_path: Path
):
    """Only the first culprit was checked (by hand); its revert went on top of three later
    commits and the tip stayed red, so the queue guards those next and reverts the second."""
    repo = make_repo(tmp_path / "deferred")
    shas = [
        commit_racing(repo, f"change {n}", {f"mod{n}.txt": text})
        for n, text in enumerate(["ok\n", "BROKEN\n", "ok\n", "BROKEN\n", "ok\n"], 1)
    ]
    first = await wait_for_guard(worker, await guard_one(worker, settings, repo, shas[1]))
    assert first.state == "reverted" and first.deferred_to == shas[2:], first.reason
    assert first.builds[-1].label == "verify" and not first.builds[-1].ok
    ids = [guard_workflow_id(repo.name, str(repo.resolve()), s) for s in shas[2:]]
    later = [await asyncio.wait_for(wait_for_guard(worker, i), 60) for i in ids]
    assert [s.state for s in later] == ["inherited", "reverted", "inherited"]
    assert all(s.escalation_id is None for s in [first, *later])
    assert [len(reverts_of(repo, s)) for s in (shas[1], shas[3])] == [1, 1] and builds_green(repo)


def test_a_commit_carries_the_culprits_before_it_until_they_are_reverted(tmp_path: Path):
    """What an isolated build reverts: the culprits that are ancestors of the commit and have
    no revert (selfheal's trailer or ``git revert``'s body) between them and the commit."""
    from activities.git import culprits_in, git_repo

    repo = make_repo(tmp_path / "carry")
    k1 = commit_racing(repo, "k1", {"mod1.txt": "BROKEN\n"})
    k2 = commit_racing(repo, "k2", {"mod2.txt": "BROKEN\n"})
    after = commit_racing(repo, "after", {"mod3.txt": "ok\n"})
    git(repo, "revert", "--no-edit", k1)
    reverted = log(repo)[0]
    later = commit_racing(repo, "later", {"mod4.txt": "ok\n"})
    handle = git_repo(repo)
    assert culprits_in(handle, after, [k1, k2]) == [k1, k2]
    assert culprits_in(handle, k1, [k1, k2]) == [k1]  # a commit carries itself, not later ones
    assert culprits_in(handle, reverted, [k1, k2]) == [k2]
    assert culprits_in(handle, later, [k2, k1, k2]) == [k2]
    assert culprits_in(handle, later, []) == []
