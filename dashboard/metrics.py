"""``GET /metrics``: the health figures as Prometheus text (prometheus_client).

Labels are of low cardinality only (agent, outcome, error kind, state, incident kind): never a
task id. Counters are all-time (from the ledger's hourly rollups); gauges are "now".
"""

from collections.abc import Iterator

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)
from prometheus_client.registry import Collector

from dashboard.document import Workers
from dashboard.queries import SETTLED_STATES, LedgerTotals
from dashboard.service import RunningTask

REVERT_BUCKETS = (15.0, 30.0, 60.0, 120.0, 300.0, 600.0, 1800.0, 3600.0)
INCIDENT_KINDS = ("stuck", "blocked", "failed")


class HealthCollector(Collector):
    def __init__(
        self,
        totals: LedgerTotals | None,
        workers: Workers,
        running: list[RunningTask] | None,
        agents: list[str],
    ) -> None:
        self.totals, self.workers, self.running, self.agents = totals, workers, running, agents

    def collect(self) -> Iterator[Metric]:
        yield _gauge("selfheal_ledger_up", "1 when the ledger answered", int(bool(self.totals)))
        yield _gauge(
            "selfheal_temporal_up", "1 when Temporal answered", int(self.workers.reachable)
        )
        pollers = GaugeMetricFamily(
            "selfheal_worker_pollers",
            "Live pollers on the selfheal task queue (worker liveness)",
            labels=["type"],
        )
        pollers.add_metric(["workflow"], self.workers.workflow_pollers)
        pollers.add_metric(["activity"], self.workers.activity_pollers)
        yield pollers
        if self.running is not None:
            running = GaugeMetricFamily(
                "selfheal_tasks_running", "Running tasks by state (Temporal)", labels=["state"]
            )
            states: dict[str, int] = {"running": 0, "retrying": 0, "blocked": 0}
            for task in self.running:
                states[task.state] = states.get(task.state, 0) + 1
            for state, n in sorted(states.items()):
                running.add_metric([state], n)
            yield running
        if self.totals is not None:
            yield from self._ledger(self.totals)

    def _ledger(self, t: LedgerTotals) -> Iterator[Metric]:
        attempts = CounterMetricFamily(
            "selfheal_attempts",
            "Finished agent attempts by outcome and error kind",
            labels=["agent", "outcome", "error_kind"],
        )
        for (agent, outcome, kind), n in sorted(t.attempts.items(), key=str):
            attempts.add_metric([agent, outcome, kind or "none"], n)
        yield attempts
        settled = CounterMetricFamily(
            "selfheal_tasks", "Tasks that reached a final state", labels=["state"]
        )
        for state in SETTLED_STATES:
            settled.add_metric([state], t.settled_tasks.get((state,), 0))
        yield settled
        opened = CounterMetricFamily(
            "selfheal_incidents", "Incidents opened, by kind", labels=["kind"]
        )
        open_now = GaugeMetricFamily(
            "selfheal_incidents_open", "Incidents open or acknowledged now", labels=["kind"]
        )
        kinds = sorted(
            {*INCIDENT_KINDS, *(k for (k,) in t.incidents), *(k for (k,) in t.open_incidents)}
        )
        for kind in kinds:
            opened.add_metric([kind], t.incidents.get((kind,), 0))
            open_now.add_metric([kind], t.open_incidents.get((kind,), 0))
        yield opened
        yield open_now
        up = GaugeMetricFamily(
            "selfheal_agent_up",
            "1 when the agent's last probe answered and no stuck/blocked incident holds it",
            labels=["agent"],
        )
        uptime = GaugeMetricFamily(
            "selfheal_agent_uptime_ratio", "Share of up probe samples over 24 h", labels=["agent"]
        )
        for agent in self.agents:
            if t.agent_up.get(agent) is not None:
                up.add_metric([agent], int(bool(t.agent_up[agent])))
            if t.uptime_24h.get(agent) is not None:
                uptime.add_metric([agent], t.uptime_24h[agent])  # type: ignore[arg-type]
        yield up
        yield uptime
        ratio = GaugeMetricFamily(
            "selfheal_retry_success_ratio",
            "Tasks settled in 24 h that failed at least once: share that then succeeded",
        )
        if t.retry_24h.rate is not None:
            ratio.add_metric([], t.retry_24h.rate)
        yield ratio
        buckets = [(str(b), sum(s <= b for s in t.reverts_s)) for b in REVERT_BUCKETS]
        yield HistogramMetricFamily(
            "selfheal_revert_seconds",
            "Breaking commit to its revert, seconds",
            buckets=[*buckets, ("+Inf", len(t.reverts_s))],
            sum_value=sum(t.reverts_s),
        )
        yield CounterMetricFamily("selfheal_ceo_alerts", "Notices to the CEO channel", t.ceo_alerts)
        yield CounterMetricFamily("selfheal_pr_events", "Review-worthy PR events", t.pr_events)
        yield CounterMetricFamily(
            "selfheal_pr_reviews_started", "PR events whose review started", t.pr_reviews
        )


def _gauge(name: str, doc: str, value: float) -> GaugeMetricFamily:
    return GaugeMetricFamily(name, doc, value=value)


def render(
    totals: LedgerTotals | None,
    workers: Workers,
    running: list[RunningTask] | None,
    agents: list[str],
) -> bytes:
    registry = CollectorRegistry(auto_describe=False)
    registry.register(HealthCollector(totals, workers, running, agents))
    return generate_latest(registry)
