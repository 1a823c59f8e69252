"""Several machines, shown on one: a throwaway PostgreSQL ledger, one dev server, three
`selfheal worker` processes and one `selfheal api`, all sharing the ledger. 100 mixed tasks, PR
deliveries and a burst of commits run while a random worker is SIGKILLed every few seconds (and
replaced). At the end every task is in the state its script implies, the ledger has no duplicate
row, each escalation step was notified once, and each culprit was reverted once."""

import asyncio
import json
import os
import random
import signal
import subprocess
import sys
import time
import uuid
from collections import Counter
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import httpx
from temporalio.client import Client, WorkflowExecutionStatus, WorkflowHandle
from temporalio.service import RPCError, RPCStatusCode
from temporalio.testing import WorkflowEnvironment

from activities.ledger import Ledger, attempts, incidents, notifications, tasks
from selfheal.config import Settings
from selfheal.models import AdapterSpec, TaskStatus
from selfheal.rollback import guard_workflow_id
from starter.client import build_task_input, start_task, task_outcome
from starter.devserver import free_port
from starter.testing import (
    FakeGitHub,
    NotificationSink,
    new_sha,
    pull_request_event,
    serving,
    signed_headers,
)
from tests import rollback_repo as rr
from tests.postgres import PostgresCluster
from tests.workers import ROOT

SECRET = "cluster-secret"
TIME_SCALE = 120.0  # 1 min → 0.5 s; the CEO step (60 min) → 30 s
# sim script → (final state, attempts); 100 tasks in all
MIX: list[tuple[str, str, int, int]] = [
    ("ok", "succeeded", 1, 60),
    ("transient,ok", "succeeded", 2, 10),
    ("agent,ok", "succeeded", 2, 10),
    ("task,ok", "succeeded", 2, 7),
    ("transient,task,ok", "succeeded", 3, 5),
    ("permanent", "failed", 1, 3),
    ("transient,ok", "succeeded", 2, 5),  # ... and marked blocked at once: waits for `resolve`
]
BLOCKED = 5
PULL_REQUESTS = 10


class Fleet:
    """Three `selfheal worker` processes; ``chaos`` SIGKILLs one at random every few seconds and
    starts a replacement, as a crashing machine and its supervisor would."""

    def __init__(self, env: dict[str, str], size: int = 3) -> None:
        self.env, self.size = env, size
        self.workers = [self._start() for _ in range(size)]
        self.kills = 0

    def _start(self) -> subprocess.Popen[bytes]:
        self.started_at = time.monotonic()
        return subprocess.Popen(
            [sys.executable, "-m", "starter.cli", "worker", "--shutdown-grace", "5"],
            cwd=ROOT,
            env=self.env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,
        )

    async def chaos(self, every: float, rng: random.Random) -> None:
        while True:
            await asyncio.sleep(every)
            i = rng.randrange(self.size)
            os.killpg(self.workers[i].pid, signal.SIGKILL)
            self.workers[i].wait()
            self.kills += 1
            self.workers[i] = self._start()

    async def stop(self) -> list[int | None]:
        """SIGTERM every worker once the newest one is surely up (a process still importing
        has nothing in flight and just dies of the signal)."""
        await asyncio.sleep(max(0.0, self.started_at + 20 - time.monotonic()))
        for worker in self.workers:
            if worker.poll() is None:
                os.killpg(worker.pid, signal.SIGTERM)
        return [w.wait(timeout=60) for w in self.workers]


