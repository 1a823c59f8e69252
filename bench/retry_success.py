"""Retry success benchmark (M2.1): the AgentTask ladder vs "retry the same thing 3 times".

Every task fails its first attempt; the first failures follow a seeded mix (default 50 %
transient, 20 % agent, 20 % task, 10 % permanent, exact counts, shuffled). What a retry does is
decided by a stated model, encoded in each task's ``sim`` script (one token per attempt):

- a retry *fixes the cause* if: ``transient`` — any retry (the blip has passed, the same agent may
  retry); ``agent`` — the retry runs on another agent than the first; ``task`` — the retry uses
  another approach (strategy ``alternative`` or ``fresh``, or ``same`` after one of those);
  ``permanent`` — never;
- a retry that fixes the cause succeeds, except that with probability ``--blip`` (default 0.15,
  seeded, one draw per task and attempt, shared by both runs) it hits a new ``transient`` failure;
- a retry that does not fix the cause fails again with the first failure's kind.

The ladder's scripts assume the design's policy (a transient retries on the same agent, an agent
failure moves to a peer, a task failure changes strategy, a permanent one stops); each finished
AgentTask's recorded attempts (agent, strategy) are checked against that, and a task whose
attempts broke the model counts as not recovered. The baseline is ``NaiveRetry``, a bare workflow
defined here that calls the same ``agent.run`` sim activity up to 4 times (1 + 3 retries) with the
same agent and strategy ``same``, whatever the error; its scripts are the model's outcomes for
that path. Both run in one process on one dev server and one worker, all tasks started together,
with ``--time-scale`` (default 600) so the ladder's waits (60 s, 5 min, 15 min) are short.

Retry success rate = tasks that failed at least once and then succeeded / tasks that failed at
least once (here: all of them). A ladder task blocked by the same error three times waits for a
person; it counts as not recovered and is terminated at the end. The seed's target: > 80 %.
Exit 0 only if the ladder's rate is above it.

    .venv/bin/python bench/retry_success.py [--n 200] [--seed 7] [--blip 0.15]
"""

import argparse
import asyncio
import random
import shutil
import sys
import tempfile
import time
import uuid
from collections import Counter
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path

from pydantic import BaseModel
from temporalio import workflow

if not workflow.unsafe.in_sandbox():  # the workflow sandbox re-imports this module
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

with workflow.unsafe.imports_passed_through():
    from temporalio.client import Client
    from temporalio.common import RetryPolicy
    from temporalio.worker import Worker

    from activities.agents import AgentActivities
    from selfheal.config import Settings
    from selfheal.models import AdapterSpec, AgentRunInput, TaskStatus
    from selfheal.plugins import SelfHealing
    from starter.client import build_task_input, connect, start_task, task_outcome
    from starter.devserver import DevServer, free_port

MIX = (("transient", 0.5), ("agent", 0.2), ("task", 0.2), ("permanent", 0.1))
KINDS = [k for k, _ in MIX]
FIRST_AGENT = "SAM"
TRIES = 4  # the ladder's 1 + 3 retries; the baseline gets as many
TARGET = 0.80


class NaiveInput(BaseModel):
    run: AgentRunInput
    tries: int = TRIES
    wait: float = 0.1


class NaiveResult(BaseModel):
    outcome: str
    tokens: list[str]


@workflow.defn(name="NaiveRetry")
class NaiveRetry:
    """The baseline: the same ``agent.run`` call, retried as is (same agent, same strategy)."""

    @workflow.run
    async def run(self, input: NaiveInput) -> NaiveResult:
        tokens: list[str] = []
        error: str | None = None
        for n in range(1, input.tries + 1):
            run = input.run.model_copy(
                update={
                    "attempt": n,
                    "strategy": "initial" if n == 1 else "same",
                    "previous_error": error,
                }
            )
            result = await workflow.execute_activity_method(
                AgentActivities.run,
                run,
                start_to_close_timeout=timedelta(seconds=run.timeout) + timedelta(minutes=1),
                heartbeat_timeout=timedelta(seconds=30),
                retry_policy=RetryPolicy(
                    maximum_interval=timedelta(seconds=30), maximum_attempts=8
                ),
            )
            tokens.append("ok" if result.outcome == "succeeded" else result.error_kind or "?")
            if result.outcome == "succeeded":
                return NaiveResult(outcome="succeeded", tokens=tokens)
            error = result.error
            if n < input.tries:
                await workflow.sleep(input.wait)
        return NaiveResult(outcome="failed", tokens=tokens)


