"""HealthProbe's side effects: probe each agent's availability, and write the samples.

An http agent is up when its health URL (``health_url``, else its ``url``) answers below 500
within the timeout: a URL that hangs counts as down. A command agent is up when its executable
resolves; a sim agent always is. A sample is "held" when an open stuck/blocked incident holds
the agent at that moment (read in the same transaction as the write).
"""

import asyncio
import os
import shlex
import shutil
import time

import httpx
from temporalio import activity

from activities.ledger import Ledger
from selfheal.config import AgentConfig, Settings
from selfheal.health import AgentSample, ProbeRequest, ProbeResult, ProbeSummary, SampleBatch


async def probe_agent(name: str, agent: AgentConfig, timeout: float) -> AgentSample:
    began = time.perf_counter()

    def sample(available: bool, detail: str) -> AgentSample:
        ms = (time.perf_counter() - began) * 1000
        return AgentSample(agent=name, available=available, detail=detail, latency_ms=ms)

    if agent.adapter == "sim":
        return sample(True, "")
    if agent.adapter == "command":
        if not agent.command:
            return sample(True, "tasks bring their own command")
        try:
            program = shlex.split(agent.command)[0]
        except (ValueError, IndexError):
            return sample(False, "its command cannot be parsed")
        found = shutil.which(program) if os.sep not in program else (
            program if os.access(program, os.X_OK) else None
        )  # fmt: skip
        return sample(bool(found), f"{program} found" if found else f"{program} not found")
    url = getattr(agent, "health_url", None) or agent.url
    if not url:
        return sample(False, "http agent without a url")
    try:
        async with httpx.AsyncClient(timeout=timeout) as http:
            answer = await asyncio.wait_for(http.get(url), timeout)
    except (TimeoutError, httpx.TimeoutException):
        return sample(False, f"no answer within {timeout:g}s")
    except httpx.HTTPError as err:
        return sample(False, f"unreachable: {type(err).__name__}")
    return sample(answer.status_code < 500, f"HTTP {answer.status_code}")


class HealthActivities:
    def __init__(self, settings: Settings, ledger: Ledger) -> None:
        self.settings, self.ledger = settings, ledger

    @activity.defn(name="health.probe_agents")
    async def probe_agents(self, request: ProbeRequest) -> ProbeResult:
        samples = await asyncio.gather(
            *(probe_agent(n, a, request.timeout) for n, a in self.settings.agents.items())
        )
        return ProbeResult(samples=list(samples))

    @activity.defn(name="health.record_samples")
    async def record_samples(self, batch: SampleBatch) -> ProbeSummary:
        return await asyncio.to_thread(self._record, batch)

    def _record(self, batch: SampleBatch) -> ProbeSummary:
        rows = [
            {"agent": s.agent, "available": s.available, "detail": s.detail[:500],
             "latency_ms": s.latency_ms}
            for s in batch.samples
        ]  # fmt: skip
        held = self.ledger.record_uptime_samples(batch.at, rows)
        return ProbeSummary(
            at=batch.at,
            up=[s.agent for s in batch.samples if s.available and s.agent not in held],
            down=[s.agent for s in batch.samples if not s.available],
            held=sorted(held & {s.agent for s in batch.samples}),
        )
