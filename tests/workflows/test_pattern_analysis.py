"""``PatternAnalysis`` on the time-skipping server over a ledger with known failures: merges,
rescoring, retirement, the expected docs/patterns files in a real git repository, a person's
prose kept and their hint taken, the digest on a real HTTP sink."""

import uuid
from datetime import timedelta
from pathlib import Path

import frontmatter
from pydantic import SecretStr
from temporalio.testing import WorkflowEnvironment
from temporalio.worker import Worker

from activities.ledger.learnings import LearningStore
from selfheal.config import Settings
from selfheal.learning import LearningPolicy
from selfheal.patterns import AnalysisInput, AnalysisReport
from selfheal.plugins import SelfHealing
from starter.testing import NotificationSink, serving
from tests.learning_ledger import fail, git, git_repo, publish, succeed, use
from workflows.pattern_analysis import PatternAnalysis

BILLING = "ImportError: cannot import name Money from module billing"
ORDERS = "ImportError: cannot import name Money from module orders"
LOGIN = "AssertionError: login redirect goes to the wrong page"


async def analyze(env: WorkflowEnvironment, settings: Settings, n: int) -> AnalysisReport:
    # No time to skip here; left on, the test server sometimes jumps its clock years ahead
    # while the run waits for its first workflow task, and the next analysis retires everything.
    with env.auto_time_skipping_disabled():
        return await env.client.execute_workflow(
            PatternAnalysis.run,
            AnalysisInput(policy=LearningPolicy()),
            id=f"patterns-now-{n}-{uuid.uuid4().hex[:6]}",
            task_queue=settings.task_queue,
        )