# -- the model ----------------------------------------------------------------------------------


@dataclass
class Case:
    kind: str  # the first failure
    draws: list[float]  # one uniform per retry (attempts 2..TRIES)


def cases(n: int, seed: int) -> list[Case]:
    rng = random.Random(seed)
    counts = [round(n * share) for _, share in MIX]
    counts[0] += n - sum(counts)
    kinds = [k for k, c in zip(KINDS, counts, strict=True) for _ in range(c)]
    rng.shuffle(kinds)
    return [Case(kind, [rng.random() for _ in range(TRIES - 1)]) for kind in kinds]


def outcome(case: Case, n: int, agent: str, approach_changed: bool, blip: float) -> str:
    """The model: attempt ``n``'s sim token, run by ``agent`` with or without a new approach."""
    if n == 1:
        return case.kind
    fixed = {
        "transient": True,
        "agent": agent != FIRST_AGENT,
        "task": approach_changed,
        "permanent": False,
    }[case.kind]
    if not fixed:
        return case.kind
    return "transient" if case.draws[n - 2] < blip else "ok"


def script(case: Case, blip: float, *, ladder: bool) -> str:
    """The tokens of attempts 1..TRIES on the ladder's path (another agent after an agent failure,
    another approach after a task failure) or the naive path (same agent, same approach)."""
    agent, changed = FIRST_AGENT, False
    tokens: list[str] = []
    for n in range(1, TRIES + 1):
        if n > 1 and ladder:
            agent = "ALEX" if case.kind == "agent" else agent
            changed = changed or case.kind == "task"
        token = outcome(case, n, agent, changed, blip)
        tokens.append(token)
        if token == "ok" or (ladder and token == "permanent"):
            break
    return ",".join(tokens)


def ladder_consistent(case: Case, status: TaskStatus, blip: float) -> bool:
    """Did each recorded attempt get the outcome the model gives its actual agent and strategy?"""
    changed = False
    for a in status.attempts:
        changed = a.strategy in ("alternative", "fresh") or (a.strategy == "same" and changed)
        want = outcome(case, a.n, a.agent, changed, blip)
        got = "ok" if a.outcome == "succeeded" else a.error_kind
        if want != got:
            return False
    return True


# -- the run ------------------------------------------------------------------------------------


async def settle(handles: list, timeout: float) -> tuple[dict[int, TaskStatus], set[int]]:
    """The AgentTasks' results. Once every unfinished one is blocked (waiting for a person), or at
    ``timeout``, the rest are read with the ``status`` query and terminated."""
    futures = {asyncio.ensure_future(task_outcome(h)): i for i, h in enumerate(handles)}
    out: dict[int, TaskStatus] = {}
    deadline = time.monotonic() + timeout
    while futures:
        done, _ = await asyncio.wait(futures, timeout=2.0)
        for f in done:
            out[futures.pop(f)] = f.result()
        if not futures:
            break
        pending = list(futures.items())
        states = await asyncio.gather(
            *(handles[i].query("status", result_type=TaskStatus) for _, i in pending)
        )
        waiting = all(s.incidents and s.incidents[-1].kind == "blocked" for s in states)
        if waiting or time.monotonic() > deadline:
            for (f, i), s in zip(pending, states, strict=True):
                f.cancel()
                out[i] = s
                await handles[i].terminate("retry_success bench: waiting for a person")
            return out, {i for _, i in pending}
    return out, set()


