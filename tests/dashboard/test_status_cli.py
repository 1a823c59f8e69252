"""``selfheal status`` and ``selfheal worker --metrics-port`` as a user runs them (subprocesses
against a real dev server)."""

import asyncio
import contextlib
import json
import os
import signal
import subprocess
import sys
import time
from datetime import UTC, datetime

import httpx
from prometheus_client.parser import text_string_to_metric_families
from temporalio.testing import WorkflowEnvironment
from temporalio.worker import Worker

from activities.ledger import Ledger, incidents
from dashboard.document import HealthDocument
from selfheal.config import Settings
from selfheal.plugins import SelfHealing
from starter.devserver import free_port
from tests.dashboard.ledger_data import HOSTILE, fill
from tests.workers import ROOT, selfheal, stack_env


def now() -> datetime:
    return datetime.now(UTC).replace(second=0, microsecond=0)


async def test_status_exits_1_without_a_worker_and_0_with_one(
    local_env: WorkflowEnvironment, settings: Settings
) -> None:
    fill(settings.ledger_url, now()).engine.dispose()
    env = stack_env(local_env, settings)
    down = await asyncio.to_thread(selfheal, "status", env=env)
    assert down.returncode == 1, down.stderr
    assert f"down: no live worker polls task queue {settings.task_queue}" in down.stdout
    assert "\x1b[" not in down.stdout  # no colours when not a terminal
    assert "LEO" in down.stdout and "held" in down.stdout and "<script>" in down.stdout
    assert "retry success" in down.stdout and "66.7% (2/3)" in down.stdout

    worker = Worker(
        local_env.client, task_queue=settings.task_queue, plugins=[SelfHealing(settings)]
    )
    async with worker:
        for _ in range(50):
            up = await asyncio.to_thread(selfheal, "status", "--json", "--window", "7d", env=env)
            if up.returncode == 0:
                break
            await asyncio.sleep(0.2)
    assert up.returncode == 0, up.stdout[-800:]
    doc = HealthDocument.model_validate(json.loads(up.stdout))
    assert doc.window == "7d" and doc.ok and doc.workers.workflow_pollers >= 1
    assert doc.incidents[0].title == HOSTILE


def test_status_bad_input_is_one_line_and_exit_2(settings: Settings) -> None:
    result = selfheal("status", "--window", "fortnight")
    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == [
        "selfheal: error: unknown window 'fortnight' (use one of 1h, 24h, 7d)"
    ]


def test_status_says_when_the_ledger_is_unreachable(
    local_env: WorkflowEnvironment, settings: Settings
) -> None:
    env = stack_env(
        local_env,
        settings,
        SELFHEAL_DB_URL=f"postgresql+psycopg://postgres@127.0.0.1:{free_port()}/ledger",
    )
    result = selfheal("status", env=env)
    assert result.returncode == 1
    assert result.stderr.startswith("selfheal: ledger unreachable: cannot open the ledger at")
    assert len(result.stderr.strip().splitlines()) == 1
    assert "Traceback" not in result.stderr


def test_worker_serves_the_sdk_metrics(local_env: WorkflowEnvironment, settings: Settings) -> None:
    port = free_port()
    worker = subprocess.Popen(
        [sys.executable, "-m", "starter.cli", "worker", "--metrics-port", str(port)],
        cwd=ROOT,
        env=stack_env(local_env, settings),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        start_new_session=True,
    )
    try:
        deadline, text = time.monotonic() + 60, ""
        while time.monotonic() < deadline and "temporal_num_pollers" not in text:
            with contextlib.suppress(httpx.HTTPError):
                text = httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=2).text
            time.sleep(0.3)
        names = {f.name for f in text_string_to_metric_families(text)}
        assert "temporal_num_pollers" in names, sorted(names)[:20]
        assert any(n.startswith("temporal_worker_task_slots") for n in names)
    finally:
        os.killpg(worker.pid, signal.SIGTERM)
        worker.wait(timeout=30)


def test_worker_metrics_port_in_use_is_one_line(settings: Settings) -> None:
    import socket

    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        port = taken.getsockname()[1]
        result = selfheal("worker", "--metrics-port", str(port))
    assert result.returncode == 2
    assert result.stderr.strip() == f"selfheal: error: --metrics-port {port} is in use on 127.0.0.1"


async def test_status_watch_prints_again_when_the_ledger_changes(
    local_env: WorkflowEnvironment, settings: Settings
) -> None:
    fill(settings.ledger_url, now()).engine.dispose()
    env = stack_env(local_env, settings)
    watch = subprocess.Popen(
        [sys.executable, "-m", "starter.cli", "status", "--watch", "--json", "--every", "0.2"],
        cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        start_new_session=True,
    )  # fmt: skip
    try:
        first = await asyncio.to_thread(watch.stdout.readline)  # type: ignore[union-attr]
        assert first.strip() == "{"
        ledger = Ledger(settings.ledger_url)
        with ledger.engine.begin() as conn:
            conn.execute(incidents.update().where(incidents.c.key == "task-leo-1#1")
                         .values(status="resolved", resolved_at=datetime.now(UTC)))  # fmt: skip
        ledger.close()
        lines: list[str] = []

        def read_the_next_document() -> None:
            seen = 0  # the rest of the first document, then the whole second one
            while seen < 2:
                lines.append(watch.stdout.readline())  # type: ignore[union-attr]
                seen += lines[-1] == "}\n"

        await asyncio.wait_for(asyncio.to_thread(read_the_next_document), 30)
    finally:
        os.killpg(watch.pid, signal.SIGINT)
        watch.wait(timeout=30)
    second = json.loads("".join(lines[lines.index("{\n") :]))
    assert second["incidents"][0]["status"] == "resolved"
