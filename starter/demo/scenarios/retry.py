"""Auto-retry (M2.1): sim tasks across the team recover on the ladder, or stop when they must."""

import asyncio
import contextlib
import uuid
from dataclasses import dataclass

from temporalio.service import RPCError

from selfheal.models import AdapterSpec, TaskStatus
from starter.client import build_task_input, start_task, task_outcome
from starter.demo.scenario import DemoContext, Metric, Scenario, ScenarioResult
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
            # Too late if the ladder already reached its last step (the CEO alert then shows).
            with contextlib.suppress(RPCError):
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
    ctx.report(f"{len(handles)} tasks started, each failing as its sim script says")
    leads: dict[str, str | None] = {}
    statuses: list[TaskStatus] = await _finals(ctx, handles, leads)

    result = ScenarioResult(
        "auto-retry (M2.1)",
        ["task", "sim", "attempts", "agents", "strategies", "state", "escalated to", "workflow"],
    )
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
        f"{attempts} attempts)", "> 80%", rate > 0.8, note=why_counted(statuses, leads),
    ))  # fmt: skip
    return result


async def _finals(
    ctx: DemoContext, handles: list, leads: dict[str, str | None]
) -> list[TaskStatus]:
    """Every task's final status, in start order, reporting each end as it comes; a task that
    failed for good is handed to the lead at once (``leads``: task id → lead)."""
    finals: dict[int, TaskStatus] = {}

    async def final(i: int) -> None:
        status = await task_outcome(handles[i])
        if status.state == "failed":
            ctx.report(f"{status.title!r} failed for good; the lead takes it over")
            leads[status.id] = await _lead_takes_over(ctx, status)
        finals[i] = status
        ended = list(finals.values())
        recovered, failed_once = retry_success_rate(ended)
        ctx.report(
            f"{len(ended)}/{len(handles)} tasks ended: {recovered} recovered after a failure, "
            f"{failed_once - recovered} failed for good, {len(ended) - failed_once} never failed"
        )

    await asyncio.gather(*(final(i) for i in range(len(handles))))
    return [finals[i] for i in range(len(handles))]


def why_counted(statuses: list[TaskStatus], leads: dict[str, str | None]) -> str:
    """Which tasks the retry success rate counts, and why the others are not recoveries."""
    never = [s for s in statuses if not any(a.outcome == "failed" for a in s.attempts)]
    failed_once = [s for s in statuses if s not in never]
    lost = [s for s in failed_once if s.state != "succeeded"]
    text = (
        f"counts the {len(failed_once)} of {len(statuses)} tasks that failed at least once"
        + (f" ({_titles(never)} succeeded at once, so not counted)" if never else "")
        + f"; {len(failed_once) - len(lost)} of them recovered on the ladder"
    )
    for s in lost:
        last = s.attempts[-1] if s.attempts else None
        if last and last.error_kind == "permanent":
            lead = leads.get(s.id)
            text += (
                f"; {s.title!r} fails by design: its error is permanent ({last.error}), which "
                f"stops the ladder at once{f' and goes to the lead, {lead}' if lead else ''}"
            )
        else:
            text += f"; {s.title!r} ended {s.state} after {len(s.attempts)} attempt(s)"
    return text


def _titles(statuses: list[TaskStatus]) -> str:
    return ", ".join(repr(s.title) for s in statuses)


SCENARIO = Scenario(
    "auto-retry (M2.1)", run, metrics=("retry success rate",), order=10, policy_time=45 * 60
)
