"""Blocked tasks and the escalation ladder on the time-skipping server, with a real HTTP
notification sink on 127.0.0.1."""

import json
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from temporalio.client import (
    Client,
    WorkflowExecutionStatus,
    WorkflowFailureError,
    WorkflowHandle,
)
from temporalio.exceptions import ApplicationError
from temporalio.service import RPCError
from temporalio.testing import WorkflowEnvironment
from temporalio.worker import Worker

from activities.ledger import Ledger, incidents, notifications
from selfheal import search_attributes as sa
from selfheal.config import Settings
from selfheal.models import AdapterSpec, EscalationInput, EscalationOutcome, TaskStatus
from selfheal.plugins import SelfHealing
from starter.client import build_task_input, start_task, task_outcome
from starter.testing import NotificationSink, serving
from tests.waiting import eventually
from workflows.agent_task import AgentTask
from workflows.escalation import Escalation


def with_sink(settings: Settings, url: str) -> Settings:
    return NotificationSink(url=url).wire(settings)


@dataclass
class Stack:
    env: WorkflowEnvironment
    settings: Settings
    sink: NotificationSink

    @property
    def client(self) -> Client:
        return self.env.client

    async def start(self, script: str, agent: str = "SAM") -> WorkflowHandle[Any, TaskStatus]:
        input = build_task_input(
            self.settings, agent=agent, title="fix login",
            adapter=AdapterSpec(kind="sim", sim=script), task_id=f"t-{uuid.uuid4().hex[:8]}",
        )  # fmt: skip
        return await start_task(self.client, self.settings, input)

    async def start_blocked(self, body: Any) -> WorkflowHandle[Any, TaskStatus]:
        """A task between its first (failed) attempt and its retry, sent ``mark_blocked``."""
        handle = await self.start("transient,ok")
        await self.wait_state(handle, "retrying")
        await handle.signal("mark_blocked", body)
        return handle

    async def status(self, handle: WorkflowHandle[Any, TaskStatus]) -> TaskStatus:
        return await handle.query(AgentTask.status)

    async def wait_state(self, handle: WorkflowHandle[Any, TaskStatus], state: str) -> None:
        async def reached() -> bool:
            return (await self.status(handle)).state == state

        await eventually(reached)

    async def delivered(self, n: int) -> None:
        async def enough() -> bool:
            return len(self.sink.delivered) >= n

        await eventually(enough)


@asynccontextmanager
async def stack(
    env: WorkflowEnvironment, settings: Settings, sink: NotificationSink | None = None
) -> AsyncIterator[Stack]:
    sink = sink or NotificationSink()
    async with serving(sink.app()) as url:
        configured = with_sink(settings, url)
        async with Worker(
            env.client, task_queue=settings.task_queue, plugins=[SelfHealing(configured)]
        ):
            yield Stack(env, configured, sink)


def offsets(status: TaskStatus) -> list[tuple[str, float]]:
    since = status.incidents[0].since
    return [(e.step, round((e.at - since).total_seconds())) for e in status.escalations]


def started_input(history: Any) -> dict[str, Any]:
    attrs = history.events[0].workflow_execution_started_event_attributes
    return json.loads(attrs.input.payloads[0].data)


async def test_blocked_task_escalates_at_15_30_60_minutes(
    skipping_env: WorkflowEnvironment, settings: Settings
):
    async with stack(skipping_env, settings) as s:
        handle = await s.start_blocked({"reason": "no API key"})
        await skipping_env.sleep(timedelta(minutes=61))
        await s.delivered(3)
        status = await s.status(handle)
        assert status.state == "escalated"
        assert offsets(status) == [("peer", 900), ("lead", 1800), ("ceo", 3600)]
        assert [e.target for e in status.escalations] == ["ALEX", "MAX", "ceo"]
        key = status.incidents[0].key
        assert sorted(s.sink.keys()) == sorted([f"{key}:peer", f"{key}:lead", f"{key}:ceo"])
        assert [d.path for d in s.sink.delivered] == ["/agents/ALEX", "/agents/MAX", "/ceo"]
        assert "no API key" in s.sink.delivered[0].body["text"]

        lead = s.client.get_workflow_handle(f"task-lead-{status.id}-1")
        lead_input = started_input(await lead.fetch_history())
        assert lead_input["agent"] == "MAX" and lead_input["priority"] == "high"
        context = lead_input["context"]
        assert context["escalated_task_id"] == status.id
        assert context["reason"] == "no API key"
        assert context["last_error"] == status.attempts[0].error
        assert [a["n"] for a in context["attempts"]] == [1]

        await handle.signal("resolve", {"note": "key added"})
        final = await handle.result()
        assert final.state == "succeeded"
        assert final.incidents[0].status == "resolved"
        assert final.incidents[0].resolution == "key added"