@asynccontextmanager
async def api_process(env: dict[str, str]) -> AsyncIterator[str]:
    port = free_port()
    process = subprocess.Popen(
        [sys.executable, "-m", "starter.cli", "api", "--port", str(port)],
        cwd=ROOT,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        async with httpx.AsyncClient() as http:
            for _ in range(600):
                try:
                    if (await http.get(f"{url}/healthz")).status_code == 200:
                        break
                except httpx.TransportError:
                    pass
                assert process.poll() is None, "selfheal api exited"
                await asyncio.sleep(0.1)
        yield url
    finally:
        os.killpg(process.pid, signal.SIGTERM)
        process.wait(timeout=30)


def team_config(path: Path, sink: str) -> Path:
    lines = []
    team = {
        "SAM": ("engineer", ["ALEX", "LEO"]),
        "ALEX": ("engineer", ["LEO", "SAM"]),
        "LEO": ("engineer", ["SAM", "ALEX"]),
        "QUINN": ("reviewer", ["MAX"]),
        "MAX": ("lead", ["QUINN"]),
    }
    for name, (role, peers) in team.items():
        lines += [f"[agents.{name}]", f'role = "{role}"', f"peers = {json.dumps(peers)}"]
        lines += [f'notify_url = "{sink}/{name}"', ""]
    path.write_text("\n".join(lines))
    return path


async def deliver_pull_requests(api: str, owner: str) -> list[tuple[int, str]]:
    """One `opened` per PR, and every delivery sent twice (GitHub redelivers)."""
    pairs = []
    async with httpx.AsyncClient(timeout=30) as http:
        for number in range(1, PULL_REQUESTS + 1):
            sha = new_sha()
            body = json.dumps(
                pull_request_event("opened", sha, owner=owner, repo="web", number=number)
            ).encode()
            delivery = str(uuid.uuid4())
            for _ in range(2):
                response = await http.post(
                    f"{api}/webhooks/github",
                    content=body,
                    headers=signed_headers(SECRET, body, "pull_request", delivery),
                )
                assert response.status_code in (200, 201, 202), response.text
            pairs.append((number, sha))
    return pairs


def commit_burst(repo: Path, env: dict[str, str]) -> tuple[list[str], set[str]]:
    """Five commits close together, the 2nd and 4th breaking the build, each handed to
    `selfheal commit check` as the post-commit hook does. Each breaks its own module: two
    culprits editing the same lines would make the first revert conflict, which the guard
    rightly refuses and escalates (test_unsafe_repo_is_left_byte_identical)."""
    shas, culprits = [], set()
    for i in range(5):
        broken = i in (1, 3)
        sha = rr.commit(repo, f"change {i}", {f"mod{i}.txt": "BROKEN\n" if broken else "ok\n"})
        if broken:
            culprits.add(sha)
        shas.append(sha)
        subprocess.run(
            [sys.executable, "-m", "starter.cli", "commit", "check", "--repo", str(repo),
             "--sha", sha, "--build", rr.BUILD],
            cwd=ROOT, env=env, check=True, capture_output=True, timeout=120,
        )  # fmt: skip
    return shas, culprits


async def update(handle: WorkflowHandle[Any, Any], name: str, body: dict[str, str]) -> None:
    """An Update, retried while the server says the workflow is not ready (its last workflow task
    failed, e.g. timed out on a killed worker and not yet retried), as an orchestrator would."""
    for _ in range(120):
        try:
            await handle.execute_update(name, body)
            return
        except RPCError as err:
            if err.status != RPCStatusCode.FAILED_PRECONDITION:
                raise
            await asyncio.sleep(0.5)
    history = await handle.fetch_history()
    failed = [e.workflow_task_failed_event_attributes for e in history.events
              if e.HasField("workflow_task_failed_event_attributes")]  # fmt: skip
    why = failed[-1].failure.message if failed else "no failed workflow task"
    raise AssertionError(f"{handle.id}: {name} never accepted: {why}")


async def wait_closed(client: Client, workflow_id: str, timeout: float) -> Any:
    handle = client.get_workflow_handle(workflow_id)
    deadline = time.monotonic() + timeout
    while True:
        try:
            description = await handle.describe()
            if description.status != WorkflowExecutionStatus.RUNNING:
                return description
        except Exception:
            pass
        assert time.monotonic() < deadline, f"{workflow_id} did not close"
        await asyncio.sleep(0.5)


async def test_three_workers_and_the_api_share_a_postgresql_ledger_through_sigkills(
    local_env: WorkflowEnvironment, postgres: PostgresCluster, tmp_path: Path
) -> None:
    client = local_env.client
    db_url = postgres.new_database()
    task_queue = f"cluster-{uuid.uuid4().hex[:8]}"
    owner = f"octo{uuid.uuid4().hex[:6]}"
    sink, github = NotificationSink(), FakeGitHub()
    async with serving(sink.app()) as sink_url, serving(github.app()) as github_url:
        env = os.environ | {
            "TEMPORAL_ADDRESS": client.service_client.config.target_host,
            "SELFHEAL_TASK_QUEUE": task_queue,
            "SELFHEAL_DB_URL": db_url,
            "SELFHEAL_DATA_DIR": str(tmp_path / "data"),
            "SELFHEAL_CONFIG": str(team_config(tmp_path / "selfheal.toml", sink_url)),
            "SELFHEAL_TIME_SCALE": str(TIME_SCALE),
            "SELFHEAL_GITHUB_SECRET": SECRET,
            "SELFHEAL_GITHUB_API": github_url,
            "SELFHEAL_GITHUB_TOKEN": "t0ken",
            "SELFHEAL_DEV_CHANNEL_URL": f"{sink_url}/dev",
            "SELFHEAL_CEO_CHANNEL_URL": f"{sink_url}/ceo",
        }
        upgrade = subprocess.run(
            [sys.executable, "-m", "starter.cli", "db", "upgrade"],
            cwd=ROOT, env=env, capture_output=True, text=True, timeout=120,
        )  # fmt: skip
        assert upgrade.returncode == 0, upgrade.stderr
        settings = Settings(
            data_dir=tmp_path / "data", task_queue=task_queue, time_scale=TIME_SCALE
        )
        repo = rr.make_repo(tmp_path / "repo")

        fleet = Fleet(env | {"SELFHEAL_DB_MIGRATE": "false"})
        chaos = None
        try:
            async with api_process(env) as api:
                chaos = asyncio.create_task(fleet.chaos(every=4.0, rng=random.Random(8)))
                scripts = [(s, state, n) for s, state, n, count in MIX for _ in range(count)]
                random.Random(12).shuffle(scripts)
                blocked = set(random.Random(3).sample(
                    [i for i, (s, _, _) in enumerate(scripts) if s == "transient,ok"], BLOCKED
                ))  # fmt: skip
                handles = []
                for i, (script, _, _) in enumerate(scripts):
                    task = build_task_input(
                        settings,
                        agent=("SAM", "ALEX", "LEO")[i % 3],
                        title=f"cluster task {i}",
                        task_id=f"cl-{task_queue}-{i}",
                        adapter=AdapterSpec(kind="sim", sim=script),
                    )
                    handles.append(await start_task(client, settings, task))
                    if i in blocked:  # an Update: it answers once the workflow has taken it
                        await update(handles[i], "mark_blocked", {"reason": "no credentials"})
                pairs = await deliver_pull_requests(api, owner)
                shas, culprits = await asyncio.to_thread(commit_burst, repo, env)
                await asyncio.sleep(2)
                for i in blocked:
                    await update(handles[i], "resolve", {"note": "credentials in"})

                finals: list[TaskStatus] = await asyncio.wait_for(
                    asyncio.gather(*(task_outcome(h) for h in handles)), 240
                )
                guards = [
                    await wait_closed(client, guard_workflow_id(repo.name, str(repo), sha), 240)
                    for sha in shas
                ]
                reviews = [
                    await wait_closed(client, f"pr-{owner}-web-{n}-{sha[:12]}", 240)
                    for n, sha in pairs
                ]
                chaos.cancel()
                # The failed tasks' ladders: the lead at once, the CEO 60 policy minutes later.
                ceo_due = time.monotonic() + 60 * 60 / TIME_SCALE + 30
                while len(sink.to("/ceo")) < sum(1 for s in finals if s.state == "failed"):
                    assert time.monotonic() < ceo_due, "the CEO step of a failed task never came"
                    await asyncio.sleep(0.5)
                await asyncio.sleep(2)  # anything still in flight lands (or would duplicate)
        finally:
            if chaos is not None:
                chaos.cancel()
            codes = await fleet.stop()

    assert fleet.kills >= 3, "the chaos never struck"
    assert codes == [0, 0, 0], "a worker did not stop cleanly on SIGTERM"

    # Every task in the state its script implies.
    for i, (status, (script, state, n)) in enumerate(zip(finals, scripts, strict=True)):
        assert status.state == state, (script, status.state, status.attempts)
        assert len(status.attempts) == n, (script, [a.outcome for a in status.attempts])
        if i in blocked:
            assert [x.status for x in status.incidents if x.kind == "blocked"] == ["resolved"]
        # A killed worker's attempt is silent until its heartbeat times out: that may open a
        # stuck incident, which the attempt's end resolves. Only a final failure's incident stays
        # open: its ladder outlives the task (lead, then CEO).
        assert all(
            x.status in ("resolved", "closed") for x in status.incidents if x.kind != "failed"
        ), status.incidents

    # Each culprit reverted once; the branch ends green.
    log = rr.git(repo, "log", "--format=%B%x00")
    reverted = Counter(line.split()[-1].rstrip(".") for line in log.splitlines()
                       if line.startswith("This reverts commit"))  # fmt: skip
    assert {sha: reverted[sha] for sha in culprits} == dict.fromkeys(culprits, 1)
    assert sum(reverted.values()) == len(culprits)
    assert subprocess.run(rr.BUILD, shell=True, cwd=repo, capture_output=True).returncode == 0
    assert all(g.status == WorkflowExecutionStatus.COMPLETED for g in guards)

    # One review per PR head, each completed, its commit status ending in success.
    assert all(r.status == WorkflowExecutionStatus.COMPLETED for r in reviews)
    for _, sha in pairs:
        assert github.states(sha)[-1] == "success"

    # The ledger: one row per task and per attempt, as the status documents say.
    ledger = Ledger(db_url)
    task_rows = ledger.rows(tasks)
    assert len({r["workflow_id"] for r in task_rows}) == len(task_rows)
    for status in finals:
        rows = ledger.rows(tasks, workflow_id=status.workflow_id)
        assert len(rows) == 1 and rows[0]["state"] == status.state
        numbers = sorted(r["n"] for r in ledger.rows(attempts, workflow_id=status.workflow_id))
        assert numbers == list(range(1, len(status.attempts) + 1))
    incident_keys = [r["key"] for r in ledger.rows(incidents)]
    assert len(incident_keys) == len(set(incident_keys))

    # Each escalation step that fired was notified once: one ledger row per (incident, step),
    # every one delivered, and nothing delivered that the ledger does not know.
    fired = {(f"{s.workflow_id}#{e.incident}", e.step) for s in finals for e in s.escalations}
    assert len(fired) >= 2 * sum(1 for s in finals if s.state == "failed")
    sent = ledger.rows(notifications)
    steps = Counter((r["incident_key"], r["step"]) for r in sent if r["step"])
    assert all(count == 1 for count in steps.values()), steps
    assert fired <= set(steps)
    assert all(r["status"] == "sent" for r in sent if (r["incident_key"], r["step"]) in fired)
    ledger_keys = {r["idempotency_key"] for r in sent}
    assert set(sink.keys()) <= ledger_keys
