"""``selfheal db upgrade``, and the migration every start does (worker, API) or, with
SELFHEAL_DB_MIGRATE=false, refuses: as a user runs them, as subprocesses."""

import asyncio
import json
import os

import sqlalchemy as sa
from temporalio.testing import WorkflowEnvironment
from temporalio.worker import Worker

from activities.ledger import migrate
from activities.ledger.engine import create_engine
from selfheal.config import Settings
from selfheal.plugins import SelfHealing
from starter.devserver import free_port
from tests.activities.test_ledger_migrations import version_of
from tests.starter.test_task_cli import assert_refused
from tests.waiting import eventually
from tests.workers import kill, selfheal, stack_env, start_worker


def test_db_upgrade_creates_the_ledger_then_has_nothing_to_do(ledger_url: str) -> None:
    env = os.environ | {"SELFHEAL_DB_URL": ledger_url}
    first = selfheal("db", "upgrade", env=env)
    assert first.returncode == 0, first.stderr
    assert f"upgraded from nothing to {'+'.join(migrate.head())}" in first.stdout
    assert version_of(ledger_url) == migrate.head()

    again = selfheal("db", "upgrade", "--json", env=env)
    assert again.returncode == 0, again.stderr
    report = json.loads(again.stdout)
    assert report["from"] == report["to"] == list(migrate.head())


def test_db_upgrade_of_an_unreachable_postgres_is_one_line_without_the_password() -> None:
    url = f"postgresql://selfheal:pw-s3cr3t@127.0.0.1:{free_port()}/ledger"
    result = selfheal("db", "upgrade", env=os.environ | {"SELFHEAL_DB_URL": url})
    assert_refused(result, "cannot open the ledger at postgresql+psycopg://selfheal:***@127.0.0.1")
    assert "pw-s3cr3t" not in result.stderr + result.stdout


async def test_a_worker_migrates_on_start_unless_told_not_to(
    local_env: WorkflowEnvironment, settings: Settings
) -> None:
    url = settings.ledger_url
    # SELFHEAL_DB_MIGRATE=false: the worker (and the API) refuse a ledger that is not at the head.
    env = stack_env(local_env, settings, SELFHEAL_DB_MIGRATE="false")
    refused = await asyncio.to_thread(selfheal, "worker", env=env)
    assert_refused(refused, "run `selfheal db upgrade`")
    api = await asyncio.to_thread(selfheal, "api", "--port", str(free_port()), env=env)
    assert_refused(api, "run `selfheal db upgrade`")
    assert version_of(url) == ()

    # By default the worker migrates as it starts, before any task runs.
    worker = start_worker(local_env, settings)
    try:
        await eventually(lambda: asyncio.to_thread(lambda: version_of(url) == migrate.head()), 60)
    finally:
        kill(worker)
    engine = create_engine(url)
    assert set(sa.inspect(engine).get_table_names()) >= {"tasks", "alembic_version"}
    engine.dispose()
    # At the head, a worker that may not migrate is made without a word.
    no_migrate = SelfHealing(settings.model_copy(update={"db_migrate": False}))
    async with Worker(local_env.client, task_queue=settings.task_queue, plugins=[no_migrate]):
        pass
