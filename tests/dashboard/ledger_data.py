"""A ledger with known contents around a fixed ``NOW``, and the figures it must give."""

import itertools
from datetime import UTC, datetime, timedelta
from typing import Any

import sqlalchemy as sa

from activities.ledger import Ledger, schema

NOW = datetime(2026, 3, 2, 12, 0, tzinfo=UTC)
HOSTILE = "<script>alert('pwned')</script> & <b>bold</b>"
_ids = itertools.count(1)


def ago(**delta: float) -> datetime:
    return NOW - timedelta(**delta)


def _attempts(agent: str, outcome: str, kind: str | None, when: datetime, n: int) -> list[dict]:
    return [
        {
            "workflow_id": f"task-a{next(_ids)}",
            "n": 1,
            "agent": agent,
            "strategy": "initial",
            "outcome": outcome,
            "error_kind": kind,
            "fingerprint": None,
            "started_at": when - timedelta(seconds=5),
            "ended_at": when,
        }
        for _ in range(n)
    ]


def _task(wid: str, agent: str, state: str, tries: int, when: datetime, title: str = "") -> dict:
    return {
        "workflow_id": wid,
        "task_id": wid.removeprefix("task-"),
        "agent": agent,
        "title": title or f"work {wid}",
        "priority": "normal",
        "state": state,
        "attempts": tries,
        "created_at": when - timedelta(minutes=5),
        "updated_at": when,
    }


def _incident(
    key: str,
    kind: str,
    agent: str,
    subject: str,
    title: str,
    status: str,
    opened: datetime,
    resolved: datetime | None = None,
) -> dict:
    return {
        "key": key,
        "kind": kind,
        "subject": subject,
        "task_id": subject.removeprefix("task-"),
        "agent": agent,
        "title": title,
        "reason": f"{kind}: because",
        "status": status,
        "opened_at": opened,
        "resolved_at": resolved,
        "details": "{}",
    }


def _notice(incident: str, step: str, target: str, at: datetime) -> dict:
    return {
        "idempotency_key": f"{incident}:{step}",
        "incident_key": incident,
        "step": step,
        "target": target,
        "status": "sent",
        "status_code": 200,
        "text": "x",
        "at": at,
    }


def _guard(wid: str, committed: datetime, reverted: datetime | None) -> dict:
    return {
        "workflow_id": wid,
        "repo": "app",
        "repo_path": "/tmp/app",
        "sha": wid[-12:],
        "build_command": "make",
        "state": "reverted" if reverted else "green",
        "committed_at": committed,
        "detected_at": committed + timedelta(seconds=30),
        "reverted_at": reverted,
        "updated_at": reverted or committed,
    }


def _samples(
    now: datetime, agent: str, minutes: range, available: bool = True, held: bool = False
) -> list:
    return [
        {
            "agent": agent,
            "at": now - timedelta(minutes=m),
            "available": available,
            "held": held,
            "detail": "" if available else "connect timeout",
            "latency_ms": 1.0,
        }
        for m in minutes
    ]


