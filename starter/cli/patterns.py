"""``selfheal patterns list|show ID|retire ID|analyze [--wait]``: the learnings (M2.5).

``list``, ``show`` and ``retire`` read and write the ledger (the learnings' truth); ``retire``
also tells the fingerprint's ``Pattern`` entity when Temporal is reachable. ``analyze`` starts
``PatternAnalysis`` now (``patterns-now-<n>``); with ``--wait`` it prints the report, and exits 2
with the first problem (a missing or read-only patterns directory, a file a person left with
malformed front matter, uncommitted edits) on one line.
"""

import argparse
import asyncio
import json
import sys
import time
from datetime import UTC, datetime

from temporalio.service import RPCError

from activities.ledger import Ledger
from activities.ledger.learnings import LearningStore, UnknownLearning
from selfheal.config import Settings, load_settings
from selfheal.learning import Learning, pattern_workflow_id
from selfheal.patterns import AnalysisInput, AnalysisReport, PatternCommand
from starter.cli.commands import add_command
from starter.cli.errors import UsageError
from starter.client import UnreachableError, connect
from workflows.pattern_analysis import PatternAnalysis

STATUSES = ("new", "published", "regressed", "retired", "merged")


def register(sub: argparse._SubParsersAction) -> None:
    patterns = add_command(sub, "patterns")
    cmds = patterns.add_subparsers(
        dest="patterns_command", required=True, parser_class=type(patterns)
    )
    listing = cmds.add_parser("list", help="the learnings, best score first")
    listing.add_argument("--status", choices=STATUSES, help="only learnings in this state")
    listing.add_argument("--json", action="store_true")
    listing.set_defaults(handler=patterns_list)

    for name, help_text, handler in (
        ("show", "one learning: its advice, hint, counts and uses", patterns_show),
        ("retire", "stop attaching a learning to dispatches", patterns_retire),
    ):
        cmd = cmds.add_parser(name, help=help_text)
        cmd.add_argument("id", help="learning id, fingerprint or slug")
        cmd.add_argument("--json", action="store_true")
        cmd.set_defaults(handler=handler)

    analyze = cmds.add_parser("analyze", help="run the weekly pattern analysis now")
    analyze.add_argument("--wait", action="store_true", help="wait and print its report")
    analyze.add_argument("--json", action="store_true")
    analyze.set_defaults(handler=patterns_analyze)


def _store(settings: Settings) -> LearningStore:
    return LearningStore(Ledger(settings.ledger_url))


def _get(store: LearningStore, key: str) -> Learning:
    if not key.strip():
        raise UsageError("a learning id must not be empty")
    try:
        return store.get(key)
    except UnknownLearning as err:
        raise UsageError(str(err)) from None


async def patterns_list(args: argparse.Namespace) -> int:
    settings = load_settings(args.config)
    store = _store(settings)
    items = await asyncio.to_thread(store.all, [args.status] if args.status else None)
    items.sort(key=lambda x: (x.status not in ("published", "regressed"), -x.score, x.id))
    if args.json:
        print(json.dumps([x.model_dump(mode="json") for x in items], indent=2))
        return 0
    if not items:
        print("no learnings yet (a fingerprint becomes one at its second occurrence)")
        return 0
    print(f"{'id':<24} {'status':<10} {'score':>5} {'seen':>5} {'after':>5}  template")
    for x in items:
        print(
            f"{x.id[:24]:<24} {x.status:<10} {x.score:>5} {x.occurrences:>5} "
            f"{x.repeats_after_publication:>5}  {x.template[:70]}"
        )
    return 0


async def patterns_show(args: argparse.Namespace) -> int:
    settings = load_settings(args.config)
    store = _store(settings)
    item = _get(store, args.id)
    uses = await asyncio.to_thread(store.uses, item.id)
    if args.json:
        body = item.model_dump(mode="json") | {"uses": [u.model_dump(mode="json") for u in uses]}
        print(json.dumps(body, indent=2))
        return 0
    advice = item.advice
    print(f"{item.id}  {item.status}  score {item.score}  ({item.kind})")
    print(f"  template     {item.template}")
    print(f"  fingerprint  {', '.join(item.all_prints())}")
    print(f"  file         {settings.patterns_dir / (item.slug + '.md')}")
    print(f"  hint ({item.hint_source})  {item.hint}")
    print(
        f"  advice       strategy {advice.strategy or '-'}, agent {advice.agent or '-'}"
        + (f", avoid {', '.join(advice.avoid)}" if advice.avoid else "")
    )
    scope = item.scope
    print(
        f"  scope        agents {scope.agents or 'all'}, repos {scope.repos or 'any'}, "
        f"labels {scope.labels or 'any'}, words {scope.words or 'any'}"
    )
    print(
        f"  counts       {item.occurrences} occurrence(s) in {item.tasks_seen} task(s) by "
        f"{', '.join(item.agents_seen) or '-'}; {item.repeats_after_publication} after "
        f"publication; {item.uses} use(s), {item.successes} succeeded, {item.failures} failed "
        "the same way"
    )
    for label, when in (
        ("first seen", item.first_seen),
        ("last seen", item.last_seen),
        ("published", item.published_at),
        ("retired", item.retired_at),
    ):
        if when:
            print(f"  {label:<12} {when:%Y-%m-%d %H:%M:%S} UTC")
    if item.merged_into:
        print(f"  merged into  {item.merged_into}")
    return 0


async def patterns_retire(args: argparse.Namespace) -> int:
    settings = load_settings(args.config)
    store = _store(settings)
    item = _get(store, args.id)
    if item.status == "retired":
        print(f"{item.id} is retired already", file=sys.stderr)
        return 0
    try:
        item = await asyncio.to_thread(store.retire, item.id, datetime.now(UTC))
    except UnknownLearning as err:
        raise UsageError(str(err)) from None
    told = await _tell_entity(item, "retire")
    if args.json:
        print(json.dumps({"id": item.id, "status": item.status, "entity_told": told}))
    else:
        print(f"retired {item.id}" + ("" if told else " (its Pattern entity is not running)"))
    return 0


async def _tell_entity(item: Learning, signal: str) -> bool:
    """Best effort: the ledger is the truth, and an entity that starts again reloads it."""
    try:
        client = await connect()
    except UnreachableError:
        return False
    told = False
    for fp in item.all_prints():
        try:
            await client.get_workflow_handle(pattern_workflow_id(fp)).signal(
                signal, PatternCommand(by="selfheal patterns", reason="by hand")
            )
            told = True
        except RPCError:
            continue
    return told


async def patterns_analyze(args: argparse.Namespace) -> int:
    settings = load_settings(args.config)
    client = await connect()
    workflow_id = f"patterns-now-{time.time_ns() // 1_000_000}"
    handle = await client.start_workflow(
        PatternAnalysis.run,
        AnalysisInput(policy=settings.learning.scaled(settings.time_scale)),
        id=workflow_id,
        task_queue=settings.task_queue,
        static_summary="pattern analysis started by hand",
    )
    if not args.wait:
        print(json.dumps({"workflow_id": handle.id}) if args.json else handle.id)
        return 0
    report = await handle.result()
    _print_report(report, args.json)
    if report.problems:
        extra = len(report.problems) - 1
        more = f" (+{extra} more in the digest)" if extra else ""
        raise UsageError(f"{report.problems[0]}{more}")
    return 0


def _print_report(report: AnalysisReport, as_json: bool) -> None:
    if as_json:
        print(report.model_dump_json(indent=2))
        return
    print(report.digest)
