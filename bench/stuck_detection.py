"""Stuck detection benchmark (M2.4): how late the no-progress watch fires, and the worker's memory
with 1,000 stalled tasks open.

Part 1 — latency. N sim tasks whose first attempt stalls (``stall:SECONDS``: alive and
heartbeating, no progress) for longer than the thresholds, with ``--time-scale`` (default 300:
the stuck incident opens after 15 min / 300 = 3 s without progress, the task is flagged stuck
after 30 min / 300 = 6 s), all started together, served by a ``selfheal worker`` subprocess.
From each task's status document (its result):
``incident.opened_at - (incident.since + first escalation step)`` and
``incident.stuck_at - (incident.since + stuck.no_progress)``. Prints p50/p90/p99/max of each.
The bar: p99 < 1 s. All N stall at the same instant, so each threshold is a burst. The stuck
threshold and the lead step fall at the same time (30 min); the lead step waits for the task's
stuck flag (detect, then escalate), so the flag is not queued behind N lead dispatches. On this
2-core machine N = 50 held the bar in three runs (stuck flag p99 0.42-0.68 s, incident opening
0.49-0.61 s); N = 100 did not (1.16 s and 1.05 s): the dev server and the worker saturate the
two cores.

Part 2 — memory. A fresh ``selfheal worker`` subprocess (``python -m starter.cli worker``, as
shipped) and 1,000 tasks whose attempt stalls for 10 min with unscaled thresholds (15/30 min), so
all are open, waiting on their no-progress timers. Once every task's attempt is scheduled, the
worker's RSS (VmRSS of it and its children) is sampled, then the tasks are terminated and the
worker stopped. The worker's default tuner gives 100 activity slots, so 100 attempts run (and
heartbeat) and the rest wait in the queue; the watch timer is armed from the moment an attempt is
scheduled, so all 1,000 workflows are cached and timing. ``--all-running`` repeats part 2 with a
worker given 1,000 activity slots, so every stall runs at once. The bar: < 500 MB.

Exit 0 only if both bars held.

    .venv/bin/python bench/stuck_detection.py [--n 50] [--open 1000] [--all-running]
"""

import argparse
import asyncio
import contextlib
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from temporalio.client import Client, WorkflowHandle  # noqa: E402
from temporalio.service import RPCError  # noqa: E402

from bench.stats import distribution, percentile  # noqa: E402
from selfheal.config import Settings  # noqa: E402
from selfheal.models import AdapterSpec, TaskStatus  # noqa: E402
from starter.client import build_task_input, connect, start_task, task_outcome  # noqa: E402
from starter.devserver import DevServer, free_port  # noqa: E402

WORKER_WITH_SLOTS = """\
import asyncio, sys
from temporalio.worker import Worker
from selfheal.config import load_settings
from selfheal.plugins import SelfHealing
from starter.client import connect

async def main():
    settings = load_settings()
    client = await connect()
    worker = Worker(client, task_queue=settings.task_queue, plugins=[SelfHealing(settings)],
                    max_concurrent_activities=int(sys.argv[1]))
    print(f"selfheal worker on task queue {settings.task_queue}", flush=True)
    await worker.run()

asyncio.run(main())
"""


# -- the worker subprocess ----------------------------------------------------------------------


class WorkerProcess:
    """``selfheal worker`` in its own process (or, with ``slots``, the same worker with that many
    activity slots), so its memory is its own."""

    def __init__(self, address: str, task_queue: str, data_dir: Path, slots: int | None = None):
        self.address, self.task_queue, self.data_dir, self.slots = (
            address,
            task_queue,
            data_dir,
            slots,
        )
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        self.data_dir.mkdir(parents=True, exist_ok=True)
        env = os.environ | {
            "TEMPORAL_ADDRESS": self.address,
            "TEMPORAL_NAMESPACE": "default",
            "SELFHEAL_TASK_QUEUE": self.task_queue,
            "SELFHEAL_DATA_DIR": str(self.data_dir),
            "PYTHONPATH": str(ROOT),
        }
        env.pop("SELFHEAL_CONFIG", None)
        if self.slots is None:
            cmd = [sys.executable, "-m", "starter.cli", "worker"]
        else:
            cmd = [sys.executable, "-c", WORKER_WITH_SLOTS, str(self.slots)]
        log = (self.data_dir / "worker.log").open("ab")
        self.proc = subprocess.Popen(
            cmd,
            cwd=self.data_dir,
            env=env,
            stdout=subprocess.PIPE,
            stderr=log,
            stdin=subprocess.DEVNULL,
        )
        log.close()
        assert self.proc.stdout is not None
        line = self.proc.stdout.readline().decode()
        if "selfheal worker on task queue" not in line:
            self.stop()
            raise SystemExit(f"stuck_detection: the worker did not start; see {log.name}")

    def rss_mb(self) -> float:
        """VmRSS of the worker and all its descendants, in MB."""
        assert self.proc is not None
        return sum(_rss_kb(pid) for pid in _tree(self.proc.pid)) / 1024

    def stop(self) -> None:
        if self.proc is None or self.proc.poll() is not None:
            return
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process so far."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


