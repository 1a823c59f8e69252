"""The plugin opens no ledger when it is made (a client or a replayer touches nothing); a worker
built with it migrates the ledger before it runs anything."""

from temporalio.client import Client
from temporalio.worker import Worker

from selfheal.config import Settings
from selfheal.plugins import SelfHealing


async def test_the_ledger_is_opened_by_the_worker_not_the_plugin(
    client: Client, settings: Settings
) -> None:
    path = settings.data_dir / "ledger.db"
    plugin = SelfHealing(settings)
    await Client.connect(client.service_client.config.target_host, plugins=[plugin])
    assert not path.exists() and not settings.data_dir.exists()

    async with Worker(client, task_queue=settings.task_queue, plugins=[plugin]):
        assert path.exists()
        assert plugin.ledger.migration is not None and plugin.ledger.migration[0] == ()
