"""``agent.run``: one attempt of a task by one agent, through its adapter.

Adapters: ``sim`` (a script of outcomes, for demos, tests and benchmarks), ``command`` (a
subprocess in the task's workspace, run by ``activities.process``: each new output line is
progress and a heartbeat; on cancel or timeout its process group gets TERM, a grace period, then
KILL) and ``http`` (POSTs the task to an agent service, which completes the activity later with
its task token). A failed attempt is a *result*, classified here or by the workflow;
only infrastructure trouble raises, so Temporal's activity retries absorb it.
"""

import asyncio
import base64
import contextlib
import json
import os
import shutil
import time
from collections import deque
from collections.abc import Awaitable, Callable
from pathlib import Path

import httpx
from temporalio import activity
from temporalio.client import Client

from activities.process import run_in_group
from selfheal.config import Settings
from selfheal.durations import format_duration
from selfheal.errors import classify
from selfheal.ids import safe_id
from selfheal.models import AgentRunInput, AgentRunResult
from selfheal.shell import absolute_program, relative_program
from selfheal.sim import mistake_error, mistake_fingerprint, parse_sim_script, step_for_attempt

SIM_ERRORS = {
    "transient": "sim: upstream model API timed out (503)",
    "agent": "sim: agent lost its context window mid-task",
    "task": "sim: tests still fail with this approach",
    "permanent": "sim: no API key configured for the repository",
}
# An agent or task fault is this task's own: its message names the task, so two tasks' faults are
# two fingerprints (as two real failing test runs would be). A mistake that recurs across tasks
# is ``mistake:NAME``; a network blip or a missing key is the same error wherever it happens.
_OWN_FAULTS = {"agent", "task"}
_TAIL_LINES = 40


class ProgressReporter:
    """Heartbeats on every call; tells the workflow about new progress with a
    ``report_progress`` signal, at most once per ``interval`` (the latest note wins)."""

    def __init__(self, send: Callable[[str], Awaitable[None]], interval: float) -> None:
        self._send, self._interval = send, interval
        self._last_sent = float("-inf")
        self._pending: str | None = None
        self._flusher: asyncio.Task[None] | None = None

    def progress(self, note: str) -> None:
        activity.heartbeat({"progress": note[-200:]})
        self._pending = note[-200:]
        wait = self._last_sent + self._interval - time.monotonic()
        if self._flusher is None or self._flusher.done():
            self._flusher = asyncio.create_task(self._flush(max(0.0, wait)))

    async def _flush(self, delay: float) -> None:
        if delay:
            await asyncio.sleep(delay)
        note, self._pending = self._pending, None
        if note is None:
            return
        self._last_sent = time.monotonic()
        try:
            await self._send(note)
        except Exception as err:  # progress is advisory; the attempt goes on
            activity.logger.warning("could not report progress: %s", err)

    async def close(self) -> None:
        if self._flusher and not self._flusher.done():
            self._flusher.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._flusher


