"""Workers and CLI runs as real subprocesses, for crash tests and the command line."""

import os
import signal
import subprocess
import sys
from pathlib import Path

from temporalio.testing import WorkflowEnvironment

from selfheal.config import Settings

ROOT = Path(__file__).resolve().parents[1]


def stack_env(env: WorkflowEnvironment, settings: Settings, **extra: str) -> dict[str, str]:
    return os.environ | {
        "TEMPORAL_ADDRESS": env.client.service_client.config.target_host,
        "SELFHEAL_TASK_QUEUE": settings.task_queue,
        "SELFHEAL_DATA_DIR": str(settings.data_dir),
        **extra,
    }


def start_worker(
    env: WorkflowEnvironment, settings: Settings, **extra: str
) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [sys.executable, "-m", "starter.cli", "worker"],
        cwd=ROOT,
        env=stack_env(env, settings, **extra),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )


def kill(process: subprocess.Popen[bytes]) -> None:
    """SIGKILL the worker and everything it started: no shutdown, no cleanup."""
    if process.poll() is None:
        os.killpg(process.pid, signal.SIGKILL)
    process.wait()


def selfheal(
    *args: str, env: dict[str, str] | None = None, timeout: float = 60
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "starter.cli", *args],
        cwd=ROOT,
        env=env or os.environ.copy(),
        capture_output=True,
        text=True,
        timeout=timeout,
        stdin=subprocess.DEVNULL,
    )
