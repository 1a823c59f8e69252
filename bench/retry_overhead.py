"""Retry overhead benchmark (M2.1): the success path of AgentTask vs a bare Temporal workflow.

N sim tasks (script ``ok``) that succeed on the first attempt through ``AgentTask`` (the real
``SelfHealing`` worker: search attributes, supervision, the ledger write of the attempt) and N
runs of ``BareAgentRun``, a bare workflow defined here that calls the same ``agent.run`` sim
activity once with the same ``AgentRunInput``, timeouts and retry policy. Both run in one process,
on one dev server, on one worker (same task queue, same slots), in alternating rounds (the order
flips each round) after a warm-up round, so a noisy machine hits both alike.

Prints each throughput (tasks/s, from the first start to the last result of each round, summed
over the rounds), the ratio AgentTask / bare, and history events per task for each (from a sample
of histories), with the event types AgentTask adds. The bars: ratio ≥ 0.7 and events ≤ 2x bare.
Exit 0 only if both held.

    .venv/bin/python bench/retry_overhead.py [--n 400] [--rounds 8]
"""

import argparse
import asyncio
import shutil
import sys
import tempfile
import time
import uuid
from collections import Counter
from datetime import timedelta
from pathlib import Path

from temporalio import workflow
from temporalio.common import RetryPolicy

if not workflow.unsafe.in_sandbox():  # the workflow sandbox re-imports this module
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

with workflow.unsafe.imports_passed_through():
    from temporalio.api.enums.v1 import EventType
    from temporalio.client import Client
    from temporalio.worker import Worker

    from activities.agents import AgentActivities
    from selfheal.config import Settings
    from selfheal.models import AdapterSpec, AgentRunInput, AgentRunResult, TaskInput
    from selfheal.plugins import SelfHealing
    from starter.client import build_task_input, connect, start_task, task_outcome
    from starter.devserver import DevServer, free_port


@workflow.defn(name="BareAgentRun")
class BareAgentRun:
    """The baseline: one ``agent.run`` call, as AgentTask makes it, and nothing else."""

    @workflow.run
    async def run(self, input: AgentRunInput) -> AgentRunResult:
        return await workflow.execute_activity_method(
            AgentActivities.run,
            input,
            start_to_close_timeout=timedelta(seconds=input.timeout) + timedelta(minutes=1),
            heartbeat_timeout=timedelta(seconds=30),
            retry_policy=RetryPolicy(
                initial_interval=timedelta(seconds=1),
                maximum_interval=timedelta(seconds=30),
                maximum_attempts=8,
            ),
        )


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


async def run_bare(client: Client, settings: Settings, n: int, tag: str) -> tuple[float, list[str]]:
    inputs = [bare_input(task) for task in sim_ok_inputs(settings, n, tag)]
    began = time.perf_counter()
    handles = await asyncio.gather(
        *(
            client.start_workflow(
                BareAgentRun.run, i, id=i.workflow_id, task_queue=settings.task_queue
            )
            for i in inputs
        )
    )
    results = await asyncio.gather(*(h.result() for h in handles))
    took = time.perf_counter() - began
    if any(r.outcome != "succeeded" for r in results):
        raise SystemExit("retry_overhead: a bare run did not succeed")
    return took, [h.id for h in handles]


async def history_events(client: Client, ids: list[str]) -> tuple[float, Counter[str]]:
    """Mean events per history over ``ids`` and the event types of the first one."""
    counts, types = [], Counter()
    for n, wid in enumerate(ids):
        history = await client.get_workflow_handle(wid).fetch_history()
        counts.append(len(history.events))
        if n == 0:
            types = Counter(
                EventType.Name(e.event_type).removeprefix("EVENT_TYPE_") for e in history.events
            )
    return sum(counts) / len(counts), types


