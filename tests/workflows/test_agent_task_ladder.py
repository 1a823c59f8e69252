"""The retry ladder on the time-skipping test server: exact waits, strategies, reassignment."""

import json
import uuid
from datetime import timedelta

import pytest
from temporalio import activity
from temporalio.client import Client, WorkflowHistory
from temporalio.worker import Worker

from activities.learning import LearningActivities
from activities.ledger import Ledger, LedgerActivities
from activities.ledger.learnings import LearningStore
from selfheal.config import ConfigError, Settings
from selfheal.models import AdapterSpec, AgentRunInput, AgentRunResult, TaskStatus
from selfheal.plugins import SelfHealing
from selfheal.sim import SimScriptError
from starter.client import build_task_input, start_task, task_outcome
from workflows.agent_task import AgentTask


def sim(script: str) -> AdapterSpec:
    return AdapterSpec(kind="sim", sim=script)


async def run_task(
    client: Client,
    settings: Settings,
    script: str,
    agent: str = "SAM",
    plugins=None,
    **worker_kwargs,
) -> tuple[TaskStatus, WorkflowHistory]:
    input = build_task_input(
        settings,
        agent=agent,
        title="fix login",
        adapter=sim(script),
        task_id=f"t-{uuid.uuid4().hex[:8]}",
    )
    async with Worker(
        client,
        task_queue=settings.task_queue,
        plugins=[SelfHealing(settings)] if plugins is None else plugins,
        **worker_kwargs,
    ):
        handle = await start_task(client, settings, input)
        status = await task_outcome(handle)
        history = await handle.fetch_history()
    return status, history


def summary(event) -> str:
    if not event.user_metadata.HasField("summary"):
        return ""
    return json.loads(event.user_metadata.summary.data)


def retry_timers(history: WorkflowHistory) -> list[tuple[str, float]]:
    """(timer id, duration) of the ladder's retry waits, in order."""
    return [
        (
            e.timer_started_event_attributes.timer_id,
            e.timer_started_event_attributes.start_to_fire_timeout.ToTimedelta().total_seconds(),
        )
        for e in history.events
        if e.HasField("timer_started_event_attributes") and summary(e).startswith("wait ")
    ]


def timer_waits(history: WorkflowHistory) -> list[float]:
    return [seconds for _, seconds in retry_timers(history)]


def fired_gaps(history: WorkflowHistory) -> list[float]:
    """Workflow time between each retry timer's start and its firing."""
    ids = {timer_id for timer_id, _ in retry_timers(history)}
    started: dict[str, float] = {}
    gaps = []
    for e in history.events:
        t = e.event_time.ToDatetime().timestamp()
        if e.HasField("timer_started_event_attributes"):
            started[e.timer_started_event_attributes.timer_id] = t
        if e.HasField("timer_fired_event_attributes"):
            timer_id = e.timer_fired_event_attributes.timer_id
            if timer_id in ids:
                gaps.append(t - started[timer_id])
    return gaps


async def test_transient_failures_retry_on_the_seed_ladder(client: Client, settings: Settings):
    status, history = await run_task(client, settings, "transient,transient,ok")
    assert status.state == "succeeded"
    assert [a.strategy for a in status.attempts] == ["initial", "same", "fresh"]
    assert [a.outcome for a in status.attempts] == ["failed", "failed", "succeeded"]
    assert {a.error_kind for a in status.attempts[:2]} == {"transient"}
    assert timer_waits(history) == [60.0, 300.0]
    assert [round(g) for g in fired_gaps(history)] == [60, 300]


async def test_full_ladder_waits_60_300_900_and_every_strategy_differs(
    client: Client, settings: Settings
):
    status, history = await run_task(client, settings, "transient,agent,task")
    assert status.state == "failed"
    assert len(status.attempts) == 4
    assert timer_waits(history) == [60.0, 300.0, 900.0]
    assert [round(g) for g in fired_gaps(history)] == [60, 300, 900]
    strategies = [a.strategy for a in status.attempts]
    assert strategies == ["initial", "same", "fresh", "alternative"]
    assert len(set(strategies)) == 4


async def test_default_strategies_follow_the_rungs_for_transient_errors(
    client: Client, settings: Settings
):
    status, _ = await run_task(client, settings, "transient,transient,ok")
    assert [a.strategy for a in status.attempts] == ["initial", "same", "fresh"]


async def test_agent_failure_moves_to_a_peer(client: Client, settings: Settings):
    status, _ = await run_task(client, settings, "agent,ok")
    assert status.state == "succeeded"
    assert [a.agent for a in status.attempts] == ["SAM", "ALEX"]
    assert status.attempts[1].strategy == "fresh"


async def test_repeated_agent_failures_try_each_peer(client: Client, settings: Settings):
    status, _ = await run_task(client, settings, "agent,agent,ok")
    assert [a.agent for a in status.attempts] == ["SAM", "ALEX", "LEO"]


async def test_task_failure_switches_to_the_alternative(client: Client, settings: Settings):
    status, _ = await run_task(client, settings, "task,ok")
    assert [a.strategy for a in status.attempts] == ["initial", "alternative"]
    assert status.attempts[0].agent == status.attempts[1].agent == "SAM"
    assert status.state == "succeeded"


async def test_permanent_failure_makes_one_attempt(client: Client, settings: Settings):
    status, history = await run_task(client, settings, "permanent")
    assert status.state == "failed"
    assert len(status.attempts) == 1
    assert status.attempts[0].error_kind == "permanent"
    assert timer_waits(history) == []


async def test_infrastructure_blips_do_not_use_ladder_steps(client: Client, settings: Settings):
    calls = 0

    @activity.defn(name="agent.run")
    async def flaky_network(input: AgentRunInput) -> AgentRunResult:
        nonlocal calls
        calls += 1
        if calls <= 2:
            raise ConnectionError("connection reset by peer")
        return AgentRunResult(outcome="succeeded", output="done")

    ledger = Ledger(settings.ledger_url)
    book = LedgerActivities(ledger)
    learning = LearningActivities(LearningStore(ledger), client)  # the loop runs at every start
    status, _ = await run_task(
        client,
        settings,
        "ok",
        plugins=[],
        workflows=[AgentTask],
        activities=[flaky_network, book.record_attempt, *learning.all()],
    )
    assert calls == 3
    assert status.state == "succeeded"
    assert len(status.attempts) == 1


async def test_fingerprints_are_stable_for_the_same_error(client: Client, settings: Settings):
    status, _ = await run_task(client, settings, "transient,transient,ok")
    prints = {a.fingerprint for a in status.attempts if a.outcome == "failed"}
    assert len(prints) == 1


def test_unknown_agent_is_refused(settings: Settings):
    with pytest.raises(ConfigError, match="unknown agent 'BOB'"):
        build_task_input(settings, agent="BOB", title="x", adapter=sim("ok"))


@pytest.mark.parametrize("script", ["", "ok,,ok", "sometimes", "stall:", "stall:-3", "stall:x"])
def test_bad_sim_script_is_refused(settings: Settings, script: str):
    with pytest.raises(SimScriptError):
        build_task_input(settings, agent="SAM", title="x", adapter=sim(script))


def test_time_scale_divides_every_policy_duration(settings: Settings):
    input = build_task_input(settings, agent="SAM", title="x", adapter=sim("ok"), time_scale=60)
    assert input.retry.waits == [1.0, 5.0, 15.0]
    assert input.stuck.no_progress == 30.0
    assert [s.after for s in input.escalation.steps] == [15.0, 30.0, 60.0]
    assert timedelta(seconds=input.retry.attempt_timeout) == timedelta(minutes=1)
