"""The simulated week (M2.5): does the team stop repeating its mistakes?

One seeded week of a team's work — ``--per-day`` tasks a day (default 40) across SAM, ALEX and
LEO — is played twice on the same dev server, in the same process: once with learning on, once
with it off (``LearningPolicy.feedback``: the failures are still logged and the Pattern entities
still count and publish, but nothing reaches a dispatch). Each run has its own namespace
(``week-on``/``week-off``, so the two runs' ``pattern-<fingerprint>`` entities are apart), its
own ledger and worker, and the weekly ``selfheal-pattern-analysis`` Schedule, placed to fire on
the sixth simulated day.

The week (``--seed``): most tasks are clean; about a quarter fail their first attempt with the
fault mix of bench/retry_success.py (50 % transient, 20 % agent, 20 % task, 10 % permanent, its
model for what a retry fixes); one or two a day stall for 20-90 simulated minutes; one a day is
marked blocked by a person after its first failure; and ``--mistakes`` recurring mistakes
(``mistake:NAME``), each made by several agents on different days, in tasks about the mistake's
topic (a migration, the lockfile, ...). A mistake's retry fixes it by chance (``--fix-chance``,
one seeded draw per task and attempt, the same in both runs); a hint that holds the mistake's
published learning always does. A simulated person handles incidents: a blocked task is resolved
and a failed task's escalation acknowledged after a seeded delay, most within 45 simulated
minutes, some later (so a CEO alert can fire, as in a real week).

Played at ``--time-scale`` (default 3000: a day takes 29 s, the week 3.4 min per run). Printed:
per recurring mistake, its occurrences before and after its learning was published, in both runs;
the total attempts; per simulated day, the retry success rate, the CEO alerts and the repeats after
publication. The bar (DESIGN §7): with learning on no fingerprint recurs more than 2 times after
its publication, and learning on needs fewer attempts than learning off. Exit 0 only if it held.

    .venv/bin/python bench/week.py [--seed 7] [--per-day 40] [--time-scale 3000] [--mistakes 5]
"""

import argparse
import asyncio
import contextlib
import random
import shutil
import sys
import tempfile
import time
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

import sqlalchemy as sa  # noqa: E402
from retry_success import Case, script  # noqa: E402
from temporalio.api.operatorservice.v1 import AddSearchAttributesRequest  # noqa: E402
from temporalio.client import (  # noqa: E402
    Client,
    ScheduleActionExecutionStartWorkflow,
    WorkflowHandle,
)
from temporalio.service import RPCError  # noqa: E402
from temporalio.worker import Worker  # noqa: E402

from activities.ledger import Ledger  # noqa: E402
from activities.ledger.schema import (  # noqa: E402
    attempts,
    failures,
    incidents,
    learnings,
    notifications,
    tasks,
)
from selfheal import search_attributes as sas  # noqa: E402
from selfheal.config import Settings  # noqa: E402
from selfheal.learning import LearningPolicy  # noqa: E402
from selfheal.models import AdapterSpec  # noqa: E402
from selfheal.plugins import SelfHealing  # noqa: E402
from selfheal.sim import mistake_fingerprint  # noqa: E402
from starter.client import build_task_input, connect, start_task  # noqa: E402
from starter.devserver import DevServer, free_port  # noqa: E402
from starter.pattern_schedule import pattern_analysis_schedule  # noqa: E402
from starter.schedules import apply_schedule  # noqa: E402

