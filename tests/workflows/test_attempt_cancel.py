"""A cancelled task (a superseded review's task, `task cancel`) ends only once its running attempt
has settled: the attempt never completes against a closed workflow, which made the core log
"Activity not found on completion" and the worker a cancelled-as-not-found traceback."""

import asyncio
import logging
import uuid

import pytest
from temporalio.api.enums.v1 import EventType
from temporalio.api.enums.v1 import PendingActivityState as PAS
from temporalio.client import WorkflowFailureError
from temporalio.exceptions import CancelledError
from temporalio.testing import WorkflowEnvironment
from temporalio.worker import Worker

from selfheal.config import Settings
from selfheal.models import AdapterSpec
from selfheal.plugins import SelfHealing
from starter.client import build_task_input, start_task
from tests.waiting import eventually

SETTLED = {
    EventType.EVENT_TYPE_ACTIVITY_TASK_COMPLETED,
    EventType.EVENT_TYPE_ACTIVITY_TASK_CANCELED,
}


async def test_a_cancelled_task_waits_for_its_running_attempt(
    local_env: WorkflowEnvironment, settings: Settings, caplog: pytest.LogCaptureFixture
):
    caplog.set_level(logging.WARNING, logger="temporalio")
    async with Worker(
        local_env.client, task_queue=settings.task_queue, plugins=[SelfHealing(settings)]
    ):
        input = build_task_input(
            settings,
            agent="QUINN",
            title="review a superseded head",
            adapter=AdapterSpec(kind="sim", sim="stall:2"),
            task_id=f"cancel-{uuid.uuid4().hex[:6]}",
        )
        handle = await start_task(local_env.client, settings, input)

        async def attempt_running() -> bool:
            pending = (await handle.describe()).raw_description.pending_activities
            return any(p.state == PAS.PENDING_ACTIVITY_STATE_STARTED for p in pending)

        await eventually(attempt_running)
        await handle.cancel()
        with pytest.raises(WorkflowFailureError) as failure:
            await asyncio.wait_for(handle.result(), 30)
        assert isinstance(failure.value.cause, CancelledError)
        # The worker stays up a moment longer: a late completion would be logged now.
        await asyncio.sleep(1.0)

    events = [e.event_type async for e in handle.fetch_history_events()]
    requested = events.index(EventType.EVENT_TYPE_ACTIVITY_TASK_CANCEL_REQUESTED)
    closed = events.index(EventType.EVENT_TYPE_WORKFLOW_EXECUTION_CANCELED)
    assert any(e in SETTLED for e in events[requested:closed]), "closed with the attempt pending"
    noisy = [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING]
    assert not noisy
