"""``selfheal dev|demo|worker|api``: the long-running ways in."""

import argparse
import asyncio
import contextlib
import os
import shutil
import signal
from collections.abc import Coroutine
from datetime import timedelta
from pathlib import Path
from typing import Any

from temporalio.client import Client
from temporalio.runtime import PrometheusConfig, Runtime, TelemetryConfig
from temporalio.worker import Worker

from selfheal.config import Settings, load_settings
from selfheal.plugins import SelfHealing
from starter import stack
from starter.api.app import create_app, make_server
from starter.cli.commands import add_command
from starter.client import connect
from starter.devserver import DevServer, free_port, port_is_free
from starter.schedules import apply_schedules


def register(sub: argparse._SubParsersAction) -> None:
    dev = add_command(sub, "dev")
    dev.add_argument("--data-dir", type=Path, help="default: SELFHEAL_DATA_DIR or .selfheal")
    dev.add_argument("--port", type=int, default=7233, help="Temporal gRPC port")
    dev.add_argument("--ui-port", type=int, default=8233, help="Temporal web UI port")
    dev.add_argument("--api-port", type=int, default=8080, help="selfheal API port")
    dev.set_defaults(handler=run_dev)

    demo = add_command(sub, "demo")
    demo.add_argument("--time-scale", type=float, default=60.0, help="divide policy durations by N")
    demo.add_argument("--data-dir", type=Path, help="default: SELFHEAL_DATA_DIR or .selfheal")
    demo.add_argument("--json", action="store_true", help="print the metrics as JSON too")
    demo.add_argument(
        "--serve", action="store_true", help="keep the stack, the health page and the UI up after"
    )
    demo.add_argument("--api-port", type=int, default=8080, help="the page's port with --serve")
    demo.set_defaults(handler=run_demo)

    worker = add_command(sub, "worker")
    worker.add_argument(
        "--metrics-port", type=int, help="serve the Temporal SDK's Prometheus metrics on this port"
    )
    worker.add_argument("--metrics-host", default="127.0.0.1", help="default: 127.0.0.1")
    worker.add_argument(
        "--shutdown-grace",
        type=float,
        default=30.0,
        help="seconds running activities get to finish after SIGTERM (default 30)",
    )
    worker.set_defaults(handler=run_worker)

    api = add_command(sub, "api")
    api.add_argument("--host", default="127.0.0.1")
    api.add_argument("--port", type=int, default=8080)
    api.set_defaults(handler=run_api)


def _settings(args: argparse.Namespace, **overrides: Any) -> Settings:
    settings = load_settings(args.config)
    if getattr(args, "data_dir", None):
        overrides["data_dir"] = args.data_dir
    return settings.model_copy(update=overrides) if overrides else settings


async def run_until_first_exits(*coroutines: Coroutine[Any, Any, Any]) -> None:
    tasks = [asyncio.ensure_future(c) for c in coroutines]
    try:
        done, _ = await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
        for task in done:
            task.result()
    finally:
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task


async def run_dev(args: argparse.Namespace) -> int:
    settings = _settings(args)
    if not port_is_free(args.api_port):
        raise ValueError(f"port {args.api_port} is in use; pick --api-port")
    async with DevServer(settings.data_dir, args.port, args.ui_port) as server:
        client = await connect(target_host=server.address, namespace="default")
        worker = Worker(client, task_queue=settings.task_queue, plugins=[SelfHealing(settings)])
        api = make_server(create_app(settings, client, ui_url=server.ui_url), port=args.api_port)
        await apply_schedules(client, settings)
        api_url = f"http://127.0.0.1:{args.api_port}"
        print(f"Temporal  {server.address}  (namespace default, data {settings.data_dir})")
        print(f"Web UI    {server.ui_url}")
        print(f"API       {api_url}  (GET /healthz)")
        print(f"Health    {api_url}/  (schedule selfheal-health-probe)")
        print(f"Worker    task queue {settings.task_queue}.  Ctrl-C stops all.", flush=True)
        # `pr replay` (and anything else that talks to the API) finds this stack's port here.
        with stack.announced(
            settings.data_dir, api_url=api_url, temporal=server.address, ui_url=server.ui_url
        ):
            await run_until_first_exits(worker.run(), api.serve())
    return 0


def metrics_runtime(host: str, port: int) -> Runtime:
    """A runtime whose SDK metrics (temporal_*) are served for Prometheus at host:port."""
    if not 0 < port < 65536:
        raise ValueError(f"--metrics-port must be 1-65535, got {port}")
    if not port_is_free(port, host):
        raise ValueError(f"--metrics-port {port} is in use on {host}")
    prometheus = PrometheusConfig(bind_address=f"{host}:{port}")
    return Runtime(telemetry=TelemetryConfig(metrics=prometheus))