DAY = 86400.0
AGENTS = ("SAM", "ALEX", "LEO")
FAULT_MIX = (("transient", 0.5), ("agent", 0.2), ("task", 0.2), ("permanent", 0.1))
# name, the topic word every task about it has, and that topic's other words
MISTAKES = [
    ("missing-migration", "migration", ["orders", "users", "invoices", "schema", "column"]),
    ("stale-lockfile", "lockfile", ["dependencies", "upgrade", "package", "vendored", "pin"]),
    ("wrong-env-var", "env", ["config", "staging", "secrets", "deploy", "settings"]),
    ("unawaited-promise", "async", ["handler", "queue", "worker", "callback", "fetch"]),
    ("untyped-any", "typing", ["models", "serializer", "api", "schemas", "types"]),
    ("broken-fixture", "fixture", ["tests", "factory", "seed", "snapshot", "mocks"]),
]
VERBS = ["rework", "rename", "extend", "clean", "speed up", "split", "document", "harden"]
AREAS = ["login", "checkout", "search", "dashboard", "profile", "cart", "emails", "billing",
         "onboarding", "reports", "sitemap", "navbar", "avatar", "uploads", "webhooks"]  # fmt: skip
ANALYSIS_AT = 5.5 * DAY  # the weekly analysis fires on the sixth day


@dataclass
class Planned:
    id: str
    day: int
    at: float  # simulated seconds from the start of the week
    agent: str
    title: str
    script: str
    kind: str  # clean, fault, stall, block, mistake
    mistake: str | None = None


@dataclass
class RunResult:
    label: str
    namespace: str
    took: float
    attempts: int
    before: dict[str, int] = field(default_factory=dict)
    after: dict[str, int] = field(default_factory=dict)
    published_day: dict[str, float | None] = field(default_factory=dict)
    retry_success: dict[int, tuple[int, int]] = field(default_factory=dict)
    ceo: Counter[int] = field(default_factory=Counter)
    ceo_by_kind: Counter[str] = field(default_factory=Counter)
    repeats: Counter[int] = field(default_factory=Counter)
    analyses: list[str] = field(default_factory=list)
    unfinished: Counter[str] = field(default_factory=Counter)
    regressions: int = 0
    # every learning of a kind fed back to dispatches (task, agent): repeats after publication
    fed_back: dict[str, int] = field(default_factory=dict)


# -- the week -------------------------------------------------------------------------------------


def plan_week(
    seed: int, per_day: int, days: int, mistakes: int, fix_chance: float
) -> list[Planned]:
    rng = random.Random(seed)
    plan: list[Planned] = []
    by_day: dict[int, list[tuple[str, str]]] = defaultdict(list)
    for name, topic, words in MISTAKES[:mistakes]:
        n = rng.randint(4, min(6, days))
        for day in sorted(rng.sample(range(days), n)):
            by_day[day].append((name, f"{rng.choice(VERBS)} {rng.choice(words)} {topic}"))
    for day in range(days):
        slots = [rng.uniform(0.02, 0.85) * DAY for _ in range(per_day)]
        slots.sort()
        kinds: list[str] = ["mistake"] * len(by_day[day])
        kinds += ["stall"] * rng.randint(1, 2) + ["block"]
        kinds += ["fault"] * round(per_day * 0.25)
        kinds += ["clean"] * max(0, per_day - len(kinds))
        kinds = kinds[:per_day]
        rng.shuffle(kinds)
        mistakes_today = iter(by_day[day])
        for i, (kind, at) in enumerate(zip(kinds, slots, strict=True)):
            agent = rng.choice(AGENTS)
            title = f"{rng.choice(VERBS)} the {rng.choice(AREAS)} {rng.choice(AREAS)}"
            mistake = None
            if kind == "mistake":
                mistake, title = next(mistakes_today)
                fixes = ["ok" if rng.random() < fix_chance else f"mistake:{mistake}"
                         for _ in range(3)]  # fmt: skip
                run = ",".join([f"mistake:{mistake}", *fixes])
            elif kind == "fault":
                first = rng.choices([k for k, _ in FAULT_MIX], [w for _, w in FAULT_MIX])[0]
                run = script(Case(first, [rng.random() for _ in range(3)]), 0.15, ladder=True)
            elif kind == "stall":
                run = f"stall-min:{rng.uniform(20, 90):.0f},ok"
            elif kind == "block":
                run = "task,task,ok"
            else:
                run = "ok"
            plan.append(Planned(f"d{day}-{i:02d}", day, day * DAY + at, agent, title, run, kind,
                                mistake))  # fmt: skip
    return sorted(plan, key=lambda p: p.at)


