"""The worker defaults the plugin sets, and that a user's own choice is kept."""

from datetime import timedelta

from temporalio.client import Client
from temporalio.worker import WorkerConfig

from selfheal.config import Settings
from selfheal.plugins import SelfHealing


def configured(client: Client, settings: Settings, **given: object) -> WorkerConfig:
    config = WorkerConfig(client=client, task_queue=settings.task_queue, **given)  # type: ignore[typeddict-item]
    return SelfHealing(settings).configure_worker(config)


def test_workflow_task_slots_default_to_the_setting(client: Client, settings: Settings) -> None:
    config = configured(client, settings.model_copy(update={"worker_workflow_tasks": 7}))
    assert config["max_concurrent_workflow_tasks"] == 7
    assert config["max_heartbeat_throttle_interval"] == timedelta(seconds=5)


def test_the_users_slots_heartbeat_throttle_and_tuner_are_kept(
    client: Client, settings: Settings
) -> None:
    config = configured(
        client,
        settings,
        max_concurrent_workflow_tasks=50,
        max_heartbeat_throttle_interval=timedelta(seconds=20),
    )
    assert config["max_concurrent_workflow_tasks"] == 50
    assert config["max_heartbeat_throttle_interval"] == timedelta(seconds=20)
    tuned = configured(client, settings, tuner=object())
    assert tuned.get("max_concurrent_workflow_tasks") is None
