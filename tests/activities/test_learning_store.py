"""The learning loop's ledger: idempotent writes, resolutions, scores, coverage after a merge,
the Pattern state rebuilt from failures. Each on SQLite and on PostgreSQL."""

from datetime import UTC, datetime, timedelta

import pytest
import sqlalchemy as sa

from activities.ledger import Ledger
from activities.ledger.learnings import (
    LearningStore,
    UnknownLearning,
    max_repeats_after_learning,
)
from activities.ledger.schema import failure_resolutions, learning_uses, learnings
from selfheal.learning import HintsRequest, LearningPolicy, UseRecord
from selfheal.patterns import AttemptLearning, LoadPattern, StatusChange
from tests.learning_ledger import fail, publish, succeed, use

NOW = datetime(2026, 3, 2, 6, 0, tzinfo=UTC)
ERROR = "tests fail: the orders migration was never generated"


@pytest.fixture
def ledger(ledger_url: str) -> Ledger:
    """A new ledger, migrated to the head: SQLite, then PostgreSQL."""
    return Ledger(ledger_url)


def count(ledger: Ledger, table: sa.Table) -> int:
    with ledger.engine.connect() as conn:
        return conn.execute(sa.select(sa.func.count()).select_from(table)).scalar_one()


def test_publish_is_idempotent_and_counts_come_from_the_failures(ledger: Ledger):
    fp = fail(ledger, ERROR, "a", NOW - timedelta(hours=2), title="orders migration")
    fail(ledger, ERROR, "b", NOW - timedelta(hours=1), agent="ALEX", title="users migration")
    first = publish(ledger, fp, "task", ERROR, NOW)
    again = publish(ledger, fp, "task", ERROR, NOW + timedelta(hours=1))
    assert again == first and count(ledger, learnings) == 1
    assert first.occurrences == 2 and first.tasks_seen == 2
    assert first.agents_seen == ["ALEX", "SAM"] and first.published_at == NOW
    assert first.scope.words[0] == "migration"
    fail(ledger, ERROR, "c", NOW + timedelta(minutes=5))
    assert LearningStore(ledger).get(first.id).repeats_after_publication == 1


def test_uses_vote_once_and_resolutions_link_the_failure(ledger: Ledger):
    fp = fail(ledger, ERROR, "a", NOW - timedelta(hours=2))
    fail(ledger, ERROR, "b", NOW - timedelta(hours=1), strategy="same", n=2)
    item = publish(ledger, fp, "task", ERROR, NOW)
    store = LearningStore(ledger)
    for _ in range(2):  # a retried activity: the same rows, one vote
        use(ledger, item, "u1", 1, "succeeded", NOW + timedelta(minutes=1))
    assert store.get(item.id).score == 3 and count(ledger, learning_uses) == 1
    for task in ("u2", "u3", "u4", "u5"):
        use(ledger, item, task, 1, "failed_same", NOW + timedelta(minutes=2))
    assert store.get(item.id).score == 0
    assert store.hints_for(HintsRequest(agent="SAM", title="orders migration")) == []
    assert store.advice_for(fp) is not None  # after the failure itself it is still advice

    succeed(ledger, "a", NOW + timedelta(minutes=3), n=2, agent="ALEX", strategy="alternative")
    succeed(ledger, "a", NOW + timedelta(minutes=3), n=2, agent="ALEX", strategy="alternative")
    rows = ledger.rows(failure_resolutions, workflow_id="task-a")
    assert len(rows) == 1 and rows[0]["by"] == "attempt" and rows[0]["strategy"] == "alternative"
    store.after_attempt(
        AttemptLearning(workflow_id="task-b", attempt=2, outcome="failed", agent="SAM",
                        strategy="same", resolves=[1, 2], ended_by_incident="task-b#1", at=NOW),
        LearningPolicy(),
    )  # fmt: skip
    ended = ledger.rows(failure_resolutions, workflow_id="task-b")
    assert {(r["n"], r["by"], r["incident_key"]) for r in ended} == {
        (1, "escalation", "task-b#1"),
        (2, "escalation", "task-b#1"),
    }


def test_advice_comes_from_what_resolved_it(ledger: Ledger):
    error = "agent lost its context window"
    fp = fail(ledger, error, "a", NOW - timedelta(hours=3), kind="agent")
    succeed(ledger, "a", NOW - timedelta(hours=3) + timedelta(minutes=1), n=2, agent="LEO",
            strategy="fresh")  # fmt: skip
    fail(ledger, error, "b", NOW - timedelta(hours=2), kind="agent", agent="ALEX")
    item = publish(ledger, fp, "agent", error, NOW)
    assert item.advice.strategy == "fresh" and item.advice.agent == "LEO"
    assert "fresh strategy on LEO" in item.hint


