"""What a demo scenario is: a module of this package that defines ``SCENARIO``, run with a
``DemoContext``, returning a ``ScenarioResult`` (its table, its seed metric rows, its failed
checks). The runner (``starter.demo.runner``) finds every ``SCENARIO`` here, so a new capability's
scenario is one new module; nothing in the runner changes."""

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

from temporalio.client import Client

from selfheal.config import Settings
from starter.testing import NotificationSink


@dataclass
class Metric:
    """One row of the seed's success metrics; ``note`` says how it was counted."""

    name: str
    value: str
    target: str
    ok: bool
    note: str = ""


@dataclass(frozen=True)
class Link:
    """A table cell naming a workflow: its id, and its page in the Temporal UI when there is one."""

    text: str
    url: str | None = None

    def __str__(self) -> str:
        return self.url or self.text


Cell = str | Link


@dataclass
class ScenarioResult:
    name: str
    header: list[str]
    rows: list[list[Cell]] = field(default_factory=list)
    metrics: list[Metric] = field(default_factory=list)
    failures: list[str] = field(default_factory=list)


def _silent(_: str) -> None:
    pass


@dataclass
class DemoContext:
    settings: Settings
    client: Client
    ui_url: str | None
    inbox: NotificationSink | None = None
    # What the scenario is doing now, for the live display: one short line per step.
    report: Callable[[str], None] = _silent

    def link(self, workflow_id: str) -> Link:
        if not self.ui_url:
            return Link(workflow_id)
        url = f"{self.ui_url}/namespaces/{self.client.namespace}/workflows/{workflow_id}"
        return Link(workflow_id, url)


@dataclass(frozen=True)
class Scenario:
    """One capability's part of the demo.

    Scenarios of the same ``phase`` run at the same time, ordered by ``order`` in the output; a
    later phase starts when every scenario of the earlier ones has ended (the notifications check
    counts what the others sent). ``metrics`` names the seed metric rows it measures, shown while
    it runs. ``policy_time`` is how much policy time (seconds) it plays; at the demo's time scale
    that, plus two minutes, is how long it may take before it counts as failed.
    """

    name: str
    run: Callable[[DemoContext], Awaitable[ScenarioResult]]
    metrics: tuple[str, ...] = ()
    order: int = 50
    phase: int = 0
    policy_time: float = 3600.0

    def time_limit(self, time_scale: float) -> float:
        return 120.0 + self.policy_time / time_scale