class AgentActivities:
    def __init__(self, settings: Settings, client: Client) -> None:
        self.settings = settings
        self.client = client

    @activity.defn(name="agent.run")
    async def run(self, input: AgentRunInput) -> AgentRunResult:
        reporter = ProgressReporter(self._signaller(input.workflow_id), input.progress_interval)
        try:
            if input.adapter.kind == "sim":
                return await self._run_sim(input, reporter)
            if input.adapter.kind == "command":
                return await self._run_command(input, reporter)
            return await self._run_http(input)
        finally:
            await reporter.close()

    def _signaller(self, workflow_id: str) -> Callable[[str], Awaitable[None]]:
        handle = self.client.get_workflow_handle(workflow_id)

        async def send(note: str) -> None:
            await handle.signal("report_progress", {"note": note, "source": "adapter"})

        return send

    async def _run_sim(self, input: AgentRunInput, reporter: ProgressReporter) -> AgentRunResult:
        step = step_for_attempt(parse_sim_script(input.adapter.sim or "ok"), input.attempt)
        if step.kind == "mistake" and step.name:
            fp = mistake_fingerprint(step.name)
            learned = next((h for h in input.hints if h.id and fp in h.fingerprints), None)
            if learned is None:
                return AgentRunResult(
                    outcome="failed", error=mistake_error(step.name), error_kind="task"
                )
            return AgentRunResult(
                outcome="succeeded",
                output=f"sim: {input.title} done; avoided {step.name} thanks to {learned.id}",
            )
        if step.kind in SIM_ERRORS:
            error = SIM_ERRORS[step.kind]
            if step.kind in _OWN_FAULTS:
                error = f"{error} ({input.title})"
            return AgentRunResult(outcome="failed", error=error, error_kind=step.kind)
        if step.kind == "ok":
            return AgentRunResult(outcome="succeeded", output=f"sim: {input.title} done")
        # stall / hang: alive (heartbeating) but making no progress.
        silent_for = input.timeout if step.kind == "hang" else min(step.seconds, input.timeout)
        deadline = time.monotonic() + silent_for
        while (left := deadline - time.monotonic()) > 0:
            activity.heartbeat()
            await asyncio.sleep(min(1.0, left))
        if step.kind == "hang" or step.seconds > input.timeout:
            return _timed_out(input, "")
        reporter.progress("sim: resumed after stall")
        return AgentRunResult(outcome="succeeded", output=f"sim: {input.title} done after stall")

    def workspace(self, input: AgentRunInput) -> Path:
        path = self.settings.data_dir / "workspaces" / safe_id(input.task_id)
        if input.strategy == "fresh" and path.exists():
            shutil.rmtree(path)
        path.mkdir(parents=True, exist_ok=True)
        return path.resolve()

    async def _run_command(
        self, input: AgentRunInput, reporter: ProgressReporter
    ) -> AgentRunResult:
        command = input.adapter.command or self.settings.agent(input.agent).command
        if not command:
            return _not_configured(input, "command")
        workspace = self.workspace(input)
        program = relative_program(command)
        if program and not (workspace / program).exists():
            # Not the workspace's own (a command from the team config, or a task started
            # without the client helpers, which resolve it): the worker's directory.
            command = absolute_program(command, Path.cwd())
        tail: deque[str] = deque(maxlen=_TAIL_LINES)

        def line(text: str) -> None:
            text = text.rstrip()
            tail.append(text)
            if text:
                reporter.progress(text)

        code = await run_in_group(
            command,
            cwd=workspace,
            env=os.environ | _agent_env(input),
            timeout=input.timeout,
            on_line=line,
            heartbeat=activity.heartbeat,
        )
        if code is None:
            return _timed_out(input, "\n".join(tail))
        output = "\n".join(tail)
        if code == 0:
            return AgentRunResult(outcome="succeeded", output=output, exit_code=0)
        error = f"exit code {code}: {output[-1500:]}" if output else f"exit code {code}"
        return AgentRunResult(
            outcome="failed",
            output=output,
            error=error,
            error_kind=classify(output, code),
            exit_code=code,
        )

    async def _run_http(self, input: AgentRunInput) -> AgentRunResult:
        url = input.adapter.url or self.settings.agent(input.agent).url
        if not url:
            return _not_configured(input, "URL")
        body = input.model_dump(mode="json", exclude={"adapter"}) | {
            "task_token": base64.b64encode(activity.info().task_token).decode(),
        }
        async with httpx.AsyncClient(timeout=10.0) as http:
            response = await http.post(url, json=body)
        if response.status_code >= 500 or response.status_code == 429:
            response.raise_for_status()  # the agent service is down: an infrastructure retry
        if response.status_code >= 400:
            return AgentRunResult(
                outcome="failed",
                error=f"agent service refused the task: HTTP {response.status_code} "
                f"{response.text[:500]}",
                error_kind=classify(response.text, None),
            )
        activity.raise_complete_async()


def _agent_env(input: AgentRunInput) -> dict[str, str]:
    return {
        "SELFHEAL_TASK_ID": input.task_id,
        "SELFHEAL_WORKFLOW_ID": input.workflow_id,
        "SELFHEAL_TITLE": input.title,
        "SELFHEAL_DESCRIPTION": input.description,
        "SELFHEAL_AGENT": input.agent,
        "SELFHEAL_ATTEMPT": str(input.attempt),
        "SELFHEAL_STRATEGY": input.strategy,
        "SELFHEAL_PREVIOUS_ERROR": input.previous_error or "",
        "SELFHEAL_HINTS": json.dumps([h.model_dump(mode="json") for h in input.hints]),
        "SELFHEAL_CONTEXT": json.dumps(input.context, default=str),
    }


def _not_configured(input: AgentRunInput, what: str) -> AgentRunResult:
    error = f"no {what} configured for agent {input.agent}"
    return AgentRunResult(outcome="failed", error=error, error_kind="permanent")


def _timed_out(input: AgentRunInput, tail: str) -> AgentRunResult:
    error = f"agent {input.agent} did not finish within {format_duration(input.timeout)}"
    return AgentRunResult(
        outcome="failed",
        output=tail,
        error=f"{error}: {tail[-500:]}" if tail else error,
        error_kind="agent",
    )
