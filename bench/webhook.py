"""Webhook benchmark (M2.3): 1,000 signed deliveries over 50 pull requests, 20 % of them
redeliveries and 3 synchronizes per PR, sent concurrently by a client in another process to the
real API (uvicorn on 127.0.0.1, this process) in front of a real Temporal dev server and a
selfheal worker in a third process, as ``selfheal api`` and ``selfheal worker`` run them.

Prints ack latency p50/p99, deliveries/s, reviews started and duplicates. The bar: p99 < 50 ms,
reviews started = distinct (PR, head sha) pairs, duplicates 0. Exit 0 only if it held.

    .venv/bin/python bench/webhook.py [--deliveries 1000] [--prs 50] [--rate 100] [--concurrency 32]
"""

import argparse
import asyncio
import json
import multiprocessing
import random
import secrets
import statistics
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import httpx  # noqa: E402
from pydantic import SecretStr  # noqa: E402
from temporalio.client import Client  # noqa: E402
from temporalio.contrib.pydantic import pydantic_data_converter  # noqa: E402
from temporalio.testing import WorkflowEnvironment  # noqa: E402
from temporalio.worker import Worker  # noqa: E402

from bench.stats import percentile  # noqa: E402
from selfheal import search_attributes as sa  # noqa: E402
from selfheal.config import Settings  # noqa: E402
from selfheal.plugins import SelfHealing  # noqa: E402
from starter.api.app import create_app, make_server  # noqa: E402
from starter.api.webhook import PATH  # noqa: E402
from starter.devserver import free_port  # noqa: E402
from starter.testing import pull_request_event, signed_headers  # noqa: E402

FILLERS = ["labeled", "edited", "review_requested", "assigned"]
SYNCHRONIZES = 3


def deliveries(total: int, prs: int, redelivery_share: float, seed: int) -> list[dict[str, Any]]:
    """Originals round-robin over the PRs (each PR's events in order), then redeliveries of
    earlier originals mixed in; each item is one POST: event, delivery id, body."""
    rng = random.Random(seed)
    originals_n = round(total * (1 - redelivery_share))
    per_pr = [[] for _ in range(prs)]
    run = uuid.uuid4().hex[:6]
    for n in range(prs):
        shas = [secrets.token_hex(20) for _ in range(SYNCHRONIZES + 1)]
        stamp = f"2026-01-01T{n % 24:02d}:{{:02d}}:00Z"
        events = [pull_request_event("opened", shas[0], repo=f"bench-{run}", number=n + 1,
                                     updated_at=stamp.format(0))]  # fmt: skip
        for k in range(1, SYNCHRONIZES + 1):
            events.append(pull_request_event(
                "synchronize", shas[k], repo=f"bench-{run}", number=n + 1, before=shas[k - 1],
                updated_at=stamp.format(k * 10)))  # fmt: skip
        per_pr[n] = events
    originals: list[dict[str, Any]] = []
    i = 0
    while len(originals) < originals_n:
        n = i % prs
        events = per_pr[n]
        pos = i // prs
        if pos < len(events):
            payload = events[pos]
        else:  # past the reviewable events: actions that are answered 202
            last = events[-1]["pull_request"]["head"]["sha"]
            payload = pull_request_event(rng.choice(FILLERS), last, repo=f"bench-{run}",
                                         number=n + 1)  # fmt: skip
        originals.append({"event": "pull_request", "delivery": str(uuid.uuid4()),
                          "body": json.dumps(payload)})  # fmt: skip
        i += 1
    out = list(originals)
    for _ in range(total - originals_n):
        at = rng.randrange(1, len(out) + 1)
        out.insert(at, dict(rng.choice(out[:at])))
    return out


