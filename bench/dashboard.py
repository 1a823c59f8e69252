"""Health dashboard benchmark (M2.6): a ledger of 1,000,000 attempts (over 90 days), 100,000
incidents, 400,000 tasks, 150,000 notifications and a week of uptime samples (5 agents, one a
minute), on SQLite and, when its binaries are here, PostgreSQL. The API runs as ``selfheal api``
runs it (its own process, real HTTP on 127.0.0.1) in front of a real Temporal dev server with a
selfheal worker polling; this process is the client.

Prints, per database: the time to fill, the first answer (cold rollups), then p50/p99 of
``/api/health`` (each window) and ``/metrics`` over sequential requests, and the delay from a
task blocked in the ledger to the event on an open ``/api/health/stream``. The bar: p99 < 100 ms
for both endpoints (default window 24 h), SSE < 2 s. Exit 0 only if it held.

    .venv/bin/python bench/dashboard.py [--attempts 1000000] [--requests 300] [--sse 10]
"""

import argparse
import asyncio
import contextlib
import json
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import httpx  # noqa: E402
import sqlalchemy as sa  # noqa: E402
from temporalio.contrib.pydantic import pydantic_data_converter  # noqa: E402
from temporalio.testing import WorkflowEnvironment  # noqa: E402
from temporalio.worker import Worker  # noqa: E402

from activities.ledger import Ledger, attempts, incidents  # noqa: E402
from bench.stats import percentile  # noqa: E402
from selfheal import search_attributes as sa_keys  # noqa: E402
from selfheal.config import Settings  # noqa: E402
from selfheal.plugins import SelfHealing  # noqa: E402
from starter.devserver import free_port  # noqa: E402
from tests.postgres import PostgresCluster, find_bindir  # noqa: E402

DAY = 86400
AGENTS = ("SAM", "ALEX", "LEO", "QUINN", "MAX")


# -- filling the ledger in SQL (fast: the rows are made by the database itself) ------------------