async def sample_cpu(pids: dict[str, int], into: dict[str, list[float]], every: float = 0.5):
    """Append each process's share of one core over each ``every`` window until cancelled."""
    last = {k: cpu_seconds(p) for k, p in pids.items()}
    while True:
        await asyncio.sleep(every)
        for k, p in pids.items():
            now = cpu_seconds(p)
            into[k].append((now - last[k]) / every)
            last[k] = now


def _tree(root: int) -> list[int]:
    parents: dict[int, int] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            with contextlib.suppress(OSError, IndexError, ValueError):
                stat = (entry / "stat").read_text()
                parents[int(entry.name)] = int(stat.rsplit(")", 1)[1].split()[1])
    found, frontier = [root], [root]
    while frontier:
        kids = [p for p, pp in parents.items() if pp in frontier]
        found += kids
        frontier = kids
    return found


def _rss_kb(pid: int) -> int:
    with contextlib.suppress(OSError):
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


# -- helpers ------------------------------------------------------------------------------------


async def bounded(coros: list, limit: int = 50) -> list:
    gate = asyncio.Semaphore(limit)

    async def one(c):
        async with gate:
            return await c

    return await asyncio.gather(*(one(c) for c in coros))


# -- part 1: detection latency ------------------------------------------------------------------


async def latency(
    client: Client, address: str, server_pid: int, tmp: Path, args: argparse.Namespace
) -> bool:
    settings = Settings(data_dir=tmp / "latency", task_queue=f"bench-stuck-{uuid.uuid4().hex[:6]}")
    scaled = settings.policies.scaled(args.time_scale)
    no_progress = scaled.stuck.no_progress
    first_step = min(scaled.escalation.steps[0].after, no_progress)
    stall = args.stall or round(no_progress * 1.5, 1)
    if not no_progress < stall < scaled.retry.attempt_timeout:
        raise SystemExit(
            f"stuck_detection: the stall ({stall:g}s) must be longer than the stuck threshold "
            f"({no_progress:g}s) and shorter than the attempt timeout "
            f"({scaled.retry.attempt_timeout:g}s)"
        )
    worker = WorkerProcess(address, settings.task_queue, settings.data_dir)
    worker.start()
    try:
        run = uuid.uuid4().hex[:6]
        inputs = [
            build_task_input(
                settings,
                agent="SAM",
                title=f"stalled task {i}",
                adapter=AdapterSpec(kind="sim", sim=f"stall:{stall:g}"),
                time_scale=args.time_scale,
                task_id=f"stall-{run}-{i}",
            )
            for i in range(args.n)
        ]
        began = time.monotonic()
        assert worker.proc is not None
        cpu_before = cpu_seconds(worker.proc.pid)
        windows: dict[str, list[float]] = {"worker": [], "dev server": []}
        sampler = asyncio.create_task(
            sample_cpu({"worker": worker.proc.pid, "dev server": server_pid}, windows)
        )

        async def start(n: int, task_input):
            if args.spread:
                await asyncio.sleep(max(0.0, began + args.spread * n / args.n - time.monotonic()))
            return await start_task(client, settings, task_input)

        handles = await bounded([start(n, i) for n, i in enumerate(inputs)])
        results: list[TaskStatus] = await asyncio.wait_for(
            asyncio.gather(*(task_outcome(h) for h in handles)), timeout=stall * 3 + 60
        )
        wall, cpu = time.monotonic() - began, cpu_seconds(worker.proc.pid) - cpu_before
        sampler.cancel()
    finally:
        worker.stop()
    lags = await timer_lags(client, handles)

    opened, stuck, problems = [], [], Counter()
    for r in results:
        stuck_incidents = [i for i in r.incidents if i.kind == "stuck"]
        if r.state != "succeeded" or len(stuck_incidents) != 1:
            problems[f"{r.state}, {len(stuck_incidents)} stuck incidents"] += 1
            continue
        incident = stuck_incidents[0]
        opened.append((incident.opened_at - incident.since).total_seconds() - first_step)
        if incident.stuck_at is None:
            problems["never flagged stuck"] += 1
        else:
            stuck.append((incident.stuck_at - incident.since).total_seconds() - no_progress)
    how = f"over {args.spread:g}s" if args.spread else "together"
    print(
        f"stuck detection bench, part 1: {args.n} tasks stalled {stall:g}s, time scale "
        f"{args.time_scale:g} (incident after {first_step:g}s without progress, stuck after "
        f"{no_progress:g}s), started {how}, one `selfheal worker` subprocess"
    )
    if problems:
        print("  tasks left out: " + ", ".join(f"{v} {k}" for k, v in problems.items()))
    held = bool(opened) and bool(stuck)
    for name, values in (
        ("incident opened - (since + first step)", opened),
        ("stuck flag - (since + no_progress)  ", stuck),
    ):
        if not values:
            print(f"  {name}: no measurements")
            continue
        ok = percentile(values, 99) < 1.0
        held = held and ok
        print(
            f"  {name}  n={len(values)}  {distribution(values)}  "
            f"(min {min(values) * 1000:.1f} ms)  p99 < 1 s: {'PASS' if ok else 'FAIL'}"
        )
    print(
        f"  worker CPU {cpu:.1f}s over {wall:.1f}s ({cpu / wall:.0%} of a core on average); "
        "busiest 0.5 s windows: "
        + ", ".join(
            f"{k} {', '.join(f'{v:.0%}' for v in sorted(w, reverse=True)[:4])}"
            for k, w in windows.items()
        )
    )
    print("  where the time goes, per watch timer (from the histories):")
    for name, values in lags.items():
        if values:
            print(f"    {name:<44} {distribution(values)}")
    return held


