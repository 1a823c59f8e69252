"""Blocker detection (M2.4): one task stalls, one is marked blocked by a signal; the ladder
pings the peer, dispatches the lead, and stops once someone acts, before the CEO hears of it."""

import asyncio
import uuid

from temporalio.client import WorkflowHandle

from selfheal.models import FINAL_STATES, AdapterSpec, TaskStatus
from starter.client import build_task_input, start_task, task_outcome
from starter.demo.scenario import DemoContext, Metric, Scenario, ScenarioResult
from workflows.agent_task import AgentTask


async def _until(handle: WorkflowHandle, ready, timeout: float) -> TaskStatus:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while True:
        status = await handle.query(AgentTask.status)
        if ready(status) or loop.time() > deadline:
            return status
        await asyncio.sleep(0.1)


async def _follow(ctx: DemoContext, handle: WorkflowHandle, who: str) -> None:
    """Report the task's state and escalation steps as they change, until it ends."""
    shown = ""
    while True:
        status = await handle.query(AgentTask.status)
        steps = ", ".join(f"{e.step} {e.target}" for e in status.escalations)
        now = f"{who}'s task: {status.state}" + (f" · escalation steps: {steps}" if steps else "")
        if now != shown:
            ctx.report(now)
            shown = now
        if status.state in FINAL_STATES:
            return
        await asyncio.sleep(0.2)


def _policy_minutes(seconds: float, scale: float) -> float:
    return seconds * scale / 60


async def run(ctx: DemoContext) -> ScenarioResult:
    settings, scale = ctx.settings, ctx.settings.time_scale
    steps = {s.step: s.after / scale for s in settings.policies.escalation.steps}
    run_id = uuid.uuid4().hex[:6]
    # The stall outlasts the lead step but ends well before the CEO step.
    stall = steps["lead"] + (steps["ceo"] - steps["lead"]) / 4
    stalled = build_task_input(
        settings, agent="SAM", title="long schema migration", task_id=f"demo-{run_id}-stall",
        adapter=AdapterSpec(kind="sim", sim=f"stall:{stall:.2f}"),
    )  # fmt: skip
    blocked = build_task_input(
        settings, agent="ALEX", title="deploy to staging", task_id=f"demo-{run_id}-blocked",
        adapter=AdapterSpec(kind="sim", sim="transient,transient,ok"),
    )  # fmt: skip
    stall_handle = await start_task(ctx.client, settings, stalled)
    block_handle = await start_task(ctx.client, settings, blocked)
    ctx.report(f"SAM's task stalls for {stall:.0f}s; ALEX's fails twice (transient)")

    # ALEX's task waits before its third attempt: someone marks it blocked, as
    # `selfheal task block` or `temporal workflow signal --name mark_blocked` would.
    await _until(block_handle, lambda s: len(s.attempts) == 2 and s.state == "retrying", 30)
    await block_handle.signal("mark_blocked", {"reason": "staging credentials expired"})
    ctx.report("ALEX's task marked blocked (signal mark_blocked); waiting for the peer step")
    await _until(block_handle, lambda s: bool(s.escalations), steps["lead"] * 2)
    ctx.report("peer pinged about ALEX's task; MAX acknowledges 20 policy minutes later")
    await asyncio.sleep(steps["peer"] / 3)  # 20 policy minutes after the block
    await block_handle.signal("acknowledge", {"by": "MAX"})
    await block_handle.signal("resolve", {"note": "credentials rotated"})
    ctx.report("ALEX's task resolved")
    await _follow(ctx, stall_handle, "SAM")
    finals = list(await asyncio.gather(task_outcome(stall_handle), task_outcome(block_handle)))

    result = ScenarioResult(
        "blocker detection (M2.4)",
        ["task", "incident", "reason", "escalations (policy min after)", "ended as", "workflow"],
    )
    escalated_after: list[float] = []
    for final in finals:
        incident = final.incidents[0] if final.incidents else None
        if incident is None:
            result.failures.append(f"{final.title}: no incident opened")
            continue
        offsets = [
            (e.step, e.target, _policy_minutes((e.at - incident.since).total_seconds(), scale))
            for e in final.escalations
            if e.incident == incident.n
        ]
        if offsets:
            escalated_after.append(offsets[0][2])
        result.rows.append([
            final.title, f"{incident.kind} → {incident.status}", incident.reason[:40],
            ", ".join(f"{step} {target} @{m:.1f}" for step, target, m in offsets) or "none",
            final.state, ctx.link(final.workflow_id),
        ])  # fmt: skip
        if final.state != "succeeded":
            result.failures.append(f"{final.title}: {final.state}")
        if incident.status != "resolved":
            result.failures.append(f"{final.title}: incident {incident.status}")
    stall_steps = [e.step for e in finals[0].escalations]
    if stall_steps != ["peer", "lead"]:
        result.failures.append(f"stalled task escalations {stall_steps}, expected peer, lead")
    if [e.step for e in finals[1].escalations] != ["peer"]:
        result.failures.append("blocked task: the acknowledgement should stop the ladder")
    worst = max(escalated_after, default=float("inf"))
    stall_incident = finals[0].incidents[0] if finals[0].incidents else None
    flagged = "?"
    if stall_incident and stall_incident.stuck_at:
        seconds = (stall_incident.stuck_at - stall_incident.since).total_seconds()
        flagged = f"{_policy_minutes(seconds, scale):.1f}"
    result.metrics.append(Metric(
        "stuck task escalated",
        f"{worst:.1f} policy min after the last progress (stuck flagged at {flagged} min)",
        "< 30 min",
        worst < 30,
    ))  # fmt: skip
    return result


SCENARIO = Scenario(
    "blocker detection (M2.4)", run, order=20, policy_time=90 * 60,
    metrics=("stuck task escalated",),
)  # fmt: skip
