"""Health (M2.6): after the other scenarios, HealthProbe samples every agent, and the health
document (the page's, ``/api/health``'s and ``selfheal status``'s) is read from
what they left in the ledger: per agent uptime, error rate by kind and current task, incidents,
retry success, worker liveness."""

import uuid

from dashboard.page import pct
from dashboard.service import HealthService, LedgerUnavailableError
from selfheal.health import HealthProbeInput
from starter.demo.scenario import DemoContext, Metric, Scenario, ScenarioResult
from workflows.health_probe import HealthProbe


async def run(ctx: DemoContext) -> ScenarioResult:
    result = ScenarioResult(
        "health (M2.6)",
        ["agent", "status", "uptime", "error rate", "errors by kind", "current task"],
    )
    service = HealthService(ctx.settings, ctx.client, ctx.ui_url)
    # What the schedule selfheal-health-probe does every minute (`selfheal dev` and
    # `demo --serve` apply it), run here twice by hand so the demo leaves no schedule behind.
    runs = 2
    for n in range(1, runs + 1):
        ctx.report(f"HealthProbe run {n}: probing every agent")
        summary = await ctx.client.execute_workflow(
            HealthProbe.run,
            HealthProbeInput(timeout=2.0),
            id=f"health-probe-demo-{uuid.uuid4().hex[:8]}",
            task_queue=ctx.settings.task_queue,
        )
        ctx.report(f"HealthProbe run {n}: up {', '.join(summary.up) or 'none'}")
    try:
        doc = await service.document("1h")
    except LedgerUnavailableError as err:
        result.failures.append(str(err))
        return result
    unsampled = [a.name for a in doc.agents if a.samples == 0]
    for a in doc.agents:
        kinds = ", ".join(f"{k} {n}" for k, n in sorted(a.errors_by_kind.items())) or "-"
        current = f"{a.current.state}: {a.current.title}" if a.current else "idle"
        result.rows.append([a.name, a.status, pct(a.uptime), f"{pct(a.error_rate)} of "
                            f"{a.attempts}", kinds, current])  # fmt: skip
    if unsampled:
        result.failures.append(f"no health probe sample for {', '.join(unsampled)}")
    if not doc.workers.up:
        result.failures.append(f"the worker does not show as live: {doc.workers.error or ''}")
    retry = doc.seed.retry_success
    probed = len(doc.agents) - len(unsampled)
    result.metrics.append(
        Metric(
            "health dashboard (M2.6)",
            f"{probed}/{len(doc.agents)} agents probed ({runs} runs), {len(doc.incidents)} "
            "incidents, "
            f"retry success {pct(retry.rate)} ({retry.recovered}/{retry.failed_once})",
            "every agent sampled, worker live",
            not unsampled and doc.workers.up,
            note="(health: the same document as the page, /api/health and `selfheal status`)",
        )
    )
    ctx.report(f"{probed} agents probed; {len(doc.problems)} problem(s)")
    return result


SCENARIO = Scenario(
    "health", run, metrics=("health dashboard (M2.6)",), order=85, phase=1, policy_time=60
)
