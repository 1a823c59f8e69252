"""The health page in a real headless Chromium: it renders the agents and incidents from the
ledger, shows hostile text as text, and shows a task blocked by a real signal within 2 s over
SSE, without a reload."""

import time
import uuid
from datetime import UTC, datetime

from temporalio.testing import WorkflowEnvironment
from temporalio.worker import Worker

from selfheal.config import Settings
from selfheal.models import AdapterSpec
from selfheal.plugins import SelfHealing
from starter.api.app import create_app
from starter.client import build_task_input, start_task
from starter.testing import serving
from tests.dashboard.browser import chromium
from tests.dashboard.ledger_data import HOSTILE, fill


async def test_page_renders_agents_incidents_and_escapes_hostile_text(
    settings: Settings, local_env: WorkflowEnvironment
) -> None:
    fill(settings.ledger_url, datetime.now(UTC).replace(second=0, microsecond=0)).engine.dispose()
    async with serving(create_app(settings, local_env.client)) as url, chromium() as browser:
        page = await browser.new_page(viewport={"width": 390, "height": 844})  # a phone
        answer = await page.goto(f"{url}/?window=7d")
        assert answer is not None and answer.status == 200
        cards = page.locator("[data-agent]")
        assert await cards.count() == 5
        sam = page.locator('[data-agent="SAM"]')
        assert "error rate\n15.0%" in await sam.inner_text()
        assert "uptime\n93.3%" in await sam.inner_text()  # 28 of 30 samples
        leo = page.locator('[data-agent="LEO"]')
        assert "blocked" in await leo.locator("[data-testid=current]").inner_text()
        rows = page.locator("[data-incident]")
        assert await rows.count() == 3
        first = await rows.first.inner_text()
        assert HOSTILE in first and "peer" in first and "open" in first
        # the hostile title is text: no element from it, no script run
        assert await page.locator("b:text('bold')").count() == 0
        assert await page.evaluate("document.scripts.length") == 1
        assert await page.evaluate("typeof window.pwned") == "undefined"
        assert await page.locator("svg.chart").count() == 2
        width = await page.evaluate("document.documentElement.scrollWidth")
        assert width <= 390  # readable on a phone: nothing wider than the screen


async def test_a_task_marked_blocked_shows_within_two_seconds(
    settings: Settings, local_env: WorkflowEnvironment
) -> None:
    client = local_env.client
    title = f"wire the <billing> API {uuid.uuid4().hex[:6]}"
    worker = Worker(client, task_queue=settings.task_queue, plugins=[SelfHealing(settings)])
    async with worker, serving(create_app(settings, client)) as url, chromium() as browser:
        handle = await start_task(
            client,
            settings,
            build_task_input(
                settings,
                agent="ALEX",
                title=title,
                adapter=AdapterSpec(kind="sim", sim="hang"),
            ),
        )
        page = await browser.new_page()
        await page.goto(url)
        alex = page.locator('[data-agent="ALEX"] [data-testid=current]')
        await alex.get_by_text(title).wait_for(timeout=15000)  # running, shown by the stream
        assert "running" in await alex.inner_text()
        assert await page.locator("#conn").inner_text() == "live"

        began = time.monotonic()
        await handle.signal("mark_blocked", {"reason": "waiting on the DB team"})
        await page.locator('[data-agent="ALEX"] .pill.blocked').first.wait_for(timeout=2000)
        shown = time.monotonic() - began
        assert shown < 2.0
        assert title in await alex.inner_text()
        row = page.locator("[data-incident]").first
        assert "waiting on the DB team" in await row.inner_text()
        await handle.terminate("test over")