def sim_script(planned: Planned, scale: float) -> str:
    """``stall-min:M`` (simulated minutes) as the adapter's ``stall:SECONDS`` (real seconds)."""
    tokens = []
    for token in planned.script.split(","):
        if token.startswith("stall-min:"):
            token = f"stall:{float(token.split(':')[1]) * 60 / scale:.3f}"
        tokens.append(token)
    return ",".join(tokens)


def person_delay(key: str, seed: int) -> float:
    """How long (simulated seconds) the person takes to handle an incident: mostly within 45
    minutes, one in six much later (past the CEO step)."""
    draw = random.Random(f"{seed}:{key}")
    if draw.random() < 1 / 6:
        return draw.uniform(70, 150) * 60
    return draw.uniform(5, 45) * 60


# -- one run --------------------------------------------------------------------------------------


class Person:
    """Handles the incidents of one run from its ledger: marks the day's block, resolves blocked
    tasks, acknowledges failed tasks' and regressions' escalations, after ``person_delay``."""

    def __init__(self, client: Client, ledger: Ledger, plan: list[Planned], seed: int,
                 scale: float) -> None:  # fmt: skip
        self.client, self.ledger, self.seed, self.scale = client, ledger, seed, scale
        self.blocks = {f"task-{p.id}" for p in plan if p.kind == "block"}
        self.blocked: set[str] = set()
        self.handled: set[str] = set()
        self.due: dict[str, tuple[float, str, str, str]] = {}

    async def run(self) -> None:
        while True:
            await asyncio.sleep(0.05)
            with contextlib.suppress(Exception):
                await self._look()

    async def _look(self) -> None:
        now = time.monotonic()
        if self.blocks - self.blocked:
            with self.ledger.engine.connect() as conn:
                failed = conn.execute(
                    sa.select(attempts.c.workflow_id).where(
                        attempts.c.workflow_id.in_(sorted(self.blocks - self.blocked)),
                        attempts.c.outcome == "failed",
                    )
                ).scalars()
                for workflow_id in set(failed):
                    self.blocked.add(workflow_id)
                    await self._signal(workflow_id, "mark_blocked",
                                       {"reason": "waiting for the staging database"})  # fmt: skip
        with self.ledger.engine.connect() as conn:
            rows = conn.execute(
                sa.select(incidents.c.key, incidents.c.kind, incidents.c.subject)
                .where(incidents.c.status == "open")
            ).all()  # fmt: skip
        for key, kind, subject in rows:
            if key in self.handled or key in self.due or kind == "stuck":
                continue  # a stall ends on its own
            wait = person_delay(key, self.seed) / self.scale
            self.due[key] = (now + wait, kind, subject, key)
        for key, (at, kind, subject, _) in list(self.due.items()):
            if at > now:
                continue
            del self.due[key]
            self.handled.add(key)
            if kind == "blocked":
                await self._signal(subject, "resolve", {"note": "the person unblocked it"})
            else:
                n = key.rsplit("#", 1)[1]
                task = subject.removeprefix("task-")
                await self._signal(f"escalation-{task}-{n}", "acknowledge", {"by": "person"})

    async def _signal(self, workflow_id: str, name: str, body: dict[str, str]) -> None:
        with contextlib.suppress(RPCError):
            await self.client.get_workflow_handle(workflow_id).signal(name, body)


async def settle(handles: list[WorkflowHandle], deadline: float) -> Counter[str]:
    """Wait for the week's tasks; the states of those still running at ``deadline``."""
    futures = {asyncio.ensure_future(_result(h)): h for h in handles}
    pending = set(futures)
    while pending and time.monotonic() < deadline:
        _, pending = await asyncio.wait(pending, timeout=1.0)
    left: Counter[str] = Counter()
    for f in pending:
        f.cancel()
        with contextlib.suppress(Exception):
            status = await futures[f].query("status")
            left[status["state"]] += 1
    return left