async def test_acknowledge_at_minute_20_stops_lead_and_ceo_steps(
    skipping_env: WorkflowEnvironment, settings: Settings
):
    async with stack(skipping_env, settings) as s:
        handle = await s.start_blocked({"reason": "waiting on design"})
        await skipping_env.sleep(timedelta(minutes=20))
        await handle.signal("acknowledge", {"by": "CEO"})
        await skipping_env.sleep(timedelta(minutes=60))
        status = await s.status(handle)
        assert offsets(status) == [("peer", 900)]
        assert status.incidents[0].status == "acknowledged"
        assert status.incidents[0].acknowledged_by == "CEO"
        assert status.state == "blocked"
        await s.delivered(1)
        assert len(s.sink.delivered) == 1
        row = Ledger(s.settings.ledger_url).rows(incidents, key=status.incidents[0].key)[0]
        assert row["status"] == "acknowledged" and row["acknowledged_by"] == "CEO"
        await handle.signal("resolve", {})
        assert (await handle.result()).state == "succeeded"


async def test_progress_at_minute_20_resolves_and_resets_the_clock(
    skipping_env: WorkflowEnvironment, settings: Settings
):
    async with stack(skipping_env, settings) as s:
        handle = await s.start_blocked({"reason": "flaky staging"})
        await skipping_env.sleep(timedelta(minutes=20))
        await handle.signal("report_progress", {"note": "staging is back"})
        final = await handle.result()
        assert final.state == "succeeded"
        assert offsets(final) == [("peer", 900)]
        incident = final.incidents[0]
        assert incident.status == "resolved"
        assert round((incident.resolved_at - incident.opened_at).total_seconds()) == 1200
        row = Ledger(s.settings.ledger_url).rows(incidents, key=incident.key)[0]
        assert row["status"] == "resolved"
        assert round(json.loads(row["details"])["time_to_resolve_s"]) == 1200


async def test_three_identical_failures_block_and_resume_after_resolve(
    skipping_env: WorkflowEnvironment, settings: Settings
):
    async with stack(skipping_env, settings) as s:
        handle = await s.start("transient,transient,transient,ok")
        await skipping_env.sleep(timedelta(minutes=7))
        status = await s.status(handle)
        assert status.state == "blocked"
        assert status.incidents[0].kind == "blocked"
        assert "the same error 3 times" in status.incidents[0].reason
        await handle.signal("resolve", {"note": "rotated the token"})
        final = await handle.result()
        assert final.state == "succeeded"
        assert len(final.attempts) == 4


async def test_final_failure_escalates_straight_to_the_lead(
    skipping_env: WorkflowEnvironment, settings: Settings
):
    async with stack(skipping_env, settings) as s:
        handle = await s.start("permanent")
        with pytest.raises(WorkflowFailureError) as failed:
            await handle.result()
        # A failed task is a Failed execution whose TaskFailed error carries the document.
        assert isinstance(failed.value.cause, ApplicationError)
        assert failed.value.cause.type == "TaskFailed" and failed.value.cause.non_retryable
        assert (await handle.describe()).status == WorkflowExecutionStatus.FAILED
        final = await task_outcome(handle)
        assert final.state == "failed"
        incident = final.incidents[0]
        assert incident.kind == "failed"
        # The escalation outlives the task (ABANDON); its lead step fires at once.
        lead = s.client.get_workflow_handle(f"task-lead-{final.id}-1", result_type=TaskStatus)

        async def dispatched() -> bool:
            try:
                await lead.describe()
            except RPCError:
                return False
            return True

        await eventually(dispatched)
        assert (await lead.result()).state == "succeeded"
        # Started with the same options as any task (selfheal.task_options): found by task list.
        described = await lead.describe()
        assert await described.memo_value("title") == f"Unblock SAM: {final.title}"
        assert await described.memo_value("priority") == "high"
        assert described.typed_search_attributes.get(sa.KIND) == "task"
        # The task is over: its escalation does not signal it (no red event in the UI).
        escalation = await s.client.get_workflow_handle(incident.escalation_id).fetch_history()
        assert [
            e
            for e in escalation.events
            if e.HasField("start_child_workflow_execution_initiated_event_attributes")
        ]
        assert not [
            e
            for e in escalation.events
            if e.HasField("signal_external_workflow_execution_initiated_event_attributes")
        ]
        context = started_input(await lead.fetch_history())["context"]
        assert context["kind"] == "failed"
        assert context["escalated_workflow_id"] == final.workflow_id
        assert "no API key" in context["last_error"]
        await s.delivered(1)
        assert s.sink.delivered[0].path == "/agents/MAX"


