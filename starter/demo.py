"""``selfheal demo``: every capability's scenario against a real Temporal server, then the seed's
success metrics as measured. Exit 0 only if every check held."""

import asyncio
import json
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

from temporalio.client import Client
from temporalio.worker import Worker

from selfheal.config import Settings
from selfheal.plugins import SelfHealing
from starter.scenarios.inbox import DemoInbox, demo_inbox


@dataclass
class Metric:
    name: str
    value: str
    target: str
    ok: bool


@dataclass
class ScenarioResult:
    name: str
    header: list[str]
    rows: list[list[str]] = field(default_factory=list)
    metrics: list[Metric] = field(default_factory=list)
    failures: list[str] = field(default_factory=list)


@dataclass
class DemoContext:
    settings: Settings
    client: Client
    ui_url: str | None
    inbox: DemoInbox | None = None

    def link(self, workflow_id: str) -> str:
        if not self.ui_url:
            return workflow_id
        return f"{self.ui_url}/namespaces/{self.client.namespace}/workflows/{workflow_id}"


Scenario = Callable[[DemoContext], Awaitable[ScenarioResult]]


def scenarios() -> list[Scenario]:
    from starter.scenarios import escalation, retry, review, rollback

    return [retry.run, escalation.run, review.run, rollback.run]


def table(header: list[str], rows: list[list[str]]) -> str:
    widths = [max(len(str(c)) for c in col) for col in zip(header, *rows, strict=False)]
    lines = ["  ".join(str(c).ljust(w) for c, w in zip(r, widths, strict=False)) for r in rows]
    head = "  ".join(h.ljust(w) for h, w in zip(header, widths, strict=False))
    return "\n".join([head, "  ".join("-" * w for w in widths), *lines])


async def run_scenarios(
    settings: Settings, client: Client, ui_url: str | None, as_json: bool = False
) -> int:
    async with demo_inbox() as inbox:
        return await _run(inbox.wire(settings), client, ui_url, inbox, as_json)


async def _run(
    settings: Settings, client: Client, ui_url: str | None, inbox: DemoInbox, as_json: bool
) -> int:
    ctx = DemoContext(settings=settings, client=client, ui_url=ui_url, inbox=inbox)
    print(
        f"selfheal demo: time scale {settings.time_scale:g} (1 policy minute = "
        f"{60 / settings.time_scale:g}s), task queue {settings.task_queue}",
        flush=True,
    )
    worker = Worker(client, task_queue=settings.task_queue, plugins=[SelfHealing(settings)])
    async with worker:
        results = list(await asyncio.gather(*(scenario(ctx) for scenario in scenarios())))
    ceo_alerts = len(inbox.to("/ceo"))
    results.append(ScenarioResult("notifications", ["channel", "notices", "last"], rows=[
        [path, str(len(inbox.to(path))), inbox.to(path)[-1].text[:90]]
        for path in sorted({n.path for n in inbox.notices})
    ], metrics=[Metric(
        "CEO channel alerts", f"{ceo_alerts} in this run", "< 1 per day", ceo_alerts == 0,
    )]))  # fmt: skip
    metrics: list[Metric] = []
    failures: list[str] = []
    for result in results:
        print(f"\n== {result.name}\n{table(result.header, result.rows)}")
        metrics += result.metrics
        failures += [f"{result.name}: {f}" for f in result.failures]
    for metric in metrics:
        if not metric.ok:
            failures.append(f"{metric.name} is {metric.value}, target {metric.target}")
    print("\n== seed success metrics, as measured")
    print(
        table(
            ["metric", "measured", "target", "check"],
            [[m.name, m.value, m.target, "ok" if m.ok else "FAILED"] for m in metrics],
        )
    )
    if as_json:
        print(json.dumps([m.__dict__ for m in metrics], indent=2))
    for failure in failures:
        print(f"check failed: {failure}")
    print("\nall checks held" if not failures else f"\n{len(failures)} check(s) failed")
    return 0 if not failures else 1
