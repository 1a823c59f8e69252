"""The plugin set: one ``SimplePlugin`` per capability and ``SelfHealing``, which composes them.

Add ``SelfHealing(settings)`` to a client or a worker of your own. Activities are built per worker
with that worker's client injected (the ``http`` adapter, progress signals and escalations need
it). Payloads are pydantic's plain JSON; the host's payload codec (encryption, compression), its
failure converter and external storage are kept, and a payload converter of its own is kept if it
already speaks pydantic, refused with one clear message otherwise. Making the plugin, or using it
in a client or a replayer, opens nothing: the ledger is opened when a worker is configured.
"""

import dataclasses
from collections.abc import Callable, Sequence
from datetime import timedelta
from functools import reduce
from typing import Any

from temporalio.client import Client, ClientConfig
from temporalio.contrib.pydantic import PydanticPayloadConverter, pydantic_data_converter
from temporalio.converter import DataConverter, DefaultPayloadConverter
from temporalio.plugin import SimplePlugin
from temporalio.worker import ReplayerConfig, WorkerConfig

from activities.agents import AgentActivities
from activities.build import build
from activities.git import GitActivities
from activities.github import GitHubActivities
from activities.health import HealthActivities
from activities.learning import LearningActivities
from activities.ledger import CommitGuardLedgerActivities, Ledger, LedgerActivities
from activities.ledger.learnings import LearningStore
from activities.notify import NotifyActivities
from activities.patterns import PatternDocs
from activities.review import ReviewActivities
from selfheal.config import Settings, load_settings
from workflows.agent_task import AgentTask
from workflows.commit_guard import CommitGuard
from workflows.commit_queue import CommitQueue
from workflows.escalation import Escalation
from workflows.health_probe import HealthProbe
from workflows.pattern import Pattern
from workflows.pattern_analysis import PatternAnalysis
from workflows.pr_review import PRReview

_HEARTBEAT_THROTTLE = timedelta(seconds=5)
_SDK_HEARTBEAT_THROTTLE = timedelta(seconds=60)
ActivityFactory = Callable[[Client], Sequence[Callable[..., Any]]]


class ConverterConflict(ValueError):
    """The host's payload converter cannot carry selfheal's pydantic payloads."""


def pydantic_payloads(existing: DataConverter | None) -> DataConverter:
    """The host's data converter with pydantic payloads; everything else of it is kept."""
    if existing is None:
        return pydantic_data_converter
    own = existing.payload_converter_class
    if issubclass(own, PydanticPayloadConverter):
        return existing  # pydantic already (the host's own subclass included)
    if own is not DefaultPayloadConverter:
        raise ConverterConflict(
            f"selfheal needs pydantic payloads, but the client's data converter uses "
            f"{own.__module__}.{own.__qualname__}: derive it from "
            "temporalio.contrib.pydantic.PydanticPayloadConverter (a payload codec is kept as is)"
        )
    return dataclasses.replace(existing, payload_converter_class=PydanticPayloadConverter)


class CapabilityPlugin(SimplePlugin):
    """A capability's workflows, plus activities made with the worker's own client."""

    def __init__(self, name: str, workflows: Sequence[type], activities: ActivityFactory) -> None:
        super().__init__(name, data_converter=pydantic_payloads, workflows=workflows)
        self._activities = activities

    def configure_worker(self, config: WorkerConfig) -> WorkerConfig:
        config = super().configure_worker(config)
        config["activities"] = [*config.get("activities", []), *self._activities(config["client"])]
        return config


def auto_retry(settings: Settings, ledger: Ledger) -> CapabilityPlugin:
    """M2.1: AgentTask, the agent adapters and the ledger."""

    def make(client: Client) -> Sequence[Callable[..., Any]]:
        agents, book = AgentActivities(settings, client), LedgerActivities(ledger)
        return [agents.run, *book.all()]

    return CapabilityPlugin("selfheal.AutoRetry", [AgentTask], make)


def blocker_detection(settings: Settings, ledger: Ledger) -> CapabilityPlugin:
    """M2.4: the Escalation ladder and its notices (stuck detection lives in AgentTask)."""

    def make(client: Client) -> Sequence[Callable[..., Any]]:
        return [NotifyActivities(settings, ledger).send]

    return CapabilityPlugin("selfheal.BlockerDetection", [Escalation], make)


