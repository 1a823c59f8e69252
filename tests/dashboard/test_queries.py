"""The health figures from ledgers with known contents, on SQLite and on a real PostgreSQL:
exact numbers, cold and warm rollups, and a row written after the rollups were filled."""

from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest

from activities.ledger import attempts, metadata
from activities.ledger.schema import uptime_samples
from dashboard.queries import HealthQueries
from tests.dashboard.ledger_data import HOSTILE, NOW, ago, fill

TEAM = ["SAM", "ALEX", "LEO", "QUINN", "MAX"]


def _ledger_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'ledger.db'}"
    return request.getfixturevalue("postgres").new_schema()


def _queries(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[HealthQueries]:
    ledger = fill(_ledger_url(request, tmp_path))
    yield HealthQueries(ledger.engine)
    ledger.close()


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def queries(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[HealthQueries]:
    """One filled ledger per backend for the tests that only read."""
    yield from _queries(request, tmp_path_factory.mktemp("ledger"))


@pytest.fixture(params=["sqlite", "postgresql"])
def fresh(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[HealthQueries]:
    """A filled ledger of its own, for a test that writes."""
    yield from _queries(request, tmp_path)


def by_agent(q: HealthQueries, window: str) -> dict[str, tuple]:
    f = q.figures(window, TEAM, NOW)  # type: ignore[arg-type]
    return {
        name: (a.attempts, a.failed, a.errors_by_kind, a.samples, a.up_samples, a.available)
        for name, a in f.agents.items()
    }


EXPECTED = {
    "1h": {
        "SAM": (4, 1, {"transient": 1}, 6, 6, True),
        "ALEX": (1, 1, {"agent": 1}, 6, 4, True),
        "LEO": (0, 0, {}, 6, 3, True),
        "QUINN": (0, 0, {}, 0, 0, None),
        "MAX": (0, 0, {}, 0, 0, None),
    },
    "24h": {
        "SAM": (10, 3, {"transient": 1, "task": 2}, 28, 28, True),
        "ALEX": (1, 1, {"agent": 1}, 6, 4, True),
        "LEO": (2, 0, {}, 6, 3, True),
        "QUINN": (0, 0, {}, 0, 0, None),
        "MAX": (0, 0, {}, 0, 0, None),
    },
    "7d": {
        "SAM": (20, 3, {"transient": 1, "task": 2}, 30, 28, True),
        "ALEX": (6, 6, {"agent": 1, "permanent": 5}, 6, 4, True),
        "LEO": (2, 0, {}, 6, 3, True),
        "QUINN": (0, 0, {}, 0, 0, None),
        "MAX": (0, 0, {}, 0, 0, None),
    },
}


@pytest.mark.parametrize("window", ["1h", "24h", "7d"])
def test_agents_uptime_and_error_rate(queries: HealthQueries, window: str) -> None:
    assert by_agent(queries, window) == EXPECTED[window]
    assert by_agent(queries, window) == EXPECTED[window]  # again, from the filled rollups


def test_seed_metrics_per_window(queries: HealthQueries) -> None:
    seeds = {w: queries.figures(w, TEAM, NOW).seed for w in ("1h", "24h", "7d")}  # type: ignore[arg-type]
    retry = {w: (s.retry_success.recovered, s.retry_success.failed_once) for w, s in seeds.items()}
    assert retry == {"1h": (1, 1), "24h": (2, 3), "7d": (3, 5)}
    assert seeds["24h"].retry_success.rate == pytest.approx(2 / 3)
    reverts = {w: s.revert.model_dump() for w, s in seeds.items()}
    assert reverts["1h"] == {"count": 0, "p50_s": None, "max_s": None, "within_2min": 0}
    assert reverts["24h"] == {"count": 1, "p50_s": 95.0, "max_s": 95.0, "within_2min": 1}
    assert reverts["7d"] == {"count": 2, "p50_s": 147.5, "max_s": 200.0, "within_2min": 1}
    prs = {w: (s.pr_reviews, s.pr_events) for w, s in seeds.items()}
    assert prs == {"1h": (1, 1), "24h": (2, 3), "7d": (3, 4)}
    assert [seeds[w].ceo_alerts for w in ("1h", "24h", "7d")] == [0, 0, 1]
    assert seeds["7d"].ceo_alerts_per_day == pytest.approx(1 / 7)
    assert all(s.repeats_after_learning is None for s in seeds.values())


def test_incidents_open_and_recent(queries: HealthQueries) -> None:
    f = queries.figures("24h", TEAM, NOW)
    rows = [(i.key, i.kind, i.status, i.step, i.age_s, i.time_to_resolve_s) for i in f.incidents]
    assert rows == [
        ("task-leo-1#1", "blocked", "open", "peer", 1200.0, None),
        ("task-sam-9#1", "stuck", "resolved", "lead", 10800.0, 1800.0),
        ("task-t3#1", "failed", "acknowledged", "ceo", 172800.0, None),
    ]
    assert f.incidents[0].title == HOSTILE
    assert sorted((o.kind, o.agent, o.subject) for o in f.open_incidents) == [
        ("blocked", "LEO", "task-leo-1"),
        ("failed", "ALEX", "task-t3"),
    ]


@pytest.mark.parametrize("window,buckets", [("1h", 13), ("24h", 25), ("7d", 29)])
def test_trend_buckets_add_up(queries: HealthQueries, window: str, buckets: int) -> None:
    f = queries.figures(window, TEAM, NOW)  # type: ignore[arg-type]
    assert len(f.trend) == buckets
    assert sum(p.attempts for p in f.trend) == sum(a.attempts for a in f.agents.values())
    assert sum(p.failed for p in f.trend) == sum(a.failed for a in f.agents.values())
    assert sum(p.samples for p in f.trend) == sum(a.samples for a in f.agents.values())
    assert sum(p.incidents for p in f.trend) == {"1h": 1, "24h": 2, "7d": 3}[window]
    for name, a in f.agents.items():
        assert sum(p.attempts for p in a.trend) == a.attempts, name


def test_all_time_totals(queries: HealthQueries) -> None:
    t = queries.totals(TEAM, NOW)
    assert dict(t.attempts) == {
        ("SAM", "succeeded", None): 117,
        ("SAM", "failed", "transient"): 1,
        ("SAM", "failed", "task"): 2,
        ("ALEX", "failed", "agent"): 1,
        ("ALEX", "failed", "permanent"): 5,
        ("LEO", "succeeded", None): 2,
    }
    assert dict(t.settled_tasks) == {("succeeded",): 5, ("failed",): 2}
    assert dict(t.open_incidents) == {("blocked",): 1, ("failed",): 1}
    assert (t.ceo_alerts, t.pr_events, t.pr_reviews) == (1, 4, 3)
    assert sorted(t.reverts_s) == [95.0, 200.0]
    assert t.agent_up == {"SAM": True, "ALEX": True, "LEO": False, "QUINN": None, "MAX": None}
    assert t.uptime_24h["ALEX"] == pytest.approx(4 / 6)


def test_rows_written_after_the_rollups_filled_are_counted(fresh: HealthQueries) -> None:
    queries = fresh
    assert by_agent(queries, "7d")["QUINN"][0] == 0
    with queries.engine.begin() as conn:
        conn.execute(
            attempts.insert(),
            [
                {
                    "workflow_id": "task-late",
                    "n": 1,
                    "agent": "QUINN",
                    "strategy": "initial",
                    "outcome": "failed",
                    "error_kind": "task",
                    "started_at": ago(minutes=2),
                    "ended_at": ago(minutes=1),
                },
            ],
        )
        conn.execute(
            uptime_samples.insert(),
            [
                {
                    "agent": "QUINN",
                    "at": NOW - timedelta(seconds=30),
                    "available": False,
                    "held": False,
                    "detail": "down",
                },
            ],
        )
    assert by_agent(queries, "7d")["QUINN"] == (1, 1, {"task": 1}, 1, 0, False)
    assert queries.totals(TEAM, NOW).attempts[("QUINN", "failed", "task")] == 1


def test_marker_moves_when_a_task_is_blocked(fresh: HealthQueries) -> None:
    queries = fresh
    from activities.ledger import incidents

    before = queries.marker()
    assert queries.marker() == before
    with queries.engine.begin() as conn:
        conn.execute(
            incidents.update()
            .where(incidents.c.key == "task-leo-1#1")
            .values(status="acknowledged")
        )
    assert queries.marker() != before


def test_the_schema_has_the_indexes() -> None:
    names = {ix.name for t in metadata.tables.values() for ix in t.indexes}
    assert {"ix_attempts_ended_at", "ix_uptime_samples_at", "ix_incidents_status"} <= names