async def run_worker(args: argparse.Namespace) -> int:
    settings = _settings(args)
    if args.shutdown_grace < 0:
        raise ValueError(f"--shutdown-grace must not be negative, got {args.shutdown_grace:g}")
    overrides: dict[str, Any] = {}
    if args.metrics_port is not None:
        overrides["runtime"] = metrics_runtime(args.metrics_host, args.metrics_port)
    client = await connect(**overrides)
    worker = Worker(
        client,
        task_queue=settings.task_queue,
        plugins=[SelfHealing(settings)],
        graceful_shutdown_timeout=timedelta(seconds=args.shutdown_grace),
    )
    print(f"selfheal worker on task queue {settings.task_queue}", flush=True)
    if args.metrics_port is not None:
        print(f"SDK metrics on http://{args.metrics_host}:{args.metrics_port}/metrics", flush=True)
    await run_until_signalled(worker)
    return 0


async def run_until_signalled(worker: Worker) -> None:
    """Run the worker until SIGTERM or SIGINT, then shut it down gracefully: it stops polling,
    running activities get the grace period to finish, and the rest are cancelled and handed back
    to Temporal, whose retry policies run them on another worker."""
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    running = asyncio.ensure_future(worker.run())
    stopping = asyncio.ensure_future(stop.wait())
    try:
        await asyncio.wait({running, stopping}, return_when=asyncio.FIRST_COMPLETED)
        if not running.done():
            print("selfheal worker: stopping (SIGTERM); finishing running activities", flush=True)
            await worker.shutdown()
        await running
    finally:
        stopping.cancel()
        for signum in (signal.SIGTERM, signal.SIGINT):
            loop.remove_signal_handler(signum)


async def run_api(args: argparse.Namespace) -> int:
    settings = _settings(args)
    app = create_app(settings, await connect(), host=args.host)
    print(f"selfheal API on http://{args.host}:{args.port}  (health page at /)", flush=True)
    await make_server(app, host=args.host, port=args.port).serve()
    return 0


async def serve_after_demo(
    settings: Settings, client: Client, ui_url: str | None, api_port: int
) -> None:
    """``demo --serve``: the demo's worker, API and health page stay up until Ctrl-C."""
    worker = Worker(client, task_queue=settings.task_queue, plugins=[SelfHealing(settings)])
    api = make_server(create_app(settings, client, ui_url=ui_url), port=api_port)
    await apply_schedules(client, settings)
    print(
        f"\nHealth page  http://127.0.0.1:{api_port}/   (JSON: /api/health, Prometheus: /metrics)"
    )
    if ui_url:
        print(f"Temporal UI  {ui_url}")
    print("The demo's stack stays up: Ctrl-C stops it.", flush=True)
    await run_until_first_exits(worker.run(), api.serve())


async def run_demo(args: argparse.Namespace) -> int:
    from starter.demo.runner import run_scenarios
    from starter.logs import log_to_file

    if args.time_scale <= 0:
        raise ValueError(f"--time-scale must be positive, got {args.time_scale:g}")
    settings = _settings(args, time_scale=args.time_scale)
    # The demo keeps its own server state and ledger, fresh each run, apart from `selfheal dev`'s.
    demo_dir = settings.data_dir / "demo"
    shutil.rmtree(demo_dir, ignore_errors=True)
    settings = settings.model_copy(update={"data_dir": demo_dir})
    # The SDK's and the Temporal core's logs go to a file: the terminal shows the demo only.
    log_file = log_to_file(demo_dir / "demo.log")
    print(f"selfheal demo: logs in {log_file}", flush=True)
    if args.serve and not port_is_free(args.api_port):
        raise ValueError(f"port {args.api_port} is in use; pick --api-port")
    if os.environ.get("TEMPORAL_ADDRESS"):
        client = await connect()
        code = await run_scenarios(settings, client, ui_url=None, as_json=args.json)
        if args.serve:
            await serve_after_demo(settings, client, None, args.api_port)
        return code
    port = 7233 if port_is_free(7233) and port_is_free(8233) else free_port()
    ui_port = 8233 if port == 7233 else free_port()
    print(f"selfheal demo: starting a Temporal dev server on 127.0.0.1:{port}", flush=True)
    async with DevServer(demo_dir, port, ui_port) as server:
        client = await connect(target_host=server.address, namespace="default")
        code = await run_scenarios(settings, client, ui_url=server.ui_url, as_json=args.json)
        if args.serve:
            await serve_after_demo(settings, client, server.ui_url, args.api_port)
    print(
        f"(the demo's server has stopped; browse its workflows with "
        f"`selfheal dev --data-dir {demo_dir}`)"
    )
    return code
