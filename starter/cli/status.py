"""``selfheal status [--json] [--watch]``: the health document (M2.6) in the terminal, from the
same queries as the page. Exit 0 when all is up, 1 when something is down."""

import argparse
import asyncio
import sys
from typing import Any

from rich.console import Console, Group
from rich.live import Live
from rich.table import Table
from rich.text import Text

from dashboard.document import WINDOWS, HealthDocument, check_window
from dashboard.page import dur, pct
from dashboard.service import HealthService, LedgerUnavailableError
from selfheal.config import load_settings
from starter.cli.commands import add_command
from starter.cli.errors import UsageError
from starter.client import UnreachableError, connect

STATUS_STYLE = {"up": "green", "held": "yellow", "down": "bold red", "unknown": "dim"}
STATE_STYLE = {
    "blocked": "red",
    "stuck": "yellow",
    "escalated": "yellow",
    "failed": "red",
    "open": "red",
    "acknowledged": "yellow",
    "resolved": "green",
    "closed": "green",
}
RECENT = 10


def register(sub: argparse._SubParsersAction) -> None:
    status = add_command(sub, "status")
    status.add_argument("--window", default="24h", help=f"one of {', '.join(WINDOWS)}")
    status.add_argument("--json", action="store_true", help="print the health document as JSON")
    status.add_argument("--watch", action="store_true", help="keep showing it as it changes")
    status.add_argument("--every", type=float, default=2.0, help=argparse.SUPPRESS)
    status.set_defaults(handler=run_status)


def render(doc: HealthDocument) -> Group:
    head = Text.assemble(
        ("selfheal health", "bold"),
        f" · window {doc.window} · {doc.generated_at:%H:%M:%S} UTC · ",
        ("all up", "bold green") if doc.ok else (f"{len(doc.problems)} down", "bold red"),
    )
    agents = Table(box=None, pad_edge=False, header_style="bold")
    for column in ("agent", "status", "uptime", "error rate", "errors by kind", "current task"):
        agents.add_column(column, overflow="fold")
    for a in doc.agents:
        current = Text("idle", style="dim")
        if a.current:
            current = Text.assemble(
                (a.current.state, STATE_STYLE.get(a.current.state, "")), " ", a.current.title
            )
        kinds = ", ".join(f"{k} {n}" for k, n in sorted(a.errors_by_kind.items())) or "-"
        agents.add_row(
            a.name,
            Text(a.status, style=STATUS_STYLE.get(a.status, "")),
            pct(a.uptime),
            f"{pct(a.error_rate)} of {a.attempts}",
            kinds,
            current,
        )
    s = doc.seed
    seed = Table(box=None, pad_edge=False, header_style="bold")
    for column in ("seed metric", "measured", "target"):
        seed.add_column(column)
    r = s.retry_success
    seed.add_row("retry success", f"{pct(r.rate)} ({r.recovered}/{r.failed_once})", "> 80%")
    seed.add_row(
        "breaking commit → reverted",
        f"{dur(s.revert.p50_s)} median, max {dur(s.revert.max_s)} ({s.revert.count})",
        "< 2 min",
    )
    seed.add_row(
        "PR events → review", f"{pct(s.pr_coverage)} ({s.pr_reviews}/{s.pr_events})", "100%"
    )
    seed.add_row("CEO alerts per day", f"{s.ceo_alerts_per_day:.1f} ({s.ceo_alerts})", "< 1")
    seed.add_row(
        "repeats after learning",
        "—" if s.repeats_after_learning is None else str(s.repeats_after_learning),
        "≤ 2",
    )
    incidents = Table(box=None, pad_edge=False, header_style="bold")
    for column in ("incident", "task", "agent", "status", "step", "age / resolved in"):
        incidents.add_column(column, overflow="fold")
    for i in doc.incidents[:RECENT]:
        took = (
            dur(i.time_to_resolve_s) if i.time_to_resolve_s is not None else f"{dur(i.age_s)} old"
        )
        incidents.add_row(
            Text(i.kind, style=STATE_STYLE.get(i.kind, "")),
            i.title or i.task_id,
            i.agent or "",
            Text(i.status, style=STATE_STYLE.get(i.status, "")),
            i.step or "-",
            took,
        )
    w = doc.workers
    workers = Text(
        f"workers: {w.workflow_pollers} workflow / {w.activity_pollers} activity pollers on "
        f"{w.task_queue}" + (f" ({w.error})" if w.error else "")
    )
    parts: list[Any] = [head, agents, seed, workers]
    open_now = ", ".join(f"{k} {n}" for k, n in sorted(doc.open_incidents.items())) or "none"
    parts.append(Text(f"open incidents: {open_now}; the last {min(RECENT, len(doc.incidents))}:"))
    parts.append(incidents if doc.incidents else Text("  none", style="dim"))
    for problem in doc.problems:
        parts.append(Text(f"down: {problem}", style="bold red"))
    return Group(*parts)


async def _service(args: argparse.Namespace) -> HealthService:
    settings = load_settings(args.config)
    try:
        client = await connect()
    except UnreachableError as err:
        service = HealthService(settings, None)
        service.no_client_reason = str(err)
        return service
    return HealthService(settings, client)


async def run_status(args: argparse.Namespace) -> int:
    try:
        window = check_window(args.window)
    except ValueError as err:
        raise UsageError(str(err)) from None
    service = await _service(args)
    console = Console(highlight=False)
    try:
        doc = await service.document(window)
        if not args.watch:
            _print(console, doc, args.json)
            return 0 if doc.ok else 1
        return await _watch(service, window, console, args)
    except LedgerUnavailableError as err:
        print(f"selfheal: {err}", file=sys.stderr, flush=True)  # one line, never wrapped
        return 1


def _print(console: Console, doc: HealthDocument, as_json: bool) -> None:
    if as_json:
        print(doc.model_dump_json(indent=2), flush=True)
    else:
        console.print(render(doc))


async def _watch(
    service: HealthService, window: Any, console: Console, args: argparse.Namespace
) -> int:
    doc = await service.document(window)
    if console.is_terminal and not args.json:
        with Live(render(doc), console=console, auto_refresh=False) as live:
            while True:
                await asyncio.sleep(args.every)
                doc = await service.document(window)
                live.update(render(doc), refresh=True)
    marker = await service.marker()
    _print(console, doc, args.json)
    while True:  # not a terminal: print again only when something changed
        await asyncio.sleep(args.every)
        now = await service.marker()
        if now != marker:
            marker, doc = now, await service.document(window)
            _print(console, doc, args.json)