def rows(now: datetime = NOW) -> dict[sa.Table, list[dict[str, Any]]]:
    def ago(**delta: float) -> datetime:
        return now - timedelta(**delta)

    return {
        schema.attempts: [
            # the last hour
            *_attempts("SAM", "succeeded", None, ago(minutes=10), 3),
            *_attempts("SAM", "failed", "transient", ago(minutes=20), 1),
            *_attempts("ALEX", "failed", "agent", ago(minutes=30), 1),
            # 1 h .. 24 h
            *_attempts("SAM", "succeeded", None, ago(hours=5), 4),
            *_attempts("SAM", "failed", "task", ago(hours=6), 2),
            *_attempts("LEO", "succeeded", None, ago(hours=23), 2),
            # 24 h .. 7 d
            *_attempts("SAM", "succeeded", None, ago(days=3), 10),
            *_attempts("ALEX", "failed", "permanent", ago(days=6), 5),
            # older than a week
            *_attempts("SAM", "succeeded", None, ago(days=30), 100),
        ],
        schema.tasks: [
            _task("task-t1", "SAM", "succeeded", 3, ago(minutes=30)),
            _task("task-t2", "SAM", "succeeded", 1, ago(hours=2)),
            _task("task-t3", "ALEX", "failed", 4, ago(hours=3)),
            _task("task-t4", "LEO", "succeeded", 2, ago(hours=20)),
            _task("task-t5", "SAM", "succeeded", 2, ago(days=2)),
            _task("task-t6", "ALEX", "failed", 1, ago(days=4)),
            _task("task-t7", "SAM", "retrying", 2, ago(minutes=5)),
            _task("task-t8", "SAM", "succeeded", 2, ago(days=20)),
        ],
        schema.incidents: [
            _incident(
                "task-leo-1#1", "blocked", "LEO", "task-leo-1", HOSTILE, "open", ago(minutes=20)
            ),
            _incident(
                "task-sam-9#1",
                "stuck",
                "SAM",
                "task-sam-9",
                "slow build",
                "resolved",
                ago(hours=3),
                ago(hours=2, minutes=30),
            ),
            _incident(
                "task-t3#1", "failed", "ALEX", "task-t3", "rotate key", "acknowledged", ago(days=2)
            ),
        ],
        schema.notifications: [
            _notice("task-leo-1#1", "peer", "SAM", ago(minutes=5)),
            _notice("task-sam-9#1", "peer", "ALEX", ago(hours=2, minutes=50)),
            _notice("task-sam-9#1", "lead", "MAX", ago(hours=2, minutes=40)),
            _notice("task-t3#1", "lead", "MAX", ago(days=2)),
            _notice("task-t3#1", "ceo", "ceo", ago(days=2)),
        ],
        schema.commit_guards: [
            _guard("commit-app-1-aaaaaaaaaaaa", ago(hours=5), ago(hours=5) + timedelta(seconds=95)),
            _guard("commit-app-1-bbbbbbbbbbbb", ago(days=3), ago(days=3) + timedelta(seconds=200)),
            _guard("commit-app-1-cccccccccccc", ago(hours=1), None),
        ],
        schema.review_outbox: [
            {
                "workflow_id": "pr-1",
                "input": "{}",
                "delivery": "d1",
                "received_at": ago(minutes=50),
                "started_at": ago(minutes=49),
            },
            {
                "workflow_id": "pr-2",
                "input": "{}",
                "delivery": "d2",
                "received_at": ago(hours=2),
                "started_at": ago(hours=2),
            },
            {
                "workflow_id": "pr-3",
                "input": "{}",
                "delivery": "d3",
                "received_at": ago(hours=3),
                "started_at": None,
            },
            {
                "workflow_id": "pr-4",
                "input": "{}",
                "delivery": "d4",
                "received_at": ago(days=3),
                "started_at": ago(days=3),
            },
        ],
        schema.uptime_samples: [
            *_samples(now, "SAM", range(0, 60, 10)),  # 6 up in the last hour
            *_samples(now, "ALEX", range(0, 40, 10)),  # 4 up ...
            *_samples(now, "ALEX", range(40, 60, 10), available=False),  # ... 2 down
            *_samples(now, "LEO", range(30, 60, 10)),  # 3 up ...
            *_samples(now, "LEO", range(0, 30, 10), held=True),  # ... 3 held by the blocked task
            *_samples(now, "SAM", range(120, 24 * 60, 60)),  # 22 more up within a day
            *_samples(now, "SAM", range(25 * 60, 27 * 60, 60), available=False),  # 2 down, 1-7 days
        ],
    }


def fill(url: str, now: datetime = NOW) -> Ledger:
    """The known contents around ``now`` (the tests of the API pass the real time)."""
    ledger = Ledger(url)
    with ledger.engine.begin() as conn:
        for table, values in rows(now).items():
            conn.execute(table.insert(), values)
    return ledger
