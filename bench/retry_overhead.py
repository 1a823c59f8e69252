"""Retry overhead benchmark (M2.1): the success path of AgentTask vs bare Temporal workflows.

N sim tasks (script ``ok``) that succeed on the first attempt, run three ways on one worker (the
real ``SelfHealing`` worker; same task queue, same slots), one dev server, in alternating rounds
(the order reverses each round) after a warm-up round, so a noisy machine hits all alike:

- ``AgentTask``: search attributes, versioning, supervision (the no-progress watch), the
  learnings lookup and the ledger write of the attempt.
- ``bare, same calls``: DESIGN §7's baseline, a bare workflow defined here that makes the same
  activity calls as AgentTask's success path and nothing else: the learnings lookup (local), one
  ``agent.run`` with the same ``AgentRunInput``, timeouts and retry policy, the ledger write
  (local). The ratio against it is what selfheal's orchestration costs.
- ``bare agent.run``: a stricter reference, one ``agent.run`` call alone (what a team would run
  with no ledger and no learnings at all).

Prints each throughput (tasks/s, from the first start to the last result of each round, summed
over the rounds), the ratios, and history events per task for each (from a sample of histories),
with the event types AgentTask adds. The bars (against the same-calls baseline): ratio ≥ 0.7 and
events ≤ 2x. Exit 0 only if both held.

    .venv/bin/python bench/retry_overhead.py [--n 400] [--rounds 8]
"""

import argparse
import asyncio
import compileall
import shutil
import sys
import tempfile
import time
import uuid
from collections import Counter
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from temporalio.api.enums.v1 import EventType
from temporalio.client import Client, WorkflowHandle
from temporalio.worker import Worker

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.bare_inputs import SameCallsInput  # noqa: E402
from bench.bare_workflows import BareAgentRun, BareSameCalls  # noqa: E402
from selfheal.config import Settings  # noqa: E402
from selfheal.models import AdapterSpec, AgentRunInput, AgentRunResult, TaskInput  # noqa: E402
from selfheal.patterns import hints_request  # noqa: E402
from selfheal.plugins import SelfHealing  # noqa: E402
from starter.client import build_task_input, connect, start_task, task_outcome  # noqa: E402
from starter.devserver import DevServer, free_port  # noqa: E402


def bare_input(task_input) -> AgentRunInput:
    """The AgentRunInput AgentTask sends for attempt 1 of ``task_input``."""
    return AgentRunInput(
        workflow_id=f"bare-{task_input.id}",
        task_id=task_input.id,
        title=task_input.title,
        description=task_input.description,
        agent=task_input.agent,
        attempt=1,
        strategy="initial",
        hints=task_input.hints,
        context=task_input.context,
        adapter=task_input.adapter,
        timeout=task_input.retry.attempt_timeout,
        progress_interval=min(60.0, max(0.5, task_input.stuck.no_progress / 20)),
    )


def same_calls_input(task_input: TaskInput) -> SameCallsInput:
    return SameCallsInput(
        run=bare_input(task_input).model_copy(update={"workflow_id": f"same-{task_input.id}"}),
        hints=hints_request(task_input),
        title=task_input.title,
    )


def sim_ok_inputs(settings: Settings, n: int, tag: str) -> list[TaskInput]:
    """The same N first-attempt-succeeds tasks, for AgentTask and the bare workflow alike."""
    return [
        build_task_input(
            settings,
            agent="SAM",
            title=f"bench task {i}",
            adapter=AdapterSpec(kind="sim", sim="ok"),
            task_id=f"{tag}-{i}",
        )
        for i in range(n)
    ]


async def run_agent_tasks(
    client: Client, settings: Settings, n: int, tag: str
) -> tuple[float, list[str]]:
    inputs = sim_ok_inputs(settings, n, tag)
    began = time.perf_counter()
    handles = await asyncio.gather(*(start_task(client, settings, i) for i in inputs))
    results = await asyncio.gather(*(task_outcome(h) for h in handles))
    took = time.perf_counter() - began
    bad = [r.state for r in results if r.state != "succeeded" or len(r.attempts) != 1]
    if bad:
        raise SystemExit(f"retry_overhead: {len(bad)} AgentTask runs did not succeed at once")
    return took, [h.id for h in handles]


async def run_bare(
    client: Client, settings: Settings, n: int, tag: str, same_calls: bool
) -> tuple[float, list[str]]:
    tasks = sim_ok_inputs(settings, n, tag)
    queue = settings.task_queue
    began = time.perf_counter()
    handles: Sequence[WorkflowHandle[Any, AgentRunResult]]
    if same_calls:
        handles = await asyncio.gather(
            *(
                client.start_workflow(BareSameCalls.run, i, id=i.run.workflow_id, task_queue=queue)
                for i in map(same_calls_input, tasks)
            )
        )
    else:
        handles = await asyncio.gather(
            *(
                client.start_workflow(BareAgentRun.run, i, id=i.workflow_id, task_queue=queue)
                for i in map(bare_input, tasks)
            )
        )
    results = await asyncio.gather(*(h.result() for h in handles))
    took = time.perf_counter() - began
    if any(r.outcome != "succeeded" for r in results):
        raise SystemExit("retry_overhead: a bare run did not succeed")
    return took, [h.id for h in handles]


