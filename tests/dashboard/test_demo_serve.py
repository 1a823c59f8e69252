"""``selfheal demo --serve``: after the scenarios, the demo's worker, the API with the health page
and the probe schedule stay up until stopped."""

import asyncio
import contextlib

import httpx
from temporalio.testing import WorkflowEnvironment

from selfheal.config import Settings
from starter.cli.run import serve_after_demo
from starter.devserver import free_port
from starter.schedules import HEALTH_PROBE_ID
from tests.waiting import eventually


async def test_serve_keeps_the_page_and_the_probe_up(
    local_env: WorkflowEnvironment, settings: Settings
) -> None:
    settings = settings.model_copy(update={"time_scale": 60.0})
    port = free_port()
    serving = asyncio.create_task(
        serve_after_demo(settings, local_env.client, "http://127.0.0.1:8233", port)
    )
    try:
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", timeout=10) as http:

            async def every_agent_sampled() -> bool:
                with contextlib.suppress(httpx.HTTPError):
                    doc = (await http.get("/api/health?window=1h")).json()
                    return (
                        all(a["samples"] > 0 for a in doc["agents"])
                        and doc["workers"]["workflow_pollers"] > 0
                    )
                return False

            await eventually(every_agent_sampled, timeout=60)
            page = await http.get("/")
        assert page.status_code == 200 and 'data-agent="SAM"' in page.text
    finally:
        serving.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await serving
        await local_env.client.get_schedule_handle(HEALTH_PROBE_ID).delete()
