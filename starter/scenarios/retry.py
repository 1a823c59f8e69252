"""Auto-retry (M2.1): sim tasks across the team recover on the ladder, or stop when they must."""

import asyncio
import uuid
from dataclasses import dataclass

from selfheal.models import AdapterSpec, TaskStatus
from starter.client import build_task_input, start_task, task_outcome
from starter.demo import DemoContext, Metric, ScenarioResult
from workflows.escalation import Escalation


@dataclass
class Case:
    agent: str
    title: str
    sim: str
    state: str
    strategies: list[str] | None = None
    agents: list[str] | None = None


CASES = [
    Case("SAM", "fix login redirect", "transient,transient,ok", "succeeded",
         strategies=["initial", "same", "fresh"]),
    Case("ALEX", "flaky API client", "transient,ok", "succeeded"),
    Case("LEO", "refactor auth module", "agent,ok", "succeeded", agents=["LEO", "SAM"]),
    Case("SAM", "migrate sessions table", "task,ok", "succeeded",
         strategies=["initial", "alternative"]),
    Case("ALEX", "rotate deploy key", "permanent", "failed", strategies=["initial"]),
    Case("LEO", "add signup tests", "ok", "succeeded", strategies=["initial"]),
    Case("SAM", "bump dependencies", "transient,agent,ok", "succeeded"),
    Case("ALEX", "fix flaky e2e test", "task,transient,ok", "succeeded"),
    Case("LEO", "warm the cache", "agent,task,ok", "succeeded"),
]  # fmt: skip


def retry_success_rate(statuses: list[TaskStatus]) -> tuple[int, int]:
    """(tasks that failed at least once and then succeeded, tasks that failed at least once)."""
    failed_once = [s for s in statuses if any(a.outcome == "failed" for a in s.attempts)]
    return sum(s.state == "succeeded" for s in failed_once), len(failed_once)


async def _lead_takes_over(ctx: DemoContext, status: TaskStatus) -> str | None:
    """A final failure escalates straight to the lead; the lead acknowledges it, so the
    ladder stops before the CEO step."""
    incident = next((i for i in status.incidents if i.kind == "failed"), None)
    if incident is None:
        return None
    escalation = ctx.client.get_workflow_handle(incident.escalation_id)
    for _ in range(300):
        outcome = await escalation.query(Escalation.outcome)
        lead = next((s.target for s in outcome.steps if s.step == "lead"), None)
        if lead:
            await escalation.signal("acknowledge", {"by": lead})
            return lead
        await asyncio.sleep(0.05)
    return None


async def run(ctx: DemoContext) -> ScenarioResult:
    run_id = uuid.uuid4().hex[:6]
    handles = []
    for i, case in enumerate(CASES):
        input = build_task_input(
            ctx.settings,
            agent=case.agent,
            title=case.title,
            adapter=AdapterSpec(kind="sim", sim=case.sim),
            task_id=f"demo-{run_id}-{i + 1}",
        )
        handles.append(await start_task(ctx.client, ctx.settings, input))
    statuses: list[TaskStatus] = await asyncio.gather(*(task_outcome(h) for h in handles))
    leads = {s.id: await _lead_takes_over(ctx, s) for s in statuses if s.state == "failed"}

    result = ScenarioResult(
        "auto-retry (M2.1)",
        ["task", "sim", "attempts", "agents", "strategies", "state", "escalated to",
         "Temporal UI"],
    )  # fmt: skip
    for case, status in zip(CASES, statuses, strict=True):
        strategies = [a.strategy for a in status.attempts]
        agents = [a.agent for a in status.attempts]
        result.rows.append([
            status.title, case.sim, str(len(status.attempts)), ",".join(agents),
            ",".join(strategies), status.state, leads.get(status.id) or "-",
            ctx.link(status.workflow_id),
        ])  # fmt: skip
        if status.state != case.state:
            result.failures.append(f"{status.title}: {status.state}, expected {case.state}")
        if case.strategies and strategies != case.strategies:
            result.failures.append(f"{status.title}: strategies {strategies}")
        if case.agents and agents != case.agents:
            result.failures.append(f"{status.title}: agents {agents}")
        if status.state == "failed" and not leads.get(status.id):
            result.failures.append(f"{status.title}: the final failure reached no lead")
    recovered, failed_once = retry_success_rate(statuses)
    rate = recovered / failed_once if failed_once else 0.0
    attempts = sum(len(s.attempts) for s in statuses)
    result.metrics.append(Metric(
        "retry success rate", f"{rate:.1%} ({recovered}/{failed_once}; {len(statuses)} tasks, "
        f"{attempts} attempts)", "> 80%", rate > 0.8,
    ))  # fmt: skip
    return result
