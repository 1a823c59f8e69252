"""The health document (M2.6): one pydantic model that the page, ``/api/health``, ``/metrics``
and ``selfheal status`` all render."""

from datetime import datetime
from typing import Literal

from pydantic import BaseModel, Field, computed_field

Window = Literal["1h", "24h", "7d"]
# window -> (span, trend bucket) in seconds
WINDOWS: dict[str, tuple[int, int]] = {
    "1h": (3600, 300),
    "24h": (86400, 3600),
    "7d": (604800, 21600),
}
ERROR_KINDS = ("transient", "agent", "task", "permanent")
ESCALATION_STEPS = ("peer", "lead", "ceo")


class BadWindowError(ValueError):
    def __init__(self, window: str) -> None:
        super().__init__(f"unknown window {window!r} (use one of {', '.join(WINDOWS)})")


def check_window(window: str) -> Window:
    if window not in WINDOWS:
        raise BadWindowError(window)
    return window  # type: ignore[return-value]


class CurrentTask(BaseModel):
    workflow_id: str
    title: str
    state: str
    since: datetime | None = None
    ui_url: str | None = None


class TrendPoint(BaseModel):
    start: datetime
    attempts: int = 0
    failed: int = 0
    samples: int = 0
    up_samples: int = 0
    incidents: int = 0

    @computed_field  # type: ignore[prop-decorator]
    @property
    def error_rate(self) -> float | None:
        return self.failed / self.attempts if self.attempts else None

    @computed_field  # type: ignore[prop-decorator]
    @property
    def uptime(self) -> float | None:
        return self.up_samples / self.samples if self.samples else None


class AgentHealth(BaseModel):
    name: str
    role: str = "engineer"
    adapter: str = "sim"
    available: bool | None = Field(
        default=None, description="its last probe answered (None: no sample)"
    )
    held: bool = Field(default=False, description="an open stuck/blocked incident holds it now")
    last_sample_at: datetime | None = None
    probe_detail: str = ""
    samples: int = 0
    up_samples: int = 0
    uptime: float | None = Field(default=None, description="up samples / samples over the window")
    attempts: int = 0
    failed: int = 0
    error_rate: float | None = Field(default=None, description="failed attempts / attempts")
    errors_by_kind: dict[str, int] = Field(default_factory=dict)
    running: int = Field(default=0, description="its running tasks")
    current: CurrentTask | None = None
    trend: list[TrendPoint] = Field(default_factory=list)

    @computed_field  # type: ignore[prop-decorator]
    @property
    def status(self) -> str:
        if self.available is False:
            return "down"
        if self.held:
            return "held"
        return "up" if self.available else "unknown"


class IncidentRow(BaseModel):
    key: str
    kind: str
    task_id: str
    subject: str
    title: str
    agent: str | None
    reason: str
    status: str
    step: str | None = Field(default=None, description="the furthest escalation step notified")
    opened_at: datetime
    resolved_at: datetime | None = None
    age_s: float
    time_to_resolve_s: float | None = None
    ui_url: str | None = None


class RetryFigures(BaseModel):
    failed_once: int = Field(default=0, description="settled tasks that failed at least once")
    recovered: int = Field(default=0, description="... of which then succeeded")
    rate: float | None = None


class RevertFigures(BaseModel):
    count: int = 0
    p50_s: float | None = None
    max_s: float | None = None
    within_2min: int = 0


class SeedMetrics(BaseModel):
    retry_success: RetryFigures = Field(default_factory=lambda: RetryFigures())
    revert: RevertFigures = Field(default_factory=RevertFigures)
    pr_events: int = 0
    pr_reviews: int = 0
    pr_coverage: float | None = None
    ceo_alerts: int = 0
    ceo_alerts_per_day: float = 0.0
    repeats_after_learning: int | None = Field(
        default=None, description="None until the learning loop's tables exist"
    )


class Workers(BaseModel):
    task_queue: str
    reachable: bool = False
    error: str | None = None
    workflow_pollers: int = 0
    activity_pollers: int = 0
    identities: list[str] = Field(default_factory=list)

    @computed_field  # type: ignore[prop-decorator]
    @property
    def up(self) -> bool:
        return self.reachable and self.workflow_pollers > 0 and self.activity_pollers > 0


class HealthDocument(BaseModel):
    generated_at: datetime
    window: Window
    span_s: int
    bucket_s: int
    ui_url: str | None = None
    agents: list[AgentHealth] = Field(default_factory=list)
    incidents: list[IncidentRow] = Field(default_factory=list, description="the last 50")
    open_incidents: dict[str, int] = Field(default_factory=dict, description="by kind")
    running_tasks: dict[str, int] = Field(default_factory=dict, description="by state")
    seed: SeedMetrics = Field(default_factory=lambda: SeedMetrics())
    workers: Workers
    trend: list[TrendPoint] = Field(default_factory=list)
    problems: list[str] = Field(default_factory=list, description="what is down; empty: all up")

    @computed_field  # type: ignore[prop-decorator]
    @property
    def ok(self) -> bool:
        return not self.problems


class ErrorBody(BaseModel):
    error: str
