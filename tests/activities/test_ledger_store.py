"""The ledger store on SQLite and on a real PostgreSQL: each write twice (a retried activity)
leaves one row, and the second write updates only what it may."""

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from activities.ledger import Ledger, LedgerActivities, schema
from selfheal.models import (
    AttemptLedgerEntry,
    AttemptRecord,
    IncidentRecord,
    IncidentUpdate,
    Notice,
)
from selfheal.rollback import GuardLedgerEntry

T0 = datetime(2025, 3, 1, 12, 0, tzinfo=UTC)


@pytest.fixture
def ledger(ledger_url: str) -> Iterator[Ledger]:
    ledger = Ledger(ledger_url).open()
    yield ledger
    ledger.close()


def _attempt(n: int, outcome: str, **kw: object) -> AttemptLedgerEntry:
    record = AttemptRecord(
        n=n,
        agent="SAM",
        strategy="initial" if n == 1 else "same",
        outcome=outcome,
        started_at=T0 + timedelta(minutes=n),
        ended_at=T0 + timedelta(minutes=n, seconds=30),
        **kw,
    )
    return AttemptLedgerEntry(
        workflow_id="task-t1",
        task_id="t1",
        title="fix login",
        priority="high",
        task_state="retrying" if outcome == "failed" else "succeeded",
        attempt=record,
        context={"repo": "web"},
    )


def test_attempts_twice_leave_one_row_each(ledger: Ledger) -> None:
    failed = _attempt(1, "failed", error_kind="transient", fingerprint="fp1", error="timeout 3s")
    for _ in range(2):
        ledger.record_attempt(failed)
    for _ in range(2):
        ledger.record_attempt(_attempt(2, "succeeded"))

    [task] = ledger.rows(schema.tasks)
    assert (task["state"], task["attempts"], task["priority"]) == ("succeeded", 2, "high")
    assert [(r["n"], r["outcome"]) for r in ledger.rows(schema.attempts)] == [
        (1, "failed"),
        (2, "succeeded"),
    ]
    [failure] = ledger.rows(schema.failures)
    assert (failure["fingerprint"], failure["error"]) == ("fp1", "timeout 3s")
    assert '"repo": "web"' in failure["context"]


def test_incident_opened_twice_and_settled_once(ledger: Ledger) -> None:
    record = IncidentRecord(
        key="inc-1",
        kind="blocked",
        subject="task-t1",
        task_id="t1",
        agent="SAM",
        title="fix login",
        reason="waiting on creds",
        opened_at=T0,
        details={"fingerprint": "fp9"},
    )
    ledger.open_incident(record)
    ledger.open_incident(record.model_copy(update={"reason": "a retry must not overwrite"}))
    [row] = ledger.rows(schema.incidents)
    assert (row["status"], row["reason"]) == ("open", "waiting on creds")
    [blocker] = ledger.rows(schema.blockers)
    assert (blocker["fingerprint"], blocker["agent"]) == ("fp9", "SAM")

    ack = IncidentUpdate(key="inc-1", status="acknowledged", at=T0, by="ALEX")
    ledger.update_incident(ack)
    resolved = IncidentUpdate(
        key="inc-1", status="resolved", at=T0, note="creds rotated", details={"by": "person"}
    )
    ledger.update_incident(resolved)
    # A late retry of the acknowledgement, and of the resolution, change nothing.
    ledger.update_incident(ack.model_copy(update={"by": "LATE"}))
    ledger.update_incident(resolved.model_copy(update={"note": "again"}))
    [row] = ledger.rows(schema.incidents)
    assert (row["status"], row["acknowledged_by"], row["resolution"]) == (
        "resolved",
        "ALEX",
        "creds rotated",
    )
    assert '"by": "person"' in row["details"] and '"fingerprint": "fp9"' in row["details"]
    # An update of an incident nobody opened writes nothing.
    ledger.update_incident(IncidentUpdate(key="nope", status="closed", at=T0))
    assert ledger.rows(schema.incidents, key="nope") == []


def test_notification_is_one_row_per_key(ledger: Ledger) -> None:
    notice = Notice(target="dev", text="ping", idempotency_key="esc-1-peer", step="peer")
    ledger.record_notification(notice, "failed", 503)
    ledger.record_notification(notice, "delivered", 200)
    [row] = ledger.rows(schema.notifications)
    assert (row["status"], row["status_code"]) == ("delivered", 200)


def test_review_outbox_queues_once(ledger: Ledger) -> None:
    assert ledger.queue_review("pr-o-r-1-abc", '{"n": 1}', "d-1") is True
    assert ledger.queue_review("pr-o-r-1-abc", '{"n": 1}', "d-2") is False
    assert ledger.queued_reviews() == [("pr-o-r-1-abc", '{"n": 1}')]
    ledger.review_started("pr-o-r-1-abc")
    assert ledger.queued_reviews() == []
    [row] = ledger.rows(schema.review_outbox)
    assert row["delivery"] == "d-1" and row["started_at"] is not None


def test_commit_guard_row_follows_the_guard(ledger: Ledger) -> None:
    entry = GuardLedgerEntry(
        workflow_id="commit-web-1",
        repo="web",
        repo_path="/r/web",
        sha="a" * 40,
        build_command="make",
        state="running",
    )
    ledger.record_commit_guard(entry)
    ledger.record_commit_guard(entry.model_copy(update={"state": "reverted", "revert_sha": "b"}))
    [row] = ledger.rows(schema.commit_guards)
    assert (row["state"], row["revert_sha"]) == ("reverted", "b")


async def test_activity_writes_through_the_store(ledger_url: str) -> None:
    book = LedgerActivities(Ledger(ledger_url))
    await book.record_attempt(_attempt(1, "succeeded"))
    await book.record_attempt(_attempt(1, "succeeded"))
    assert len(book.ledger.rows(schema.attempts)) == 1
    book.ledger.close()


def test_nothing_is_opened_until_first_use(tmp_path: Path) -> None:
    path = tmp_path / "lazy" / "ledger.db"
    ledger = Ledger(f"sqlite:///{path}")
    assert not path.exists()
    assert ledger.rows(schema.tasks) == []
    assert path.exists()
    ledger.close()
