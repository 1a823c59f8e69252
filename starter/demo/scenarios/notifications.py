"""Notifications: what the other scenarios sent to the channels and agents (the demo's inbox),
and the seed's CEO-alert budget. It runs after them (phase 1), so it counts everything."""

from starter.demo.scenario import DemoContext, Metric, Scenario, ScenarioResult


async def run(ctx: DemoContext) -> ScenarioResult:
    assert ctx.inbox is not None, "the notifications check needs the demo's inbox"
    notices = ctx.inbox.notices
    paths = sorted({n.path for n in notices})
    ctx.report(f"{len(notices)} notices to {len(paths)} inboxes")
    result = ScenarioResult("notifications", ["channel", "notices", "last"])
    for path in paths:
        sent = [n for n in notices if n.path == path]
        result.rows.append([path, str(len(sent)), sent[-1].text[:90]])
    ceo = len([n for n in notices if n.path == "/ceo"])
    result.metrics.append(
        Metric("CEO channel alerts", f"{ceo} in this run", "< 1 per day", ceo == 0)
    )
    return result


SCENARIO = Scenario(
    "notifications", run, metrics=("CEO channel alerts",), order=90, phase=1, policy_time=0
)