def _sql(dialect: str, n_attempts: int, now: int) -> list[str]:
    span = 90 * DAY
    if dialect == "sqlite":
        seq = "WITH RECURSIVE seq(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM seq WHERE i < {n}) "
        rnd = "(abs(random()) % {m})"
        ts = "(strftime('%Y-%m-%d %H:%M:%S', {t}, 'unixepoch') || '.000000')"
        src = "seq"
    else:
        seq = ""
        rnd = "(floor(random() * {m})::bigint)"
        ts = "to_timestamp({t})"
        src = "generate_series(1, {n}) AS seq(i)"

    def gen(n: int) -> tuple[str, str]:
        return seq.format(n=n), src.format(n=n)

    def r(m: int) -> str:
        return rnd.format(m=m)

    def t(expr: str) -> str:
        return ts.format(t=expr)

    agent = "(CASE {} WHEN 0 THEN 'SAM' WHEN 1 THEN 'ALEX' WHEN 2 THEN 'LEO' WHEN 3 THEN 'QUINN' ELSE 'MAX' END)"  # noqa: E501
    kind = "(CASE {} WHEN 0 THEN 'transient' WHEN 1 THEN 'agent' WHEN 2 THEN 'task' ELSE 'permanent' END)"  # noqa: E501
    w, s = gen(n_attempts)
    attempts = (
        f"{w}INSERT INTO attempts (workflow_id, n, agent, strategy, outcome, error_kind, "
        f"started_at, ended_at) SELECT 'task-b' || (i / 2), (i % 2) + 1, {agent.format('a')}, "
        f"'initial', CASE WHEN f < 25 THEN 'failed' ELSE 'succeeded' END, "
        f"CASE WHEN f < 25 THEN {kind.format('f % 4')} END, {t(f'{now} - x - 30')}, "
        f"{t(f'{now} - x')} FROM (SELECT i, {r(5)} AS a, {r(100)} AS f, {r(span)} AS x FROM {s}) q"
    )
    w, s = gen(400_000)
    tasks = (
        f"{w}INSERT INTO tasks (workflow_id, task_id, agent, title, priority, state, attempts, "
        f"created_at, updated_at) SELECT 'task-t' || i, 't' || i, {agent.format('a')}, "
        f"'bench task ' || i, 'normal', CASE WHEN f < 8 THEN 'failed' WHEN f < 9 THEN "
        f"'retrying' ELSE 'succeeded' END, 1 + (f % 3), {t(f'{now} - x - 60')}, {t(f'{now} - x')}"
        f" FROM (SELECT i, {r(5)} AS a, {r(100)} AS f, {r(span)} AS x FROM {s}) q"
    )
    w, s = gen(100_000)
    incident = (
        f"{w}INSERT INTO incidents (key, kind, subject, task_id, agent, title, reason, status, "
        f"opened_at, resolved_at, details) SELECT 'task-i' || i || '#1', CASE i % 3 WHEN 0 THEN "
        f"'stuck' WHEN 1 THEN 'blocked' ELSE 'failed' END, 'task-i' || i, 'i' || i, "
        f"{agent.format('i % 5')}, 'bench incident ' || i, 'because', CASE WHEN i > 99980 THEN "
        f"'open' ELSE 'resolved' END, {t(f'{now} - 100000 + i - 3600')}, CASE WHEN i > 99980 "
        f"THEN NULL ELSE {t(f'{now} - 100000 + i - 3000')} END, '{{}}' FROM {s}"
    )
    notices = []
    for step, target, every in (("peer", "ALEX", 1), ("lead", "MAX", 2), ("ceo", "ceo", 100)):
        w, s = gen(100_000)
        notices.append(
            f"{w}INSERT INTO notifications (idempotency_key, incident_key, step, target, status, "
            f"status_code, text, at) SELECT 'task-i' || i || '#1:{step}', 'task-i' || i || '#1', "
            f"'{step}', '{target}', 'sent', 200, 'x', {t(f'{now} - 100000 + i - 3000')} FROM {s} "
            f"WHERE i % {every} = 0"
        )
    w, s = gen(7 * 24 * 60)
    samples = [
        f"{w}INSERT INTO uptime_samples (agent, at, available, held, detail) SELECT '{name}', "
        f"{t(f'{now} - i * 60')}, {'i % 50 <> 0' if dialect == 'postgresql' else '(i % 50 <> 0)'}"
        f", {'false' if dialect == 'postgresql' else '0'}, '' FROM {s}"
        for name in AGENTS
    ]
    w, s = gen(2000)
    guards = (
        f"{w}INSERT INTO commit_guards (workflow_id, repo, repo_path, sha, build_command, state, "
        f"committed_at, reverted_at, updated_at) SELECT 'commit-app-x-' || i, 'app', '/app', "
        f"'sha' || i, 'make', 'green', {t(f'{now} - i * 3600')}, CASE WHEN i % 10 = 0 THEN "
        f"{t(f'{now} - i * 3600 + 40 + i % 90')} END, {t(f'{now} - i * 3600')} FROM {s}"
    )
    w, s = gen(20_000)
    outbox = (
        f"{w}INSERT INTO review_outbox (workflow_id, input, received_at, started_at) SELECT "
        f"'pr-b-' || i, '{{}}', {t(f'{now} - i * 300')}, {t(f'{now} - i * 300 + 1')} FROM {s}"
    )
    return [attempts, tasks, incident, *notices, *samples, guards, outbox]


def fill(url: str, n_attempts: int) -> float:
    began = time.perf_counter()
    ledger = Ledger(url)
    now = int(time.time())
    with ledger.engine.begin() as conn:
        for statement in _sql(ledger.engine.dialect.name, n_attempts, now):
            if ledger.engine.dialect.name == "postgresql":
                statement = statement.replace("%", "%%")  # psycopg's placeholders
            conn.exec_driver_sql(statement)
    if ledger.engine.dialect.name == "postgresql":
        with ledger.engine.connect() as conn:
            conn.exec_driver_sql("ANALYZE")  # what autovacuum does after a bulk load
    ledger.close()
    return time.perf_counter() - began


