"""`selfheal pr replay` follows the running stack: the docs' sample payload, replayed with no URL,
reaches the `selfheal dev` of the data dir on whatever `--api-port` it was given and starts
its review; `SELFHEAL_API_URL` wins over it; a stack that has stopped is not followed."""

import asyncio
import json
import os
import signal
import subprocess
import sys
from pathlib import Path

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route
from temporalio.client import Client

from starter.devserver import free_port
from starter.stack import DEFAULT_API_URL, api_url, running_api_url
from starter.testing import serving
from tests.docs import block
from tests.waiting import eventually
from tests.workers import ROOT, selfheal

SECRET = "replay-test-secret"
SAMPLE_REVIEW = "pr-octo-web-12-0123456789ab"


async def test_the_docs_sample_replays_to_the_running_dev_stack(tmp_path: Path):
    sample = tmp_path / "payload.json"
    sample.write_text(block("docs/pr-review.md", "sample-payload"))
    data = tmp_path / "stack"
    ports = {"port": free_port(), "ui-port": free_port(), "api-port": free_port()}
    env = os.environ | {"SELFHEAL_GITHUB_SECRET": SECRET, "SELFHEAL_DATA_DIR": str(data)}
    env.pop("SELFHEAL_API_URL", None)
    dev = subprocess.Popen(
        [sys.executable, "-m", "starter.cli", "dev", *(f"--{k}={v}" for k, v in ports.items())],
        cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        stdin=subprocess.DEVNULL, start_new_session=True,
    )  # fmt: skip
    try:
        await eventually(lambda: _up(data), timeout=60)
        assert running_api_url(data) == f"http://127.0.0.1:{ports['api-port']}"

        first = await asyncio.to_thread(selfheal, "pr", "replay", str(sample), "--delivery",
                                        "d-1", "--json", env=env)  # fmt: skip
        assert first.returncode == 0, first.stderr
        answer = json.loads(first.stdout)
        assert answer["status"] in (201, 202) and answer["answer"]["workflow_id"] == SAMPLE_REVIEW
        again = await asyncio.to_thread(selfheal, "pr", "replay", str(sample), "--delivery",
                                        "d-1", "--json", env=env)  # fmt: skip
        assert json.loads(again.stdout)["answer"].get("duplicate") is True

        client = await Client.connect(f"127.0.0.1:{ports['port']}")
        review = await asyncio.wait_for(client.get_workflow_handle(SAMPLE_REVIEW).result(), 60)
        assert review["state"] == "succeeded" and review["pr"] == "octo/web#12"

        # SELFHEAL_API_URL wins over the running stack.
        seen: list[str] = []

        async def hook(request: Request) -> JSONResponse:
            seen.append(request.headers["x-hub-signature-256"])
            return JSONResponse({"workflow_id": "elsewhere"}, status_code=201)

        app = Starlette(routes=[Route("/webhooks/github", hook, methods=["POST"])])
        async with serving(app) as url:
            other = await asyncio.to_thread(selfheal, "pr", "replay", str(sample),
                                            env=env | {"SELFHEAL_API_URL": url + "/"})  # fmt: skip
        assert other.returncode == 0 and other.stdout.strip() == "201 elsewhere"
        assert len(seen) == 1 and seen[0].startswith("sha256=")
    finally:
        os.killpg(dev.pid, signal.SIGINT)
        dev.wait(timeout=30)
    assert not (data / "stack.json").exists()
    assert api_url(data, env={}) == DEFAULT_API_URL


async def _up(data: Path) -> bool:
    return running_api_url(data) is not None


def test_a_stack_file_left_by_a_killed_stack_is_not_followed(tmp_path: Path):
    gone = subprocess.Popen([sys.executable, "-c", "pass"])
    gone.wait()
    (tmp_path / "stack.json").write_text(
        json.dumps({"api_url": "http://127.0.0.1:1", "pid": gone.pid})
    )
    assert running_api_url(tmp_path) is None
    assert api_url(tmp_path, env={}) == DEFAULT_API_URL
    assert api_url(tmp_path, env={"SELFHEAL_API_URL": "http://h:9/"}) == "http://h:9"