def test_status_changes_and_retire_by_hand(ledger: Ledger):
    fp = fail(ledger, ERROR, "a", NOW - timedelta(hours=2))
    fail(ledger, ERROR, "b", NOW - timedelta(hours=1))
    item = publish(ledger, fp, "task", ERROR, NOW)
    store = LearningStore(ledger)
    change = StatusChange(fingerprint=fp, status="regressed", at=NOW)
    store.set_status(change)
    store.set_status(change)  # idempotent: one regression
    assert store.get(item.id).regressions == 1 and store.get(item.id).status == "regressed"
    assert store.retire(item.slug, NOW).status == "retired"
    assert store.hints_for(HintsRequest(agent="SAM", title="orders migration")) == []
    with pytest.raises(UnknownLearning):
        store.get("L-nope")
    again = publish(ledger, fp, "task", ERROR, NOW + timedelta(days=1))  # it came back
    assert again.status == "published" and again.score == LearningPolicy().initial_score


def test_the_pattern_state_is_rebuilt_from_the_ledger(ledger: Ledger):
    fp = fail(ledger, ERROR, "a", NOW - timedelta(days=9), title="orders migration")
    fail(ledger, ERROR, "b", NOW - timedelta(hours=2), agent="ALEX", strategy="same", n=2)
    store = LearningStore(ledger)
    request = LoadPattern(fingerprint=fp, kind="task", template="x", window=7 * 86400,
                          min_occurrences=2)  # fmt: skip
    state = store.load_pattern(request)
    assert state.status == "new" and state.occurrences == 2 and len(state.recent) == 1
    assert state.recent_keys == ["task-a#1", "task-b#2"] and state.strategies_failed == ["same"]
    publish(ledger, fp, "task", ERROR, NOW - timedelta(hours=1))
    fail(ledger, ERROR, "c", NOW)
    state = store.load_pattern(request)
    assert state.status == "published" and state.repeats == 1 and state.learning_id == f"L-{fp}"


def test_a_use_is_its_own_row_per_attempt_and_learning(ledger: Ledger):
    fp = fail(ledger, ERROR, "a", NOW - timedelta(hours=2))
    fail(ledger, ERROR, "b", NOW - timedelta(hours=1))
    item = publish(ledger, fp, "task", ERROR, NOW)
    LearningStore(ledger).after_attempt(
        AttemptLearning(
            workflow_id="task-z", attempt=1, outcome="failed", agent="LEO", strategy="initial",
            uses=[UseRecord(learning_id=item.id, workflow_id="task-z", attempt=1, agent="LEO",
                            how="attached", outcome="failed_other", at=NOW)],
            at=NOW,
        ),
        LearningPolicy(),
    )  # fmt: skip
    assert LearningStore(ledger).get(item.id).score == 2  # another failure: no vote
    assert [u.how for u in LearningStore(ledger).uses(item.id)] == ["attached"]


def test_the_seed_metric_repeats_after_learning(ledger: Ledger):
    with ledger.engine.connect() as conn:
        assert max_repeats_after_learning(conn) is None  # nothing learned yet
    fp = fail(ledger, ERROR, "a", NOW - timedelta(hours=2))
    fail(ledger, ERROR, "b", NOW - timedelta(hours=1))
    publish(ledger, fp, "task", ERROR, NOW)
    other = "ImportError: cannot import name Money"
    fp2 = fail(ledger, other, "c", NOW - timedelta(hours=2))
    fail(ledger, other, "d", NOW - timedelta(hours=1))
    publish(ledger, fp2, "task", other, NOW)
    for i, minutes in enumerate((5, 10, 15)):
        fail(ledger, ERROR, f"r{i}", NOW + timedelta(minutes=minutes))
    fail(ledger, other, "r9", NOW + timedelta(minutes=1))
    blip = "upstream timed out (503)"
    fp3 = fail(ledger, blip, "x", NOW - timedelta(hours=1), kind="transient")
    fail(ledger, blip, "y", NOW - timedelta(minutes=30), kind="transient")
    publish(ledger, fp3, "transient", blip, NOW)
    for i in range(5):  # a blip is not fed back: it does not count
        fail(ledger, blip, f"z{i}", NOW + timedelta(minutes=i + 1), kind="transient")
    with ledger.engine.connect() as conn:
        assert max_repeats_after_learning(conn) == 3