# -- the API in its own process ------------------------------------------------------------------


@contextmanager
def api_process(env: dict[str, str]) -> Iterator[str]:
    port = free_port()
    process = subprocess.Popen(
        [sys.executable, "-m", "starter.cli", "api", "--port", str(port)],
        cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
        start_new_session=True,
    )  # fmt: skip
    url = f"http://127.0.0.1:{port}"
    try:
        for _ in range(600):
            try:
                if httpx.get(f"{url}/healthz", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if process.poll() is not None:
                raise SystemExit(f"the API exited: {process.stderr.read().decode()[-500:]}")  # type: ignore[union-attr]
            time.sleep(0.1)
        yield url
    finally:
        os.killpg(process.pid, signal.SIGTERM)
        process.wait(timeout=30)


def timed(http: httpx.Client, path: str, n: int) -> list[float]:
    out = []
    for _ in range(n):
        began = time.perf_counter()
        answer = http.get(path)
        out.append((time.perf_counter() - began) * 1000)
        assert answer.status_code == 200, (path, answer.status_code, answer.text[:200])
    return out


def sse_delays(url: str, ledger_url: str, rounds: int) -> list[float]:
    """Block a task in the ledger (as AgentTask's local activity does) and time the event."""
    engine = sa.create_engine(ledger_url)
    delays: list[float] = []
    with httpx.Client(timeout=30) as http, http.stream("GET", f"{url}/api/health/stream") as s:
        lines = s.iter_lines()
        events: list[tuple[float, str]] = []
        got = threading.Event()

        def read() -> None:
            with contextlib.suppress(httpx.HTTPError):  # the stream is closed at the end
                for line in lines:
                    if line.startswith("data: "):
                        events.append((time.perf_counter(), json.loads(line[6:])["html"]))
                        got.set()

        threading.Thread(target=read, daemon=True).start()
        assert got.wait(30), "no first event"
        for _ in range(rounds):
            title = f"bench-blocked-{uuid.uuid4().hex[:10]}"
            began = time.perf_counter()
            with engine.begin() as conn:
                conn.execute(incidents.insert().values(
                    key=f"task-{title}#1", kind="blocked", subject=f"task-{title}",
                    task_id=title, agent="SAM", title=title, reason="bench", status="open",
                    opened_at=datetime.now(UTC), details="{}",
                ))  # fmt: skip
            deadline = began + 10
            while time.perf_counter() < deadline:
                seen = next((at for at, html in list(events) if title in html), None)
                if seen:
                    delays.append((seen - began) * 1000)
                    break
                time.sleep(0.005)
            else:
                delays.append(float("inf"))
            time.sleep(0.3)
    engine.dispose()
    return delays


def line(name: str, values: list[float]) -> str:
    p50, p99 = statistics.median(values), percentile(values, 99)
    return f"  {name:<35} p50 {p50:7.1f} ms   p99 {p99:7.1f} ms   max {max(values):7.1f} ms"


async def run_one(label: str, url: str, args: argparse.Namespace) -> bool:
    print(f"\n== {label}: filling {args.attempts:,} attempts, 100,000 incidents, ...", flush=True)
    print(f"  filled in {fill(url, args.attempts):.1f} s", flush=True)
    env = await WorkflowEnvironment.start_local(
        dev_server_existing_path=str(Path(sys.executable).parent / "temporal"),
        data_converter=pydantic_data_converter, search_attributes=list(sa_keys.ALL),
        dev_server_log_level="error",
    )  # fmt: skip
    try:
        with tempfile.TemporaryDirectory() as tmp:
            settings = Settings(data_dir=Path(tmp), db_url=url,
                                task_queue=f"bench-{uuid.uuid4().hex[:8]}")  # fmt: skip
            worker = Worker(env.client, task_queue=settings.task_queue,
                            plugins=[SelfHealing(settings)])  # fmt: skip
            process_env = os.environ | {
                "TEMPORAL_ADDRESS": env.client.service_client.config.target_host,
                "SELFHEAL_DB_URL": url, "SELFHEAL_TASK_QUEUE": settings.task_queue,
                "SELFHEAL_DATA_DIR": tmp,
            }  # fmt: skip
            async with worker:
                return await asyncio.to_thread(measure, process_env, url, args)
    finally:
        await env.shutdown()


@contextmanager
def writing(ledger_url: str, every: float) -> Iterator[None]:
    """A finished attempt written every ``every`` seconds, as a busy team's workers do: the
    ledger's change marker moves, so the API computes its figures again."""
    engine = sa.create_engine(ledger_url)
    stop = threading.Event()

    def write() -> None:
        n = 0
        while not stop.wait(every):
            n += 1
            now = datetime.now(UTC)
            with engine.begin() as conn:
                conn.execute(attempts.insert().values(
                    workflow_id=f"task-live-{uuid.uuid4().hex[:10]}", n=1, agent=AGENTS[n % 5],
                    strategy="initial", outcome="failed" if n % 4 == 0 else "succeeded",
                    error_kind="transient" if n % 4 == 0 else None, started_at=now, ended_at=now,
                ))  # fmt: skip

    writer = threading.Thread(target=write, daemon=True)
    writer.start()
    try:
        yield
    finally:
        stop.set()
        writer.join()
        engine.dispose()


def measure(env: dict[str, str], ledger_url: str, args: argparse.Namespace) -> bool:
    with api_process(env) as url, httpx.Client(base_url=url, timeout=60) as http:
        began = time.perf_counter()
        cold = http.get("/metrics")
        first = (time.perf_counter() - began) * 1000
        assert cold.status_code == 200
        print(f"  first /metrics (cold rollups, all time): {first:.0f} ms", flush=True)
        results = {}
        paths = ("/api/health?window=24h", "/api/health?window=1h", "/api/health?window=7d",
                 "/metrics")  # fmt: skip
        for path in paths:
            timed(http, path, 5)  # warm
            print(line(f"{path} (idle)", timed(http, path, args.requests)), flush=True)
        print(f"  with a finished attempt written every {args.write_every * 1000:.0f} ms:")
        with writing(ledger_url, args.write_every):
            for path in paths:
                results[path] = timed(http, path, args.requests)
                print(line(path, results[path]), flush=True)
        body = http.get("/api/health").json()
        print(f"  (the 24 h document: {len(body['agents'])} agents, {len(body['incidents'])} "
              f"incidents, {sum(a['attempts'] for a in body['agents']):,} attempts)")  # fmt: skip
    with api_process(env) as url:
        delays = sse_delays(url, ledger_url, args.sse)
    print(line("SSE: blocked → event", delays), flush=True)
    # the bar, on the figures measured while the ledger changes
    bar = (percentile(results["/api/health?window=24h"], 99) < 100
           and percentile(results["/metrics"], 99) < 100 and max(delays) < 2000)  # fmt: skip
    print(f"  bar (p99 < 100 ms for /api/health and /metrics, SSE < 2 s): "
          f"{'held' if bar else 'MISSED'}")  # fmt: skip
    return bar


async def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--attempts", type=int, default=1_000_000)
    parser.add_argument("--requests", type=int, default=300)
    parser.add_argument("--sse", type=int, default=10)
    parser.add_argument("--write-every", type=float, default=0.1)
    parser.add_argument("--no-postgres", action="store_true")
    args = parser.parse_args()
    print(f"load average at start: {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores")
    held = []
    with tempfile.TemporaryDirectory() as tmp:
        held.append(await run_one("SQLite", f"sqlite:///{tmp}/ledger.db", args))
    if find_bindir() is not None and not args.no_postgres:
        with PostgresCluster.start() as cluster:
            held.append(await run_one("PostgreSQL", cluster.new_database(), args))
    else:
        print("\n(PostgreSQL: skipped, --no-postgres or no server binaries)")
    return 0 if all(held) else 1


if __name__ == "__main__":
    raise SystemExit(asyncio.run(main()))