async def timer_lags(client: Client, handles: list[WorkflowHandle]) -> dict[str, list[float]]:
    """For the first two timers of each task (the incident watch, then the stuck watch): how long
    after the deadline's base the timer was armed (the workflow task's own time), how late the
    server fired it, and how long its workflow task waited for the worker."""
    out: dict[str, list[float]] = {
        f"{which}: {part}": []
        for which in ("incident timer", "stuck timer")
        for part in ("armed after WFT start", "fired after due", "WFT started after fire")
    }
    for h in handles:
        history = await h.fetch_history()
        events = list(history.events)
        started: dict[int, tuple[float, float, float]] = {}
        fired = 0
        for n, e in enumerate(events):
            at = e.event_time.ToDatetime().timestamp()
            if e.HasField("timer_started_event_attributes"):
                a = e.timer_started_event_attributes
                wft = next(
                    x.event_time.ToDatetime().timestamp()
                    for x in reversed(events[:n])
                    if x.HasField("workflow_task_started_event_attributes")
                )
                started[e.event_id] = (
                    wft,
                    at,
                    at + a.start_to_fire_timeout.ToTimedelta().total_seconds(),
                )
            elif e.HasField("timer_fired_event_attributes") and fired < 2:
                wft, armed, due = started[e.timer_fired_event_attributes.started_event_id]
                nxt = next(
                    (x for x in events[n:] if x.HasField("workflow_task_started_event_attributes")),
                    None,
                )
                which = ("incident timer", "stuck timer")[fired]
                fired += 1
                out[f"{which}: armed after WFT start"].append(armed - wft)
                out[f"{which}: fired after due"].append(at - due)
                if nxt is not None:
                    out[f"{which}: WFT started after fire"].append(
                        nxt.event_time.ToDatetime().timestamp() - at
                    )
    return out


# -- part 2: memory with 1,000 open stalled tasks -----------------------------------------------