async def test_a_ladder_started_at_the_lead_step_keeps_its_spacing(
    skipping_env: WorkflowEnvironment, settings: Settings
):
    async with stack(skipping_env, settings) as s:
        since = datetime.now(UTC)
        outcome = await s.client.execute_workflow(
            Escalation.run,
            EscalationInput(
                incident_key="task-x#1",
                n=1,
                kind="failed",
                subject="task-x",
                task_id="x",
                title="fix login",
                agent="SAM",
                peer="ALEX",
                lead="MAX",
                reason="gave up",
                since=since,
                ladder=s.settings.policies.escalation,
                first_step="lead",
            ),
            id=f"escalation-x-{uuid.uuid4().hex[:6]}",
            task_queue=s.settings.task_queue,
        )
        steps = [(r.step, round((r.at - since).total_seconds())) for r in outcome.steps]
        assert steps[0][0] == "lead" and steps[0][1] < 5
        assert steps[1][0] == "ceo" and steps[1][1] - steps[0][1] == 1800
        assert [d.path for d in s.sink.delivered] == ["/agents/MAX", "/ceo"]


async def test_malformed_signal_is_recorded_and_ignored(
    skipping_env: WorkflowEnvironment, settings: Settings
):
    async with stack(skipping_env, settings) as s:
        handle = await s.start_blocked({"reason": "   "})
        await handle.signal("mark_blocked", "just a string")
        await handle.signal("mark_blocked", {"reason": 5})
        final = await handle.result()
        assert final.state == "succeeded"
        assert final.incidents == []
        assert len(final.ignored_signals) == 3
        assert all(i.startswith("mark_blocked:") for i in final.ignored_signals)


async def test_signals_with_no_body_null_or_junk_never_fail_a_workflow_task(
    skipping_env: WorkflowEnvironment, settings: Settings
):
    """No body (the `temporal workflow signal` default) takes the defaults; null too; junk and
    surplus arguments are recorded. Not one workflow task fails, in the task or its ladder."""
    async with stack(skipping_env, settings) as s:
        handle = await s.start("transient,ok")
        await s.wait_state(handle, "retrying")
        await handle.signal("mark_blocked")  # no payload at all
        await s.wait_state(handle, "blocked")
        status = await s.status(handle)
        assert status.blocked_reason == "no reason given"
        escalation = s.client.get_workflow_handle(status.incidents[0].escalation_id)
        await escalation.signal("close", args=["junk", {"extra": 1}])  # malformed + surplus
        await escalation.signal("stuck")
        await handle.signal("acknowledge")
        await handle.signal("escalated", {})
        await handle.signal("report_progress", args=[None, None])
        await handle.signal("resolve", None)
        final = await handle.result()
        outcome = EscalationOutcome.model_validate(await escalation.result())
    assert final.state == "succeeded"
    assert final.incidents[0].acknowledged_by == "unknown"
    assert final.incidents[0].status == "resolved"
    assert final.ignored_signals == [
        "escalated: incident: Field required",
        "resolve: no open incident",  # report_progress had resolved it
    ]
    assert outcome.acknowledged_by == "unknown"
    assert [i.split(":")[0] for i in outcome.ignored_signals] == ["close"]
    for h in (handle, escalation):
        history = await h.fetch_history()
        failed = [e for e in history.events if e.HasField("workflow_task_failed_event_attributes")]
        assert failed == [], failed


