"""``selfheal demo``: every capability's scenario against a real Temporal server, with progress as
it runs, then the seed's success metrics as measured. Exit 0 only if every check held.

The scenarios are found, not listed (``starter.demo.scenarios.discover``): a new one is a module."""

import asyncio
import json
import logging
import sys
from dataclasses import asdict, replace
from typing import TextIO

from rich.console import Console
from rich.table import Table
from rich.text import Text
from temporalio.client import Client
from temporalio.worker import Worker

from selfheal.config import Settings
from selfheal.plugins import SelfHealing
from starter.demo.progress import Progress, progress_for
from starter.demo.scenario import Cell, DemoContext, Link, Metric, Scenario, ScenarioResult
from starter.demo.scenarios import discover
from starter.testing import notification_sink

log = logging.getLogger(__name__)


def table(header: list[str], rows: list[list[Cell]]) -> str:
    """A plain-text table (no colours, no box drawing): for logs and pipes."""
    cells = [[str(c) for c in row] for row in rows]
    widths = [max(len(c) for c in col) for col in zip(header, *cells, strict=False)]
    lines = ["  ".join(c.ljust(w) for c, w in zip(r, widths, strict=False)).rstrip() for r in cells]
    head = "  ".join(h.ljust(w) for h, w in zip(header, widths, strict=False)).rstrip()
    return "\n".join([head, "  ".join("-" * w for w in widths), *lines])


async def run_scenarios(
    settings: Settings,
    client: Client,
    ui_url: str | None,
    as_json: bool = False,
    out: TextIO | None = None,
    scenarios: list[Scenario] | None = None,
) -> int:
    """Run ``scenarios`` (default: every one found) with a worker of their own; print the report
    to ``out``; 0 if every check held, else 1."""
    out = out or sys.stdout
    scenarios = discover() if scenarios is None else scenarios
    print(
        f"selfheal demo: {len(scenarios)} scenarios, time scale {settings.time_scale:g} "
        f"(1 policy minute = {60 / settings.time_scale:g}s), task queue {settings.task_queue}",
        file=out,
        flush=True,
    )
    async with notification_sink() as inbox:
        ctx = DemoContext(settings=inbox.wire(settings), client=client, ui_url=ui_url, inbox=inbox)
        worker = Worker(client, task_queue=settings.task_queue, plugins=[SelfHealing(ctx.settings)])
        async with worker:
            with progress_for(out) as progress:
                results = await _run_all(scenarios, ctx, progress)
    return report(results, out, as_json)


async def _run_all(
    scenarios: list[Scenario], ctx: DemoContext, progress: Progress
) -> list[ScenarioResult]:
    results: list[ScenarioResult] = []
    for phase in sorted({s.phase for s in scenarios}):
        group = [s for s in scenarios if s.phase == phase]
        results += await asyncio.gather(*(_run_one(s, ctx, progress) for s in group))
    return results


async def _run_one(scenario: Scenario, ctx: DemoContext, progress: Progress) -> ScenarioResult:
    name = scenario.name
    progress.start(name, f"measures {', '.join(scenario.metrics)}" if scenario.metrics else "")
    scoped = replace(ctx, report=lambda note: progress.update(name, note))
    limit = scenario.time_limit(ctx.settings.time_scale)
    try:
        async with asyncio.timeout(limit):
            result = await scenario.run(scoped)
    except TimeoutError:
        result = ScenarioResult(name, [], failures=[f"did not finish within {limit:.0f}s"])
    except Exception as err:  # one broken scenario is a failed check, not a crashed demo
        log.exception("scenario %s raised", name)
        first = str(err).splitlines()[0] if str(err) else ""
        result = ScenarioResult(name, [], failures=[f"raised {type(err).__name__}: {first}"])
    result.name = name
    measured = {m.name for m in result.metrics}
    for missing in (m for m in scenario.metrics if m not in measured):
        result.metrics.append(Metric(missing, "not measured", "-", False))
    ok = not result.failures and all(m.ok for m in result.metrics)
    summary = "; ".join(f"{m.name}: {m.value}" for m in result.metrics)
    progress.finish(name, ok, summary if ok else "; ".join(result.failures) or summary)
    return result


def report(results: list[ScenarioResult], out: TextIO, as_json: bool = False) -> int:
    metrics = [m for r in results for m in r.metrics]
    failures = [f"{r.name}: {f}" for r in results for f in r.failures]
    failures += [f"{m.name} is {m.value}, target {m.target}" for m in metrics if not m.ok]
    metric_rows: list[list[Cell]] = [
        [m.name, m.value, m.target, "ok" if m.ok else "FAILED"] for m in metrics
    ]
    sections = [(r.name, r.header, r.rows) for r in results if r.header]
    sections.append(("seed success metrics, as measured", ["metric", "measured", "target",
                                                            "check"], metric_rows))  # fmt: skip
    notes = [f"{m.name} {m.note}" for m in metrics if m.note]
    verdict = "all checks held" if not failures else f"{len(failures)} check(s) failed"
    if out.isatty():
        _rich_report(Console(file=out), sections, notes, failures, verdict)
    else:
        for title, header, rows in sections:
            print(f"\n== {title}\n{table(header, rows)}", file=out)
        for note in notes:
            print(f"\n{note}", file=out)
        for failure in failures:
            print(f"check failed: {failure}", file=out)
        print(f"\n{verdict}", file=out, flush=True)
    if as_json:
        print(json.dumps([asdict(m) for m in metrics], indent=2), file=out, flush=True)
    return 0 if not failures else 1


def _rich_report(
    console: Console,
    sections: list[tuple[str, list[str], list[list[Cell]]]],
    notes: list[str],
    failures: list[str],
    verdict: str,
) -> None:
    for title, header, rows in sections:
        grid = Table(title=title, title_justify="left", title_style="bold", header_style="dim")
        for name in header:
            grid.add_column(name, overflow="fold")
        for row in rows:
            grid.add_row(*(_rich_cell(c) for c in row))
        console.print()
        console.print(grid)
    for note in notes:
        console.print()
        console.print(note, style="dim", markup=False, highlight=False)
    for failure in failures:
        console.print(f"check failed: {failure}", style="red", markup=False, highlight=False)
    console.print()
    console.print(verdict, style="bold green" if not failures else "bold red")


def _rich_cell(cell: Cell) -> Text:
    if isinstance(cell, Link):
        return Text(cell.text, style=f"link {cell.url}" if cell.url else "")
    style = {"ok": "green", "FAILED": "bold red"}.get(cell, "")
    return Text(cell, style=style)