async def memory(
    client: Client, address: str, tmp: Path, args: argparse.Namespace, slots: int | None
) -> bool:
    label = "selfheal worker (default slots)" if slots is None else f"worker, {slots} slots"
    settings = Settings(
        data_dir=tmp / f"memory-{slots or 'default'}",
        task_queue=f"bench-rss-{uuid.uuid4().hex[:6]}",
    )
    worker = WorkerProcess(address, settings.task_queue, settings.data_dir, slots)
    worker.start()
    handles: list[WorkflowHandle] = []
    try:
        await asyncio.sleep(1.0)
        idle = worker.rss_mb()
        run = uuid.uuid4().hex[:6]
        inputs = [
            build_task_input(
                settings,
                agent="SAM",
                title=f"open stalled task {i}",
                adapter=AdapterSpec(kind="sim", sim="stall:600"),
                time_scale=1.0,
                task_id=f"open-{run}-{i}",
            )
            for i in range(args.open)
        ]
        began = time.perf_counter()
        handles = await bounded([start_task(client, settings, i) for i in inputs])
        started = time.perf_counter() - began
        # every attempt scheduled (its watch timer armed); how many of them run on the worker
        deadline = time.monotonic() + 120
        while True:
            descs = await bounded([h.describe() for h in handles])
            states = Counter(
                d.raw_description.pending_activities[0].state
                if d.raw_description.pending_activities
                else 0
                for d in descs
            )
            if states.get(0, 0) == 0 and (slots is None or states.get(2, 0) == len(handles)):
                break  # 1 = scheduled, 2 = started
            if time.monotonic() > deadline:
                break
            await asyncio.sleep(1.0)
        history = await handles[-1].fetch_history()
        timer_armed = any(e.HasField("timer_started_event_attributes") for e in history.events)
        samples = []
        for _ in range(10):
            samples.append(worker.rss_mb())
            await asyncio.sleep(0.5)
        running = (
            await client.count_workflows(
                f'TaskQueue = "{settings.task_queue}" AND ExecutionStatus = "Running"'
            )
        ).count
    finally:

        async def end(h: WorkflowHandle) -> None:
            with contextlib.suppress(RPCError):
                await h.terminate("stuck_detection bench: done")

        await bounded([end(h) for h in handles])
        worker.stop()
    peak = max(samples)
    ok = peak < 500
    print(
        f"stuck detection bench, part 2: {args.open} open tasks stalled 600s, unscaled thresholds "
        f"(15/30 min), {label} subprocess"
    )
    print(
        f"  started in {started:.1f}s; workflows running {running}; attempts started on the "
        f"worker {states.get(2, 0)}, scheduled waiting for a slot {states.get(1, 0)}, none "
        f"{states.get(0, 0)}; watch timer armed on a queued one: {timer_armed}"
    )
    print(
        f"  worker RSS: idle {idle:.0f} MB, with {args.open} open tasks {samples[-1]:.0f} MB "
        f"(max of {len(samples)} samples {peak:.0f} MB)  bar < 500 MB: "
        f"{'PASS' if ok else 'FAIL'}"
    )
    return ok


async def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--n", type=int, default=50, help="stalled tasks timed, all at once (default 50)"
    )
    parser.add_argument("--time-scale", type=float, default=300.0)
    parser.add_argument(
        "--stall",
        type=float,
        default=0.0,
        help="stall seconds (default 1.5 x the scaled stuck threshold)",
    )
    parser.add_argument(
        "--spread", type=float, default=0.0, help="start the N tasks over this many seconds"
    )
    parser.add_argument("--open", type=int, default=1000, help="open tasks for the RSS sample")
    parser.add_argument(
        "--all-running",
        action="store_true",
        help="also sample a worker with a slot for every stall",
    )
    parser.add_argument("--skip-latency", action="store_true")
    parser.add_argument("--skip-memory", action="store_true")
    args = parser.parse_args()
    if args.n < 1 or args.open < 1 or args.time_scale <= 0:
        parser.error("--n and --open must be positive, --time-scale > 0")

    tmp = Path(tempfile.mkdtemp(prefix="selfheal-bench-stuck-"))
    held = True
    try:
        async with DevServer(tmp / "temporal", free_port(), free_port()) as server:
            client = await connect(target_host=server.address, namespace="default")
            if not args.skip_latency:
                held = await latency(client, server.address, server._proc.pid, tmp, args) and held
            if not args.skip_memory:
                held = await memory(client, server.address, tmp, args, None) and held
                if args.all_running:
                    held = await memory(client, server.address, tmp, args, args.open) and held
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return 0 if held else 1


if __name__ == "__main__":
    raise SystemExit(asyncio.run(main()))