async def test_notices_survive_an_endpoint_that_is_down_for_a_while(
    skipping_env: WorkflowEnvironment, settings: Settings
):
    sink = NotificationSink(fail_first=5)
    async with stack(skipping_env, settings, sink) as s:
        handle = await s.start_blocked({"reason": "no API key"})
        await skipping_env.sleep(timedelta(minutes=61))
        await s.delivered(3)
        status = await s.status(handle)
        # The ladder kept its times although the first notices had to be retried.
        assert offsets(status) == [("peer", 900), ("lead", 1800), ("ceo", 3600)]
        assert sink.requests > 3
        assert len(set(sink.keys())) == len(sink.keys()) == 3
        rows = Ledger(s.settings.ledger_url).rows(notifications)
        assert sorted(r["status"] for r in rows) == ["sent", "sent", "sent"]
        await handle.signal("resolve", {})
        assert (await handle.result()).state == "succeeded"


async def test_a_stalls_lead_step_follows_the_stuck_flag_or_a_short_grace(
    skipping_env: WorkflowEnvironment, settings: Settings
):
    """Detect, then escalate: a stuck incident's lead step (due at the stuck threshold) fires
    when the task flags itself stuck; without the flag, 5 s after its time."""
    async with stack(skipping_env, settings) as s:
        since = datetime.now(UTC)
        handles = []
        for flagged in (True, False):
            handles.append(
                await s.client.start_workflow(
                    Escalation.run,
                    EscalationInput(
                        incident_key=f"task-x#{flagged}", n=1, kind="stuck",
                        subject="task-x", task_id=f"x-{uuid.uuid4().hex[:6]}",
                        title="slow build", agent="SAM", peer="ALEX", lead="MAX",
                        reason="no progress", since=since,
                        ladder=s.settings.policies.escalation, stuck=s.settings.policies.stuck,
                    ),
                    id=f"escalation-x-{uuid.uuid4().hex[:6]}",
                    task_queue=s.settings.task_queue,
                )
            )  # fmt: skip
        await skipping_env.sleep(timedelta(minutes=30))
        await handles[0].signal("stuck", {"at": datetime.now(UTC).isoformat()})
        await skipping_env.sleep(timedelta(minutes=1))
        for handle, lead_after in zip(handles, (1800, 1805), strict=True):
            outcome = await handle.query(Escalation.outcome)
            steps = {r.step: (r.at - since).total_seconds() for r in outcome.steps}
            assert steps["peer"] == pytest.approx(900, abs=1)
            assert steps["lead"] == pytest.approx(lead_after, abs=1)
            await handle.signal("close", {"reason": "resolved"})


def red_signals(history: Any) -> list[Any]:
    """The UI's red "Signal External Workflow Execution Failed" events."""
    return [
        e
        for e in history.events
        if e.HasField("signal_external_workflow_execution_failed_event_attributes")
    ]


async def test_no_signal_goes_to_an_escalation_that_is_over(
    skipping_env: WorkflowEnvironment, settings: Settings
):
    async with stack(skipping_env, settings) as s:
        acked = await s.start_blocked({"reason": "no API key"})
        await skipping_env.sleep(timedelta(minutes=20))
        await acked.signal("acknowledge", {"by": "MAX"})  # the ladder stops and ends
        await acked.signal("resolve", {})
        assert (await acked.result()).state == "succeeded"

        spent = await s.start_blocked({"reason": "waiting on design"})
        await skipping_env.sleep(timedelta(minutes=61))  # peer, lead and CEO: nothing left
        await eventually(lambda: _escalation_closed(s.client, spent))
        await spent.signal("resolve", {})
        final = await spent.result()
        assert [e.step for e in final.escalations] == ["peer", "lead", "ceo"]

        for handle in (acked, spent):
            status = await s.status(handle)
            escalation = s.client.get_workflow_handle(status.incidents[0].escalation_id)
            assert red_signals(await handle.fetch_history()) == []
            assert red_signals(await escalation.fetch_history()) == []


async def _escalation_closed(client: Client, handle: WorkflowHandle[Any, TaskStatus]) -> bool:
    status = await handle.query(AgentTask.status)
    escalation = client.get_workflow_handle(status.incidents[0].escalation_id)
    return (await escalation.describe()).status == WorkflowExecutionStatus.COMPLETED