def client_process(url: str, secret: str, items: list[dict[str, Any]], rate: float,
                   concurrency: int, conn: Any) -> None:  # fmt: skip
    """Runs in its own process. With ``rate`` > 0, deliveries are sent open-loop, as GitHub
    sends them: delivery i leaves at i / rate seconds whatever the earlier answers (at most
    ``concurrency`` in flight). With ``rate`` 0, ``concurrency`` senders go as fast as the
    server answers (a throughput run, where latency is mostly queueing)."""

    async def main() -> dict[str, Any]:
        results: list[tuple[float, int, dict[str, Any]]] = [(0.0, 0, {})] * len(items)
        limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
        gate = asyncio.Semaphore(concurrency)
        async with httpx.AsyncClient(timeout=30, limits=limits) as http:
            # warm the connections and the server's code paths before timing
            await asyncio.gather(*(http.post(url, content=b"{}", headers=signed_headers(
                secret, b"{}", "ping", "warm")) for _ in range(concurrency)))  # fmt: skip

            async def send(index: int) -> None:
                item = items[index]
                body = item["body"].encode()
                headers = signed_headers(secret, body, item["event"], item["delivery"])
                async with gate:
                    began = time.perf_counter()
                    response = await http.post(url, content=body, headers=headers)
                    results[index] = (time.perf_counter() - began, response.status_code,
                                      response.json())  # fmt: skip

            began = time.perf_counter()
            if rate > 0:
                tasks = []
                for index in range(len(items)):
                    delay = began + index / rate - time.perf_counter()
                    if delay > 0:
                        await asyncio.sleep(delay)
                    tasks.append(asyncio.create_task(send(index)))
                await asyncio.gather(*tasks)
            else:
                queue = list(range(len(items)))[::-1]

                async def sender() -> None:
                    while queue:
                        await send(queue.pop())

                await asyncio.gather(*(sender() for _ in range(concurrency)))
            elapsed = time.perf_counter() - began
        return {"elapsed": elapsed, "results": results}

    conn.send(asyncio.run(main()))
    conn.close()


def worker_process(target: str, settings_json: str, run: bool, ready: Any, stop: Any) -> None:
    """Runs in its own process: a selfheal worker, as `selfheal worker` would be (with ``run``
    false it only waits, so the reviews queue and Temporal does nothing but accept starts)."""

    async def main() -> None:
        settings = Settings.model_validate_json(settings_json)
        if not run:
            ready.set()
            await asyncio.to_thread(stop.wait, 600)
            return
        client = await Client.connect(target, data_converter=pydantic_data_converter)
        async with Worker(client, task_queue=settings.task_queue,
                          plugins=[SelfHealing(settings)]):  # fmt: skip
            ready.set()
            await asyncio.to_thread(stop.wait, 600)

    asyncio.run(main())


async def bench(args: argparse.Namespace) -> int:
    items = deliveries(args.deliveries, args.prs, args.redeliveries, args.seed)
    secret = secrets.token_hex(16)
    with tempfile.TemporaryDirectory() as tmp:
        settings = Settings(data_dir=Path(tmp), task_queue=f"bench-{uuid.uuid4().hex[:8]}",
                            time_scale=60, github_secret=SecretStr(secret))  # fmt: skip
        env = await WorkflowEnvironment.start_local(
            dev_server_existing_path=str(Path(sys.executable).parent / "temporal"),
            data_converter=pydantic_data_converter, search_attributes=list(sa.ALL),
            dev_server_log_level="error",
        )  # fmt: skip
        try:
            port = free_port()
            server = make_server(create_app(settings, env.client), port=port)
            serving = asyncio.create_task(server.serve())
            for _ in range(500):
                if server.started:
                    break
                await asyncio.sleep(0.01)
            context = multiprocessing.get_context("spawn")
            ready, stop = context.Event(), context.Event()
            target = env.client.service_client.config.target_host
            config = settings.model_dump_json(exclude={"github_secret"})
            worker = context.Process(
                target=worker_process, args=(target, config, not args.no_worker, ready, stop)
            )
            worker.start()
            try:
                if not await asyncio.to_thread(ready.wait, 60):
                    raise RuntimeError("the worker process did not start")
                ours, theirs = context.Pipe()
                client = context.Process(
                    target=client_process,
                    args=(
                        f"http://127.0.0.1:{port}{PATH}",
                        secret,
                        items,
                        args.rate,
                        args.concurrency,
                        theirs,
                    ),
                )
                client.start()
                sent = await asyncio.to_thread(ours.recv)
                client.join(30)
                reviews = await _count(env, settings.task_queue, expected=_pairs(items))
            finally:
                stop.set()
                await asyncio.to_thread(worker.join, 60)
            server.should_exit = True
            await serving
        finally:
            await env.shutdown()
    return report(args, items, sent, reviews)


def _pairs(items: list[dict[str, Any]]) -> int:
    pairs = set()
    for item in items:
        payload = json.loads(item["body"])
        if payload.get("action") in ("opened", "synchronize"):
            pr = payload["pull_request"]
            pairs.add((pr["number"], pr["head"]["sha"]))
    return len(pairs)