async def history_events(client: Client, ids: list[str]) -> tuple[float, Counter[str]]:
    """Mean events per history over ``ids`` and the event types of the first one."""
    counts: list[int] = []
    types: Counter[str] = Counter()
    for n, wid in enumerate(ids):
        history = await client.get_workflow_handle(wid).fetch_history()
        counts.append(len(history.events))
        if n == 0:
            types = Counter(
                EventType.Name(e.event_type).removeprefix("EVENT_TYPE_") for e in history.events
            )
    return sum(counts) / len(counts), types


KINDS = ("AgentTask", "bare, same calls", "bare agent.run")


async def run_kind(client: Client, settings: Settings, kind: str, n: int, tag: str):
    if kind == "AgentTask":
        return await run_agent_tasks(client, settings, n, tag)
    return await run_bare(client, settings, n, tag, same_calls=kind == "bare, same calls")


def compile_bytecode() -> None:
    """Loaded as an installed package is (pip writes its bytecode), whatever PYTHONDONTWRITEBYTECODE
    says: the workflow sandbox re-imports a workflow's module for every run, and without bytecode
    each run would compile the module's source again (``make`` does the same)."""
    for package in ("selfheal", "workflows", "activities", "starter", "dashboard", "bench"):
        compileall.compile_dir(ROOT / package, quiet=1)


async def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=400, help="tasks of each kind (default 400)")
    parser.add_argument("--rounds", type=int, default=8, help="alternating rounds (default 8)")
    parser.add_argument("--histories", type=int, default=5, help="histories sampled per kind")
    args = parser.parse_args()
    if args.n < args.rounds or args.rounds < 1:
        parser.error("--n must be at least --rounds, and --rounds at least 1")

    compile_bytecode()
    tmp = Path(tempfile.mkdtemp(prefix="selfheal-bench-overhead-"))
    settings = Settings(data_dir=tmp / "data", task_queue=f"bench-overhead-{uuid.uuid4().hex[:6]}")
    per_round = [args.n // args.rounds + (r < args.n % args.rounds) for r in range(args.rounds)]
    time_of = dict.fromkeys(KINDS, 0.0)
    rounds_of: dict[str, list[float]] = {kind: [] for kind in KINDS}
    ids_of: dict[str, list[str]] = {kind: [] for kind in KINDS}
    events_of: dict[str, float] = {}
    types_of: dict[str, Counter[str]] = {}
    run = uuid.uuid4().hex[:6]
    async with DevServer(tmp / "temporal", free_port(), free_port()) as server:
        client = await connect(target_host=server.address, namespace="default")
        worker = Worker(
            client,
            task_queue=settings.task_queue,
            workflows=[BareAgentRun, BareSameCalls],
            plugins=[SelfHealing(settings)],
        )
        async with worker:
            for k, kind in enumerate(KINDS):  # warm-up, not counted
                await run_kind(client, settings, kind, 20, f"warm{k}-{run}")
            for r, n in enumerate(per_round):
                order = KINDS if r % 2 == 0 else KINDS[::-1]  # each pair's order, half and half
                for kind in order:
                    tag = f"k{KINDS.index(kind)}-{run}-{r}"
                    took, ids = await run_kind(client, settings, kind, n, tag)
                    time_of[kind] += took
                    rounds_of[kind].append(n / took)
                    ids_of[kind] += ids
            for kind in KINDS:
                events_of[kind], types_of[kind] = await history_events(
                    client, ids_of[kind][: max(1, args.histories)]
                )
    shutil.rmtree(tmp, ignore_errors=True)

    tput = {kind: args.n / time_of[kind] for kind in KINDS}
    print(
        f"retry overhead bench: {args.n} sim `ok` tasks of each kind, {args.rounds} alternating "
        f"rounds, one worker (SelfHealing + the bare workflows), one dev server"
    )
    for kind in KINDS:
        print(
            f"  {kind:<17} {tput[kind]:6.1f} tasks/s  ({time_of[kind]:6.2f}s)  "
            f"{events_of[kind]:.1f} history events/task;  per round: "
            + " ".join(f"{t:.1f}" for t in rounds_of[kind])
        )
    base, strict = KINDS[1], KINDS[2]
    extra = {
        k: v - types_of[base].get(k, 0)
        for k, v in types_of["AgentTask"].items()
        if v > types_of[base].get(k, 0)
    }
    print(
        f"  events AgentTask adds to {base}: "
        + (", ".join(f"{k} +{v}" for k, v in sorted(extra.items())) or "none")
    )
    ratio = tput["AgentTask"] / tput[base]
    events_ratio = events_of["AgentTask"] / events_of[base]
    ok_ratio, ok_events = ratio >= 0.7, events_ratio <= 2.0
    print(
        f"  throughput AgentTask / {base} = {ratio:.2f}  (bar ≥ 0.70)  "
        f"{'PASS' if ok_ratio else 'FAIL'}"
    )
    print(
        f"  events     AgentTask / {base} = {events_ratio:.2f}x (bar ≤ 2.00x)  "
        f"{'PASS' if ok_events else 'FAIL'}"
    )
    print(
        f"  reference: AgentTask / {strict} = {tput['AgentTask'] / tput[strict]:.2f} throughput, "
        f"{events_of['AgentTask'] / events_of[strict]:.2f}x events (no bar: it makes fewer calls)"
    )
    return 0 if ok_ratio and ok_events else 1


if __name__ == "__main__":
    raise SystemExit(asyncio.run(main()))