async def test_the_analysis_writes_the_expected_files_and_keeps_a_persons_prose(
    skipping_env: WorkflowEnvironment, settings: Settings, tmp_path: Path
):
    directory = git_repo(tmp_path / "repo")
    sink = NotificationSink()
    async with serving(sink.app()) as url:
        settings = settings.model_copy(
            update={"patterns_dir": directory, "dev_channel_url": SecretStr(f"{url}/dev")}
        )
        plugin = SelfHealing(settings)
        ledger = plugin.ledger
        now = await skipping_env.get_current_time()
        # billing: 3 failures (one resolved by ALEX's fresh attempt), published, used twice
        billing = fail(ledger, BILLING, "b1", now - timedelta(days=2))
        succeed(ledger, "b1", now - timedelta(days=2) + timedelta(minutes=5),
                n=2, agent="ALEX", strategy="fresh")  # fmt: skip
        fail(ledger, BILLING, "b2", now - timedelta(days=1), agent="LEO")
        fail(ledger, BILLING, "b3", now - timedelta(hours=1), agent="ALEX")
        learned = publish(ledger, billing, "task", BILLING, now - timedelta(days=1))
        use(ledger, learned, "u1", 1, "succeeded", now - timedelta(hours=5))
        use(ledger, learned, "u2", 1, "succeeded", now - timedelta(hours=4))
        # orders: a near-duplicate of billing, published on its own
        orders = fail(ledger, ORDERS, "o1", now - timedelta(days=3))
        fail(ledger, ORDERS, "o2", now - timedelta(days=3), agent="LEO")
        near = publish(ledger, orders, "task", ORDERS, now - timedelta(days=3))
        use(ledger, near, "u3", 1, "failed_same", now - timedelta(hours=3))
        # login: last seen 40 days ago
        login = fail(ledger, LOGIN, "l1", now - timedelta(days=41))
        fail(ledger, LOGIN, "l2", now - timedelta(days=40))
        publish(ledger, login, "task", LOGIN, now - timedelta(days=40))
        before = {x.id for x in LearningStore(ledger).all()}

        async with Worker(skipping_env.client, task_queue=settings.task_queue, plugins=[plugin]):
            report = await analyze(skipping_env, settings, 1)
            assert report.problems == []
            c = report.consolidation
            assert [(m.into, m.merged) for m in c.merged] == [(f"L-{billing}", [f"L-{orders}"])]
            assert c.retired == [f"L-{login}"]
            # its two successful uses and the merged one's failed use: 2 + 1 + 1 - 1
            assert c.rescored == {f"L-{billing}": 3}
            assert [r.id for r in c.top_recurring] == [f"L-{billing}"]
            assert c.top_recurring[0].occurrences == 5  # billing's 3 and orders' 2

            files = {p.name: frontmatter.load(p) for p in directory.glob("*.md")}
            assert len(files) == 3
            by_id = {post["id"]: post for post in files.values()}
            merged = by_id[f"L-{billing}"]
            assert merged["template"] == "importerror: cannot import name money from module <*>"
            assert merged["fingerprints"] == sorted([billing, orders])
            assert merged["score"] == 3 and merged["status"] == "published"
            assert merged["advice"] == {"strategy": "fresh", "agent": None, "avoid": []}
            assert merged["counts"]["occurrences"] == 5 and merged["counts"]["uses"] == 2
            assert by_id[f"L-{orders}"]["status"] == "merged"
            assert by_id[f"L-{orders}"]["merged_into"] == f"L-{billing}"
            assert by_id[f"L-{login}"]["status"] == "retired"
            log = git(directory, "log", "--format=%b")
            assert log.count(f"Selfheal-Analysis: {report.analysis_id}") == 1
            assert git(directory, "status", "--porcelain") == ""
            digest = sink.to("/dev")[-1].body["text"]
            assert "1 retired" in digest and "top recurring" in digest
            assert {x.id for x in LearningStore(ledger).all()} == before  # nothing duplicated

            # A person rewrites the merged learning's prose and hint, and commits it.
            path = next(
                p for p in directory.glob("*.md") if frontmatter.load(p)["id"] == merged["id"]
            )
            edited = (
                "# Money lives in billing.money\n\n## Hint\n\nImport Money from billing.money.\n"
            )
            path.write_text(path.read_text().replace(frontmatter.load(path).content, edited))
            git(directory, "commit", "-qam", "docs: Dana's hint")

            second = await analyze(skipping_env, settings, 2)
            assert second.problems == [] and second.docs.kept_prose == [path.name]
            assert frontmatter.load(path).content.strip() == edited.strip()
            store = LearningStore(ledger)
            assert store.get(merged["id"]).hint == "Import Money from billing.money."
            assert store.get(merged["id"]).hint_source == "person"
            assert git(directory, "log", "--format=%b").count("Selfheal-Analysis:") == 2

            third = await analyze(skipping_env, settings, 3)  # nothing changed: no commit
            assert third.docs.written == [] and third.docs.commit is None
            assert git(directory, "log", "--format=%b").count("Selfheal-Analysis:") == 2
            assert frontmatter.load(path).content.strip() == edited.strip()


async def test_problems_reach_the_digest_and_the_ledger_keeps_its_learnings(
    skipping_env: WorkflowEnvironment, settings: Settings, tmp_path: Path
):
    settings = settings.model_copy(update={"patterns_dir": tmp_path / "missing"})
    plugin = SelfHealing(settings)
    now = await skipping_env.get_current_time()
    fp = fail(plugin.ledger, BILLING, "b1", now - timedelta(hours=2))
    fail(plugin.ledger, BILLING, "b2", now - timedelta(hours=1))
    publish(plugin.ledger, fp, "task", BILLING, now - timedelta(hours=1))
    async with Worker(skipping_env.client, task_queue=settings.task_queue, plugins=[plugin]):
        report = await analyze(skipping_env, settings, 1)
    assert len(report.problems) == 1 and "does not exist" in report.problems[0]
    assert "does not exist" in report.digest
    assert [x.status for x in LearningStore(plugin.ledger).all()] == ["published"]
