"""The 24 h cap of auto-reverts per repository, on the time-skipping test server."""

from datetime import timedelta
from pathlib import Path

from temporalio.testing import WorkflowEnvironment
from temporalio.worker import Worker

from selfheal.config import Settings
from selfheal.plugins import SelfHealing
from selfheal.rollback import GuardStatus
from starter.commits import build_check, enqueue, read_commit, wait_for_guard
from tests.rollback_repo import BUILD, commit, log, make_repo


async def test_at_most_five_auto_reverts_per_repo_in_24h(
    skipping_env: WorkflowEnvironment, settings: Settings, tmp_path: Path
):
    repo = make_repo(tmp_path / "capped")
    client = skipping_env.client
    assert settings.policies.rollback.max_reverts_per_day == 5

    async def break_and_guard(n: int) -> GuardStatus:
        commit(repo, f"break {n}", {"app.txt": f"BROKEN {n}\n"})
        check = build_check(settings, read_commit(repo), build=BUILD)
        return await wait_for_guard(client, await enqueue(client, settings, check))

    async with Worker(client, task_queue=settings.task_queue, plugins=[SelfHealing(settings)]):
        statuses = [await break_and_guard(n) for n in range(1, 7)]
        assert [s.state for s in statuses] == ["reverted"] * 5 + ["capped"]
        capped = statuses[-1]
        assert capped.escalation_id and capped.revert_sha is None
        # The ladder is not under test here, and the time-skipping server stalls its sleep
        # once an abandoned Escalation has run its lead step; end it before skipping a day.
        await client.get_workflow_handle(capped.escalation_id).terminate("not under test")
        assert "BROKEN 6" in (repo / "app.txt").read_text()  # the sixth stands, escalated
        commit(repo, "fix by hand", {"app.txt": "ok\n"})
        await skipping_env.sleep(timedelta(hours=24, minutes=1))
        assert (await break_and_guard(7)).state == "reverted"
        assert "BROKEN" not in (repo / "app.txt").read_text()
        assert len(log(repo)) == 1 + 7 + 5 + 1 + 1
