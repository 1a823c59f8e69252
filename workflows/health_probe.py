"""HealthProbe (M2.6): run by the Temporal Schedule ``selfheal-health-probe`` every minute
(scaled by the time scale). It probes every agent at once and writes one uptime sample per
agent, keyed by the run's time, so a retried write adds nothing. A probe that hangs is cut at
its timeout and counts as down; the schedule goes on."""

from datetime import timedelta

from temporalio import workflow
from temporalio.common import RetryPolicy

with workflow.unsafe.imports_passed_through():
    from activities.health import HealthActivities
    from selfheal.health import HealthProbeInput, ProbeRequest, ProbeSummary, SampleBatch


@workflow.defn(name="HealthProbe")
class HealthProbe:
    @workflow.run
    async def run(self, input: HealthProbeInput) -> ProbeSummary:
        at = workflow.now()
        probed = await workflow.execute_activity_method(
            HealthActivities.probe_agents,
            ProbeRequest(timeout=input.timeout),
            start_to_close_timeout=timedelta(seconds=input.timeout + 10),
            retry_policy=RetryPolicy(maximum_attempts=2),
            summary="probe every agent",
        )
        summary = await workflow.execute_activity_method(
            HealthActivities.record_samples,
            SampleBatch(at=at, samples=probed.samples),
            start_to_close_timeout=timedelta(seconds=30),
            summary=f"record {len(probed.samples)} uptime samples",
        )
        workflow.set_current_details(
            f"up: {', '.join(summary.up) or 'none'} · down: {', '.join(summary.down) or 'none'}"
            f" · held: {', '.join(summary.held) or 'none'}"
        )
        return summary
