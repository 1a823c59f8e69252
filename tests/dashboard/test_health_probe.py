"""HealthProbe: every adapter's availability probe, a hanging health URL (down, and the schedule
goes on), held agents, idempotent samples; the workflow in time-skipping, the schedule on a real
dev server."""

import asyncio
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime

import pytest
import sqlalchemy as sa
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route
from temporalio.client import Client
from temporalio.testing import WorkflowEnvironment
from temporalio.worker import Worker

from activities.health import HealthActivities
from activities.ledger import Ledger, incidents
from activities.ledger.schema import uptime_samples
from selfheal.config import AgentConfig, Settings
from selfheal.health import AgentSample, HealthProbeInput, SampleBatch
from selfheal.patterns import ANALYSIS_SCHEDULE_ID
from selfheal.plugins import SelfHealing
from starter.schedules import HEALTH_PROBE_ID, apply_schedules, health_probe_schedule
from starter.testing import serving
from tests.waiting import eventually
from workflows.health_probe import HealthProbe


def agent_service() -> Starlette:
    async def healthy(_: Request) -> JSONResponse:
        return JSONResponse({"ok": True})

    async def hangs(_: Request) -> JSONResponse:
        await asyncio.sleep(3600)
        return JSONResponse({})

    return Starlette(routes=[Route("/health", healthy), Route("/hang", hangs)])


@pytest.fixture
async def agents_url() -> AsyncIterator[str]:
    async with serving(agent_service()) as url:
        yield url


def team(url: str) -> dict[str, AgentConfig]:
    return {
        "SAM": AgentConfig(peers=["LEO"]),
        "ALEX": AgentConfig(peers=["SAM"], adapter="http", url=f"{url}/hang"),
        "LEO": AgentConfig(peers=["SAM"], adapter="command", command="true --version"),
        "QUINN": AgentConfig(
            role="reviewer", peers=["MAX"], adapter="command", command="no-such-agent-binary-x9 run"
        ),
        "MAX": AgentConfig(
            role="lead", peers=["QUINN"], lead=None, adapter="http", url=f"{url}/health"
        ),
    }


def samples(settings: Settings) -> list[tuple[str, bool, bool, str]]:
    engine = Ledger(settings.ledger_url).engine
    s = uptime_samples.c
    with engine.connect() as conn:
        rows = conn.execute(sa.select(s.agent, s.available, s.held, s.detail, s.at))
        return sorted((r.agent, r.available, r.held, r.detail) for r in rows)


def open_blocked(settings: Settings, agent: str) -> None:
    with Ledger(settings.ledger_url).engine.begin() as conn:
        conn.execute(
            incidents.insert().values(
                key=f"task-x#{uuid.uuid4().hex[:4]}",
                kind="blocked",
                subject="task-x",
                task_id="x",
                agent=agent,
                title="t",
                reason="r",
                status="open",
                opened_at=datetime.now(UTC),
                details="{}",
            )
        )


async def test_probe_workflow_samples_every_adapter_in_time_skipping(
    skipping_env: WorkflowEnvironment, settings: Settings, agents_url: str
) -> None:
    settings = settings.model_copy(update={"agents": team(agents_url)})
    open_blocked(settings, "LEO")
    client = skipping_env.client
    async with Worker(client, task_queue=settings.task_queue, plugins=[SelfHealing(settings)]):
        summary = await client.execute_workflow(
            HealthProbe.run,
            HealthProbeInput(timeout=1.0),
            id=f"probe-{uuid.uuid4().hex[:6]}",
            task_queue=settings.task_queue,
        )
    assert summary.up == ["SAM", "MAX"]
    assert sorted(summary.down) == ["ALEX", "QUINN"]
    assert summary.held == ["LEO"]
    assert samples(settings) == [
        ("ALEX", False, False, "no answer within 1s"),
        ("LEO", True, True, "true found"),
        ("MAX", True, False, "HTTP 200"),
        ("QUINN", False, False, "no-such-agent-binary-x9 not found"),
        ("SAM", True, False, ""),
    ]


async def test_a_retried_write_adds_no_sample(settings: Settings) -> None:
    activities = HealthActivities(settings, Ledger(settings.ledger_url))
    batch = SampleBatch(at=datetime.now(UTC), samples=[AgentSample(agent="SAM", available=True)])
    await activities.record_samples(batch)
    await activities.record_samples(batch)
    assert samples(settings) == [("SAM", True, False, "")]


async def test_the_schedule_keeps_sampling_past_a_hanging_agent(
    local_env: WorkflowEnvironment, settings: Settings, agents_url: str
) -> None:
    # every 60 s / 60 = 1 s; the hanging agent's probe is cut at 0.5 s
    settings = settings.model_copy(update={"agents": team(agents_url), "time_scale": 60.0})
    client: Client = local_env.client
    async with Worker(client, task_queue=settings.task_queue, plugins=[SelfHealing(settings)]):
        # Every Schedule selfheal declares (the weekly pattern analysis too), once each.
        applied = await apply_schedules(client, settings)
        assert applied == [HEALTH_PROBE_ID, ANALYSIS_SCHEDULE_ID]
        assert await apply_schedules(client, settings) == applied  # updates in place
        handle = client.get_schedule_handle(HEALTH_PROBE_ID)
        try:

            async def three_rounds() -> bool:
                return sum(1 for s in samples(settings) if s[0] == "ALEX") >= 3

            await eventually(three_rounds, timeout=30)
            description = await handle.describe()
            assert description.schedule.spec.intervals[0].every.total_seconds() == 1.0
        finally:
            await handle.delete()
    alex = [s for s in samples(settings) if s[0] == "ALEX"]
    assert all(
        not available and detail == "no answer within 0.5s" for _, available, _, detail in alex
    )
    assert {s[0] for s in samples(settings)} == {"SAM", "ALEX", "LEO", "QUINN", "MAX"}


def test_the_schedule_is_scaled_by_the_time_scale(settings: Settings) -> None:
    _, every_minute = health_probe_schedule(settings)
    _, fast = health_probe_schedule(settings.model_copy(update={"time_scale": 60.0}))
    assert every_minute.spec.intervals[0].every.total_seconds() == 60
    assert fast.spec.intervals[0].every.total_seconds() == 1