async def _result(handle: WorkflowHandle) -> None:
    with contextlib.suppress(Exception):  # a failed task is a Failed execution: still done
        await handle.result()


async def play(
    address: str, namespace: str, label: str, learning_on: bool, plan: list[Planned],
    args: argparse.Namespace, tmp: Path,
) -> RunResult:  # fmt: skip
    scale = args.time_scale
    settings = Settings(
        data_dir=tmp / namespace,
        task_queue="week",
        time_scale=scale,
        patterns_dir=tmp / namespace / "patterns",
        learning=LearningPolicy(feedback=learning_on),
    )
    settings.patterns_dir.mkdir(parents=True)
    client = await connect(target_host=address, namespace=namespace)
    plugin = SelfHealing(settings)
    ledger = plugin.ledger
    person = Person(client, ledger, plan, args.seed, scale)
    handles: list[WorkflowHandle] = []
    began = time.monotonic()
    start = datetime.now(UTC)
    every = timedelta(days=7) / scale
    fire = start + timedelta(seconds=ANALYSIS_AT / scale)
    offset = timedelta(seconds=fire.timestamp() % every.total_seconds())
    schedule_id, schedule = pattern_analysis_schedule(settings, every=every, offset=offset)
    async with Worker(client, task_queue=settings.task_queue, plugins=[plugin]):
        await apply_schedule(client, schedule_id, schedule)
        watcher = asyncio.create_task(person.run())
        try:
            day = -1
            for p in plan:
                wait = began + p.at / scale - time.monotonic()
                if wait > 0:
                    await asyncio.sleep(wait)
                if p.day != day:
                    day = p.day
                    took = time.monotonic() - began
                    print(f"  {label}: day {day + 1} ({took:.0f} s)", flush=True)
                input = build_task_input(
                    settings, agent=p.agent, title=p.title, task_id=p.id,
                    adapter=AdapterSpec(kind="sim", sim=sim_script(p, scale)),
                    context={"repo": "shop"},
                )  # fmt: skip
                handles.append(await start_task(client, settings, input))
            week_end = began + args.days * DAY / scale
            unfinished = await settle(handles, max(week_end, time.monotonic()) + 60)
            fired = await _analyses(client, schedule_id, began + ANALYSIS_AT / scale + 30)
        finally:
            watcher.cancel()
            with contextlib.suppress(RPCError):
                await client.get_schedule_handle(schedule_id).delete()
    result = measure(label, namespace, ledger, plan, start, scale)
    result.took, result.unfinished, result.analyses = time.monotonic() - began, unfinished, fired
    return result


async def _analyses(client: Client, schedule_id: str, until: float) -> list[str]:
    """The PatternAnalysis runs the schedule started (waits for the first, up to ``until``)."""
    handle = client.get_schedule_handle(schedule_id)
    while True:
        recent = (await handle.describe()).info.recent_actions
        if recent or time.monotonic() > until:
            break
        await asyncio.sleep(0.5)
    runs = [
        a.action.workflow_id
        for a in recent
        if isinstance(a.action, ScheduleActionExecutionStartWorkflow)
    ]
    for workflow_id in runs:
        with contextlib.suppress(Exception):
            await asyncio.wait_for(client.get_workflow_handle(workflow_id).result(), 60)
    return runs