async def _count(env: WorkflowEnvironment, task_queue: str, expected: int) -> int:
    """PRReview executions Temporal holds for this run (visibility catches up within seconds)."""
    count = 0
    for _ in range(100):
        query = f"WorkflowType = 'PRReview' AND TaskQueue = '{task_queue}'"
        count = (await env.client.count_workflows(query)).count
        if count >= expected:
            break
        await asyncio.sleep(0.1)
    return count


def report(
    args: argparse.Namespace, items: list[dict[str, Any]], sent: dict[str, Any], in_temporal: int
) -> int:
    latencies = [r[0] * 1000 for r in sent["results"]]
    codes: dict[int, int] = {}
    for _, code, _ in sent["results"]:
        codes[code] = codes.get(code, 0) + 1
    # A review is started by a 201 (Temporal accepted it in time) or a queued 202 (the outbox
    # starts it); a 202 without ``queued`` is an ignored event.
    started = [
        a["workflow_id"]
        for _, code, a in sent["results"]
        if code == 201 or (code == 202 and a.get("queued"))
    ]
    pairs = _pairs(items)
    duplicates = (len(started) - len(set(started))) + max(0, in_temporal - pairs)
    redeliveries = len(items) - len({i["delivery"] for i in items})
    p50, p99 = percentile(latencies, 50), percentile(latencies, 99)
    rate = len(items) / sent["elapsed"]
    prs = len({json.loads(i["body"])["number"] for i in items})
    mode = (f"open-loop at {args.rate:g}/s, at most {args.concurrency} in flight" if args.rate
            else f"closed-loop, {args.concurrency} senders")  # fmt: skip
    mode += ", reviews queued (no worker)" if args.no_worker else ", worker running the reviews"
    print(
        f"webhook bench: {len(items)} signed deliveries over {prs} PRs, {redeliveries} "
        f"redeliveries ({redeliveries / len(items):.0%}), {mode}; "
        f"answers {dict(sorted(codes.items()))}"
    )
    rows = [
        ("ack latency p50", f"{p50:.2f} ms", "", True),
        ("ack latency p99", f"{p99:.2f} ms", "< 50 ms", p99 < 50),
        ("ack latency max", f"{max(latencies):.2f} ms", "", True),
        ("mean", f"{statistics.fmean(latencies):.2f} ms", "", True),
        ("deliveries/s", f"{rate:.0f}", "", True),
        ("reviews started", f"{len(started)} (Temporal holds {in_temporal})",
         f"= {pairs} distinct (PR, sha)", len(started) == pairs == in_temporal),
        ("duplicates", str(duplicates), "0", duplicates == 0),
    ]  # fmt: skip
    for code in sorted(codes):
        of_code = [r[0] * 1000 for r in sent["results"] if r[1] == code]
        rows.insert(-2, (f"  p50/p99 of {code}", f"{percentile(of_code, 50):.2f} / "
                         f"{percentile(of_code, 99):.2f} ms", "", True))  # fmt: skip
    width = max(len(r[0]) for r in rows)
    for name, value, bar, ok in rows:
        check = ("ok" if ok else "FAILED") if bar else ""
        print(f"  {name:<{width}}  {value:<28} {bar:<26} {check}")
    held = all(ok for *_, ok in rows)
    print("bar held" if held else "bar NOT held")
    return 0 if held else 1


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--deliveries", type=int, default=1000)
    parser.add_argument("--prs", type=int, default=50)
    parser.add_argument("--redeliveries", type=float, default=0.2)
    parser.add_argument(
        "--rate",
        type=float,
        default=100.0,
        help="deliveries per second, sent open-loop; 0: as fast as answered",
    )
    parser.add_argument("--concurrency", type=int, default=32, help="most in flight at once")
    parser.add_argument("--seed", type=int, default=5)
    parser.add_argument(
        "--no-worker",
        action="store_true",
        help="do not run the reviews: measure the webhook and Temporal's starts",
    )
    args = parser.parse_args()
    if not (0 < args.prs <= args.deliveries <= 100_000 and 0 <= args.redeliveries < 1
            and 0 < args.concurrency <= 256 and 0 <= args.rate <= 10_000):  # fmt: skip
        parser.error("need 0 < prs <= deliveries <= 100000, 0 <= redeliveries < 1, "
                     "0 < concurrency <= 256, 0 <= rate <= 10000")  # fmt: skip
    raise SystemExit(asyncio.run(bench(args)))


if __name__ == "__main__":
    main()