async def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=200, help="tasks (default 200)")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument(
        "--blip",
        type=float,
        default=0.15,
        help="chance a retry that fixes the cause hits a new transient",
    )
    parser.add_argument("--time-scale", type=float, default=600.0)
    parser.add_argument("--timeout", type=float, default=120.0, help="give up waiting after (s)")
    args = parser.parse_args()
    if args.n < 10 or not 0 <= args.blip < 1 or args.time_scale <= 0:
        parser.error("--n ≥ 10, 0 ≤ --blip < 1, --time-scale > 0")

    tmp = Path(tempfile.mkdtemp(prefix="selfheal-bench-success-"))
    settings = Settings(data_dir=tmp / "data", task_queue=f"bench-success-{uuid.uuid4().hex[:6]}")
    model = cases(args.n, args.seed)
    run = uuid.uuid4().hex[:6]
    inputs = [
        build_task_input(
            settings,
            agent=FIRST_AGENT,
            title=f"bench task {i}",
            adapter=AdapterSpec(kind="sim", sim=script(c, args.blip, ladder=True)),
            time_scale=args.time_scale,
            task_id=f"success-{run}-{i}",
        )
        for i, c in enumerate(model)
    ]
    naive = [
        NaiveInput(
            run=AgentRunInput(
                workflow_id=f"naive-{run}-{i}",
                task_id=f"naive-{run}-{i}",
                title=f"bench task {i}",
                agent=FIRST_AGENT,
                attempt=1,
                strategy="initial",
                adapter=AdapterSpec(kind="sim", sim=script(c, args.blip, ladder=False)),
                timeout=inputs[i].retry.attempt_timeout,
            ),
            wait=inputs[i].retry.waits[0],
        )
        for i, c in enumerate(model)
    ]
    began = time.perf_counter()
    async with DevServer(tmp / "temporal", free_port(), free_port()) as server:
        client: Client = await connect(target_host=server.address, namespace="default")
        worker = Worker(
            client,
            task_queue=settings.task_queue,
            workflows=[NaiveRetry],
            plugins=[SelfHealing(settings)],
        )
        async with worker:
            ladder_handles, naive_handles = [], []
            for t, b in zip(inputs, naive, strict=True):  # interleaved starts
                ladder_handles.append(await start_task(client, settings, t))
                naive_handles.append(
                    await client.start_workflow(
                        NaiveRetry.run, b, id=b.run.workflow_id, task_queue=settings.task_queue
                    )
                )
            naive_results = await asyncio.gather(*(h.result() for h in naive_handles))
            ladder_results, unfinished = await settle(ladder_handles, args.timeout)
    took = time.perf_counter() - began
    shutil.rmtree(tmp, ignore_errors=True)

    by_kind = {k: Counter() for k in KINDS}
    other: Counter[str] = Counter()
    for i, case in enumerate(model):
        c = by_kind[case.kind]
        c["n"] += 1
        r = ladder_results[i]
        c["ladder_attempts"] += len(r.attempts)
        if i in unfinished:
            last = r.incidents[-1].kind if r.incidents else "no"
            other[
                f"unfinished: {r.state} with a {last} incident ({case.kind} first, "
                f"{'/'.join(a.error_kind or 'ok' for a in r.attempts)})"
            ] += 1
        elif not ladder_consistent(case, r, args.blip):
            other[f"attempts broke the model ({case.kind} first)"] += 1
        elif r.state == "succeeded":
            c["ladder"] += 1
        nr = naive_results[i]
        c["naive_attempts"] += len(nr.tokens)
        c["naive"] += nr.outcome == "succeeded" and nr.tokens[0] != "ok"

    n = args.n
    ladder_ok = sum(c["ladder"] for c in by_kind.values())
    naive_ok = sum(c["naive"] for c in by_kind.values())
    mix = ", ".join(f"{by_kind[k]['n']} {k} ({by_kind[k]['n'] / n:.0%})" for k in KINDS)
    print(
        f"retry success bench: N={n} tasks, seed {args.seed}, time scale {args.time_scale:g}, "
        f"{took:.1f}s"
    )
    print(f"  first failures (every task fails attempt 1): {mix}")
    print(
        f"  model: a retry that fixes the cause (transient: any; agent: another agent; task: "
        f"another approach; permanent: never) succeeds, or with p={args.blip:g} hits a new "
        f"transient; one that does not fails the same way again"
    )
    print(
        f"  {'first failure':<14}{'ladder recovered':>18}{'attempts':>10}"
        f"{'same x3 recovered':>18}{'attempts':>10}"
    )
    for k in KINDS:
        c = by_kind[k]
        print(
            f"  {k:<14}{c['ladder']:>12}/{c['n']:<5}{c['ladder_attempts']:>10}"
            f"{c['naive']:>12}/{c['n']:<5}{c['naive_attempts']:>10}"
        )
    if other:
        for what, count in sorted(other.items()):
            print(f"  ladder, not recovered: {count} {what}")
    ladder_rate, naive_rate = ladder_ok / n, naive_ok / n
    held = ladder_rate > TARGET
    print(
        f"  retry success rate  AgentTask ladder {ladder_rate:.1%} ({ladder_ok}/{n})   "
        f"retry the same thing 3 times {naive_rate:.1%} ({naive_ok}/{n})"
    )
    print(f"  seed target > {TARGET:.0%}: ladder {'PASS' if held else 'FAIL'}")
    return 0 if held else 1


if __name__ == "__main__":
    raise SystemExit(asyncio.run(main()))