async def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=400, help="tasks of each kind (default 400)")
    parser.add_argument("--rounds", type=int, default=8, help="alternating rounds (default 8)")
    parser.add_argument("--histories", type=int, default=5, help="histories sampled per kind")
    args = parser.parse_args()
    if args.n < args.rounds or args.rounds < 1:
        parser.error("--n must be at least --rounds, and --rounds at least 1")

    tmp = Path(tempfile.mkdtemp(prefix="selfheal-bench-overhead-"))
    settings = Settings(data_dir=tmp / "data", task_queue=f"bench-overhead-{uuid.uuid4().hex[:6]}")
    per_round = [args.n // args.rounds + (r < args.n % args.rounds) for r in range(args.rounds)]
    time_of = {"AgentTask": 0.0, "bare": 0.0}
    rounds_of: dict[str, list[float]] = {"AgentTask": [], "bare": []}
    ids_of: dict[str, list[str]] = {"AgentTask": [], "bare": []}
    run = uuid.uuid4().hex[:6]
    async with DevServer(tmp / "temporal", free_port(), free_port()) as server:
        client = await connect(target_host=server.address, namespace="default")
        worker = Worker(
            client,
            task_queue=settings.task_queue,
            workflows=[BareAgentRun],
            plugins=[SelfHealing(settings)],
        )
        async with worker:
            await run_agent_tasks(client, settings, 20, f"warm-{run}")  # warm-up, not counted
            await run_bare(client, settings, 20, f"warm-{run}")
            for r, n in enumerate(per_round):
                order = ["AgentTask", "bare"] if r % 2 == 0 else ["bare", "AgentTask"]
                for kind in order:
                    fn = run_agent_tasks if kind == "AgentTask" else run_bare
                    took, ids = await fn(client, settings, n, f"{kind.lower()}-{run}-{r}")
                    time_of[kind] += took
                    rounds_of[kind].append(n / took)
                    ids_of[kind] += ids
            sample = max(1, args.histories)
            events_task, types_task = await history_events(client, ids_of["AgentTask"][:sample])
            events_bare, types_bare = await history_events(client, ids_of["bare"][:sample])
    shutil.rmtree(tmp, ignore_errors=True)

    tput_task = args.n / time_of["AgentTask"]
    tput_bare = args.n / time_of["bare"]
    ratio = tput_task / tput_bare
    events_ratio = events_task / events_bare
    extra = {k: v - types_bare.get(k, 0) for k, v in types_task.items() if v > types_bare.get(k, 0)}
    print(
        f"retry overhead bench: {args.n} sim `ok` tasks of each kind, {args.rounds} alternating "
        f"rounds, one worker (SelfHealing + BareAgentRun), one dev server"
    )
    print(
        f"  AgentTask     {tput_task:7.1f} tasks/s  ({time_of['AgentTask']:.2f}s)  "
        f"{events_task:.1f} history events/task"
    )
    print(
        f"  bare workflow {tput_bare:7.1f} tasks/s  ({time_of['bare']:.2f}s)  "
        f"{events_bare:.1f} history events/task"
    )
    for kind in ("AgentTask", "bare"):
        print(
            f"  {kind:<13} per round: " + " ".join(f"{t:.1f}" for t in rounds_of[kind]) + " tasks/s"
        )
    print(
        "  events AgentTask adds: "
        + (", ".join(f"{k} +{v}" for k, v in sorted(extra.items())) or "none")
    )
    ok_ratio, ok_events = ratio >= 0.7, events_ratio <= 2.0
    print(
        f"  throughput ratio AgentTask/bare = {ratio:.2f}  (bar ≥ 0.70)  "
        f"{'PASS' if ok_ratio else 'FAIL'}"
    )
    print(
        f"  history events AgentTask/bare   = {events_ratio:.2f}x (bar ≤ 2.00x)  "
        f"{'PASS' if ok_events else 'FAIL'}"
    )
    return 0 if ok_ratio and ok_events else 1


if __name__ == "__main__":
    raise SystemExit(asyncio.run(main()))
