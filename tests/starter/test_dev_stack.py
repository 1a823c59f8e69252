"""Two ``selfheal dev`` stacks side by side on one machine, each with its own ports and data dir,
each serving a task end to end; Ctrl-C stops all of a stack."""

import asyncio
import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import httpx

from starter.devserver import free_port, port_is_free
from tests.waiting import eventually
from tests.workers import ROOT, selfheal


def start_dev(data_dir: Path) -> tuple[subprocess.Popen[bytes], dict[str, int]]:
    ports = {"port": free_port(), "ui-port": free_port(), "api-port": free_port()}
    args = [f"--{k}={v}" for k, v in ports.items()]
    process = subprocess.Popen(
        [sys.executable, "-m", "starter.cli", "dev", "--data-dir", str(data_dir), *args],
        cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        stdin=subprocess.DEVNULL, start_new_session=True,
    )  # fmt: skip
    return process, ports


async def test_two_dev_stacks_run_side_by_side(tmp_path: Path):
    stacks = [start_dev(tmp_path / name) for name in ("one", "two")]
    try:
        async with httpx.AsyncClient() as http:
            for _, ports in stacks:

                async def healthy(ports: dict[str, int] = ports) -> bool:
                    try:
                        r = await http.get(f"http://127.0.0.1:{ports['api-port']}/healthz")
                    except httpx.HTTPError:
                        return False
                    return r.status_code == 200 and r.json()["temporal"] == "ok"

                await eventually(healthy, timeout=60)
        for name, (_, ports) in zip(("one", "two"), stacks, strict=True):
            env = os.environ | {
                "TEMPORAL_ADDRESS": f"127.0.0.1:{ports['port']}",
                "SELFHEAL_DATA_DIR": str(tmp_path / name),
                "SELFHEAL_TIME_SCALE": "60",
            }
            result = await asyncio.to_thread(
                selfheal, "task", "start", "--agent", "LEO", "--title", f"stack {name}",
                "--sim", "transient,ok", "--wait", "--json", env=env,
            )  # fmt: skip
            assert result.returncode == 0, result.stderr
            assert json.loads(result.stdout)["state"] == "succeeded"
            assert (tmp_path / name / "temporal.db").exists()
            assert (tmp_path / name / "ledger.db").exists()
    finally:
        for process, _ in stacks:
            if process.poll() is None:
                os.killpg(process.pid, signal.SIGINT)  # what Ctrl-C sends to the terminal's group
        for process, _ in stacks:
            try:
                process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)
                raise
    for _, ports in stacks:
        for port in ports.values():
            assert port_is_free(port)