def pr_review(settings: Settings, ledger: Ledger) -> CapabilityPlugin:
    """M2.3: PRReview, GitHub commit statuses and the older-review sweep."""

    def make(client: Client) -> Sequence[Callable[..., Any]]:
        github, review = GitHubActivities(settings), ReviewActivities(client)
        return [github.set_commit_status, review.find_older]

    return CapabilityPlugin("selfheal.PRReview", [PRReview], make)


def rollback(settings: Settings, ledger: Ledger) -> CapabilityPlugin:
    """M2.2: CommitGuard, its per-repository CommitQueue, builds, git and the guard ledger.
    Incidents and notices use the ledger and notify activities of the other capabilities."""

    def make(client: Client) -> Sequence[Callable[..., Any]]:
        repo, book = GitActivities(), CommitGuardLedgerActivities(ledger)
        return [build, repo.inspect, repo.revert, repo.commits_between, book.record_commit_guard]

    return CapabilityPlugin("selfheal.Rollback", [CommitGuard, CommitQueue], make)


def health(settings: Settings, ledger: Ledger) -> CapabilityPlugin:
    """M2.6: HealthProbe, which the schedule ``selfheal-health-probe`` runs every minute."""

    def make(client: Client) -> Sequence[Callable[..., Any]]:
        probe = HealthActivities(settings, ledger)
        return [probe.probe_agents, probe.record_samples]

    return CapabilityPlugin("selfheal.Health", [HealthProbe], make)


def learning(settings: Settings, ledger: Ledger) -> CapabilityPlugin:
    """M2.5: the Pattern entities, the weekly PatternAnalysis, the learnings in the ledger and
    the docs/patterns files. Regressions escalate with the other capabilities' activities."""

    def make(client: Client) -> Sequence[Callable[..., Any]]:
        book = LearningActivities(LearningStore(ledger), client)
        return [*book.all(), PatternDocs(settings).write_docs]

    return CapabilityPlugin("selfheal.Learning", [Pattern, PatternAnalysis], make)


class SelfHealing(SimplePlugin):
    """Every selfheal capability in one plugin."""

    def __init__(
        self,
        settings: Settings | None = None,
        capabilities: Sequence[SimplePlugin] | None = None,
    ) -> None:
        super().__init__("selfheal.SelfHealing", data_converter=pydantic_payloads)
        self.settings = settings or load_settings()
        self.ledger = Ledger.from_settings(self.settings)  # lazy: opened by configure_worker
        self.capabilities = list(capabilities if capabilities is not None else [
            auto_retry(self.settings, self.ledger),
            blocker_detection(self.settings, self.ledger),
            pr_review(self.settings, self.ledger),
            rollback(self.settings, self.ledger),
            health(self.settings, self.ledger),
            learning(self.settings, self.ledger),
        ])  # fmt: skip

    def configure_client(self, config: ClientConfig) -> ClientConfig:
        config = super().configure_client(config)
        return reduce(lambda c, p: p.configure_client(c), self.capabilities, config)

    def configure_worker(self, config: WorkerConfig) -> WorkerConfig:
        # A worker starts here: migrate the ledger now (or refuse an older schema), not on the
        # first activity; a client or a replayer never opens it.
        self.ledger.open()
        config = super().configure_worker(config)
        # A cancelled attempt learns of it on a heartbeat reply, and the SDK sends heartbeats at
        # most every 0.8 x heartbeat timeout (24 s by default): a task cancel would wait that long.
        # The SDK's default (60 s) is lowered; a value the user chose is kept.
        if config.get("max_heartbeat_throttle_interval") in (None, _SDK_HEARTBEAT_THROTTLE):
            config["max_heartbeat_throttle_interval"] = _HEARTBEAT_THROTTLE
        if config.get("tuner") is None and config.get("max_concurrent_workflow_tasks") is None:
            config["max_concurrent_workflow_tasks"] = self.settings.worker_workflow_tasks
        return reduce(lambda c, p: p.configure_worker(c), self.capabilities, config)

    def configure_replayer(self, config: ReplayerConfig) -> ReplayerConfig:
        config = super().configure_replayer(config)
        return reduce(lambda c, p: p.configure_replayer(c), self.capabilities, config)
