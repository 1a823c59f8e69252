"""Run a selfheal worker: load config, connect, run a Worker with the SelfHealing plugin."""

import asyncio

from temporalio.worker import Worker

from selfheal.config import load_settings
from selfheal.plugins import SelfHealing
from starter.client import connect


async def main() -> None:
    settings = load_settings()
    client = await connect()
    worker = Worker(client, task_queue=settings.task_queue, plugins=[SelfHealing(settings)])
    await worker.run()


if __name__ == "__main__":
    asyncio.run(main())