def measure(
    label: str, namespace: str, ledger: Ledger, plan: list[Planned], start: datetime,
    scale: float,
) -> RunResult:  # fmt: skip
    def day_of(at: datetime) -> int:
        if at.tzinfo is None:
            at = at.replace(tzinfo=UTC)
        return int((at - start).total_seconds() * scale // DAY)

    result = RunResult(label=label, namespace=namespace, took=0.0, attempts=0)
    ids = {f"task-{p.id}": p for p in plan}
    with ledger.engine.connect() as conn:
        rows = conn.execute(sa.select(attempts.c.workflow_id, attempts.c.outcome)).all()
        result.attempts = sum(1 for w, _ in rows if w in ids)
        failed_once = {w for w, o in rows if o == "failed" and w in ids}
        states = dict(conn.execute(sa.select(tasks.c.workflow_id, tasks.c.state)).all())
        for day in sorted({p.day for p in plan}):
            tried = [w for w in failed_once if ids[w].day == day]
            recovered = sum(1 for w in tried if states.get(w) == "succeeded")
            result.retry_success[day] = (recovered, len(tried))
        kinds = {}
        stalls = {f"task-{p.id}" for p in plan if p.kind == "stall"}
        for key, kind, subject in conn.execute(
            sa.select(incidents.c.key, incidents.c.kind, incidents.c.subject)
        ).all():
            if kind == "stuck" and subject not in stalls:
                kind = "stuck (not a planned stall)"
            kinds[key] = kind
        for at, key in conn.execute(
            sa.select(notifications.c.at, notifications.c.incident_key).where(
                notifications.c.target == "ceo"
            )
        ).all():
            result.ceo[day_of(at)] += 1
            result.ceo_by_kind[kinds.get(key, "?")] += 1
        for name in sorted({p.mistake for p in plan if p.mistake}):
            fp = mistake_fingerprint(name)
            published = conn.execute(
                sa.select(learnings.c.published_at).where(learnings.c.fingerprint == fp)
            ).scalar()
            times = [t if t.tzinfo else t.replace(tzinfo=UTC) for t in conn.execute(
                sa.select(failures.c.at).where(failures.c.fingerprint == fp)
            ).scalars()]  # fmt: skip
            if published is not None and published.tzinfo is None:
                published = published.replace(tzinfo=UTC)
            after = [t for t in times if published is not None and t > published]
            result.before[name] = len(times) - len(after)
            result.after[name] = len(after)
            for t in after:
                result.repeats[day_of(t)] += 1
            result.published_day[name] = (
                (published - start).total_seconds() * scale / DAY if published else None
            )
        feedback = LearningPolicy().feedback_kinds
        for fp, published in conn.execute(
            sa.select(learnings.c.fingerprint, learnings.c.published_at).where(
                learnings.c.kind.in_(feedback), learnings.c.published_at.is_not(None)
            )
        ).all():
            published = published if published.tzinfo else published.replace(tzinfo=UTC)
            result.fed_back[fp] = conn.execute(
                sa.select(sa.func.count()).where(
                    failures.c.fingerprint == fp, failures.c.at > published
                )
            ).scalar_one()
        result.regressions = conn.execute(
            sa.select(sa.func.count()).select_from(incidents).where(incidents.c.kind == "regressed")
        ).scalar_one()
    return result


# -- the server and the report --------------------------------------------------------------------


class WeekServer(DevServer):
    """The dev server with the two runs' namespaces."""

    NAMESPACES = ("week-on", "week-off")

    def command(self) -> list[str]:
        cmd = super().command()
        for namespace in self.NAMESPACES:
            cmd += ["--namespace", namespace]
        return cmd


async def register_search_attributes(address: str) -> None:
    client = await connect(target_host=address, namespace="default")
    for namespace in WeekServer.NAMESPACES:
        with contextlib.suppress(RPCError):  # already there
            await client.operator_service.add_search_attributes(
                AddSearchAttributesRequest(
                    namespace=namespace,
                    search_attributes={k.name: k.indexed_value_type for k in sas.ALL},  # type: ignore[misc]
                )
            )


def report(on: RunResult, off: RunResult, plan: list[Planned], args: argparse.Namespace) -> bool:
    day_s = DAY / args.time_scale
    print(
        f"simulated week: seed {args.seed}, {args.days} days x {args.per_day} tasks across "
        f"{'/'.join(AGENTS)}, {sum(1 for p in plan if p.mistake)} tasks with "
        f"{args.mistakes} recurring mistakes, time scale {args.time_scale:g} "
        f"(a day = {day_s:.1f} s); learning on {on.took:.0f} s, off {off.took:.0f} s"
    )
    for r in (on, off):
        print(f"  weekly analysis ({r.label}): {', '.join(r.analyses) or 'DID NOT FIRE'}")
    print("\n  recurring mistake      published (day)   on: before/after   off: before/after")
    for name in sorted(on.before):
        day = on.published_day.get(name)
        print(
            f"  {name:<22} {'-' if day is None else f'{day:.2f}':>15}   "
            f"{on.before[name]:>6} / {on.after[name]:<6}   {off.before[name]:>6} / "
            f"{off.after[name]:<6}"
        )
    worst_on = max(on.fed_back.values(), default=0)
    worst_off = max(off.fed_back.values(), default=0)
    print(
        f"  learnings fed back to dispatches (task/agent kinds): on {len(on.fed_back)}, off "
        f"{len(off.fed_back)}; most repeats of one fingerprint after its publication: "
        f"on {worst_on}, off {worst_off}"
    )
    print(f"  total attempts: on {on.attempts}, off {off.attempts}")
    print(f"  regression incidents: on {on.regressions}, off {off.regressions}")
    for r in (on, off):
        why = ", ".join(f"{n} {k}" for k, n in sorted(r.ceo_by_kind.items())) or "none"
        print(f"  CEO alerts by incident ({r.label}): {why}")
    for r in (on, off):
        if r.unfinished:
            states = ", ".join(f"{n} {s}" for s, n in sorted(r.unfinished.items()))
            print(f"  tasks still open at the end ({r.label}): {states}")
    print("\n  day   retry success on / off          CEO alerts on / off   repeats on / off")
    for day in range(args.days):
        cells = []
        for r in (on, off):
            ok, n = r.retry_success.get(day, (0, 0))
            cells.append(f"{ok / n:6.1%} ({ok:>2}/{n:<2})" if n else "     - (0)   ")
        print(
            f"  {day + 1:<5} {cells[0]} / {cells[1]}   {on.ceo[day]:>6} / {off.ceo[day]:<6}"
            f"       {on.repeats[day]:>4} / {off.repeats[day]:<4}"
        )
    held_repeats = worst_on <= 2
    held_attempts = on.attempts < off.attempts
    print(
        f"\n  bar: no fingerprint recurs > 2 times after publication with learning on: "
        f"{'PASS' if held_repeats else 'FAIL'} ({worst_on}); learning on needs fewer attempts: "
        f"{'PASS' if held_attempts else 'FAIL'} ({on.attempts} < {off.attempts})"
    )
    return held_repeats and held_attempts and bool(on.analyses)


async def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--per-day", type=int, default=40)
    parser.add_argument("--days", type=int, default=7)
    parser.add_argument("--mistakes", type=int, default=5)
    parser.add_argument("--fix-chance", type=float, default=0.35,
                        help="chance a retry fixes a mistake without its learning")  # fmt: skip
    parser.add_argument("--time-scale", type=float, default=3000.0)
    args = parser.parse_args()
    if not (4 <= args.days <= 7 and args.per_day >= 5 and 1 <= args.mistakes <= len(MISTAKES)):
        parser.error(f"4 <= --days <= 7, --per-day >= 5, 1 <= --mistakes <= {len(MISTAKES)}")
    if args.time_scale <= 0 or not 0 <= args.fix_chance <= 1:
        parser.error("--time-scale > 0 and 0 <= --fix-chance <= 1")
    plan = plan_week(args.seed, args.per_day, args.days, args.mistakes, args.fix_chance)
    tmp = Path(tempfile.mkdtemp(prefix="selfheal-week-"))
    try:
        async with WeekServer(tmp / "temporal", free_port(), free_port()) as server:
            await register_search_attributes(server.address)
            on = await play(server.address, "week-on", "learning on", True, plan, args, tmp)
            off = await play(server.address, "week-off", "learning off", False, plan, args, tmp)
        held = report(on, off, plan, args)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return 0 if held else 1


if __name__ == "__main__":
    raise SystemExit(asyncio.run(main()))
