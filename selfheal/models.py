"""Pydantic payloads: one input model per workflow and activity, and the task status document."""

from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import BaseModel, Field, StringConstraints

from selfheal.errors import ErrorKind
from selfheal.learning import Hint, LearningPolicy
from selfheal.policies import (
    EscalationLadder,
    EscalationStep,
    EscalationStepName,
    RetryLadder,
    StuckPolicy,
)

TaskPriority = Literal["high", "normal", "low"]
AttemptStrategy = Literal["initial", "same", "fresh", "alternative"]
TaskState = Literal[
    "running",
    "retrying",
    "stuck",
    "blocked",
    "escalated",
    "succeeded",
    "failed",
    "cancelled",
]
AdapterKind = Literal["sim", "command", "http"]
IncidentStatus = Literal["open", "acknowledged", "resolved", "closed"]
FINAL_STATES: frozenset[str] = frozenset({"succeeded", "failed", "cancelled"})

PRIORITY_KEYS: dict[str, int] = {"high": 1, "normal": 3, "low": 5}


class AdapterSpec(BaseModel):
    """How an attempt runs: ``sim`` (a script of outcomes), ``command`` or ``http``."""

    kind: AdapterKind = "sim"
    sim: str | None = None
    command: str | None = None
    url: str | None = None


class TaskInput(BaseModel):
    """Input of ``AgentTask``; every policy is already scaled and fixed here."""

    id: str
    agent: str
    title: str
    description: str = ""
    priority: TaskPriority = "normal"
    adapter: AdapterSpec = Field(default_factory=AdapterSpec)
    peers: dict[str, list[str]] = Field(default_factory=dict)
    lead: str | None = "MAX"
    retry: RetryLadder = Field(default_factory=RetryLadder)
    stuck: StuckPolicy = Field(default_factory=StuckPolicy)
    escalation: EscalationLadder = Field(default_factory=EscalationLadder)
    context: dict[str, Any] = Field(default_factory=dict)
    # A person's hints (bare strings are still accepted) and, at run time, learnings (M2.5).
    hints: list[Hint] = Field(default_factory=list)
    time_scale: float = 1.0
    learning: LearningPolicy = Field(default_factory=LearningPolicy)
    lead_adapter: AdapterSpec = Field(default_factory=lambda: AdapterSpec(kind="sim", sim="ok"))


class AttemptRecord(BaseModel):
    n: int
    agent: str
    strategy: AttemptStrategy
    outcome: Literal["running", "succeeded", "failed"] = "running"
    error_kind: ErrorKind | None = None
    fingerprint: str | None = None
    error: str | None = None
    started_at: datetime
    ended_at: datetime | None = None
    learnings: list[str] = Field(default_factory=list)


class EscalationRecord(BaseModel):
    step: EscalationStepName
    target: str
    at: datetime
    incident: int = 1


class IncidentSummary(BaseModel):
    """One stuck/blocked/failed incident of a task, as its status document shows it."""

    n: int
    key: str
    kind: Literal["stuck", "blocked", "failed"]
    reason: str
    since: datetime
    opened_at: datetime
    stuck_at: datetime | None = None
    status: IncidentStatus = "open"
    acknowledged_by: str | None = None
    resolved_at: datetime | None = None
    resolution: str | None = None
    escalation_id: str


class TaskStatus(BaseModel):
    """The task status document (query ``status``, ``selfheal task show --json``)."""

    id: str
    workflow_id: str
    agent: str
    title: str
    state: TaskState
    priority: TaskPriority
    attempts: list[AttemptRecord] = Field(default_factory=list)
    escalations: list[EscalationRecord] = Field(default_factory=list)
    result: str | None = None
    incidents: list[IncidentSummary] = Field(default_factory=list)
    next_step: str | None = None
    blocked_reason: str | None = None
    last_progress_at: datetime | None = None
    notes: list[str] = Field(default_factory=list)
    ignored_signals: list[str] = Field(default_factory=list)


class AgentRunInput(BaseModel):
    """Input of the ``agent.run`` activity: one attempt of a task by one agent."""

    workflow_id: str
    task_id: str
    title: str
    description: str = ""
    agent: str
    attempt: int
    strategy: AttemptStrategy
    previous_error: str | None = None
    hints: list[Hint] = Field(default_factory=list)
    context: dict[str, Any] = Field(default_factory=dict)
    adapter: AdapterSpec
    timeout: float = 3600.0
    progress_interval: float = 5.0


class AgentRunResult(BaseModel):
    outcome: Literal["succeeded", "failed"]
    output: str = ""
    error: str | None = None
    error_kind: ErrorKind | None = None
    exit_code: int | None = None


class AttemptLedgerEntry(BaseModel):
    """Input of ``ledger.record_attempt``: one finished attempt and the task's state after it."""

    workflow_id: str
    task_id: str
    title: str
    priority: TaskPriority
    task_state: TaskState
    attempt: AttemptRecord
    context: dict[str, Any] = Field(default_factory=dict)


# Signal bodies (JSON objects; unknown fields are ignored). A signal sent with no body at all (the
# `temporal workflow signal` default) or ``null`` takes these defaults; a value of the wrong type
# (or a blank one) is malformed, and the signal is recorded in ``ignored_signals``.
NonBlank = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1)]


class MarkBlocked(BaseModel):
    reason: NonBlank = "no reason given"


class ReportProgress(BaseModel):
    note: str = ""
    source: Literal["person", "adapter"] = "person"


class Acknowledge(BaseModel):
    by: NonBlank = "unknown"


class Resolve(BaseModel):
    note: str = ""


class Escalated(BaseModel):
    """Signal from an ``Escalation`` to its subject: a step fired."""

    incident: int
    step: EscalationStepName
    target: str
    at: datetime
    lead_workflow_id: str | None = None


class CloseIncident(BaseModel):
    """Signal to an ``Escalation``: the incident is over, no further steps."""

    reason: Literal["resolved", "progress", "finished", "cancelled"] = "resolved"
    note: str = ""


class TaskAnswer(BaseModel):
    """The answer to a task Update (``acknowledge``, ``resolve``, ``mark_blocked``): what the
    workflow did, and the task's state and incident afterwards."""

    workflow_id: str
    operation: str
    message: str
    state: TaskState
    incident: IncidentSummary | None = None


# Incidents, notices and escalation (M2.4); CommitGuard (M2.2) uses the same pieces.


class IncidentRecord(BaseModel):
    """Input of ``ledger.open_incident``; ``key`` makes the write idempotent."""

    key: str
    kind: str
    subject: str
    task_id: str
    agent: str | None = None
    title: str = ""
    reason: str
    opened_at: datetime
    details: dict[str, Any] = Field(default_factory=dict)


class IncidentUpdate(BaseModel):
    """Input of ``ledger.update_incident``: a status change (acknowledged, resolved, closed)."""

    key: str
    status: IncidentStatus
    at: datetime
    by: str | None = None
    note: str | None = None
    details: dict[str, Any] = Field(default_factory=dict)


class Notice(BaseModel):
    """Input of ``notify.send``. ``target`` is a channel (``dev``, ``ceo``) or an agent name; the
    URL is looked up at run time, so no secret is ever in a payload."""

    target: str
    text: str
    idempotency_key: str
    incident_key: str | None = None
    step: str | None = None
    fields: dict[str, str] = Field(default_factory=dict)


class NoticeResult(BaseModel):
    delivered: bool
    status_code: int | None = None
    skipped_reason: str | None = None


class EscalationInput(BaseModel):
    """Input of ``Escalation`` (id ``escalation-<task id>-<n>``): one incident's ladder snapshot.

    Step times count from ``since`` (the last progress, or the block). ``subject`` is the workflow
    the incident is about; it gets an ``escalated`` signal as each step fires."""

    incident_key: str
    n: int
    kind: str
    subject: str
    task_id: str
    title: str
    agent: str
    peer: str | None
    lead: str | None
    reason: str
    last_error: str | None = None
    since: datetime
    ladder: EscalationLadder
    first_step: EscalationStepName = "peer"
    attempts: list[AttemptRecord] = Field(default_factory=list)
    retry: RetryLadder = Field(default_factory=RetryLadder)
    stuck: StuckPolicy = Field(default_factory=StuckPolicy)
    context: dict[str, Any] = Field(default_factory=dict)
    lead_adapter: AdapterSpec = Field(default_factory=lambda: AdapterSpec(kind="sim", sim="ok"))
    peers: dict[str, list[str]] = Field(default_factory=dict)
    time_scale: float = 1.0

    def ladder_steps(self) -> list[EscalationStep]:
        """The steps this incident's ladder runs: from ``first_step`` on."""
        names = [s.step for s in self.ladder.steps]
        first = names.index(self.first_step) if self.first_step in names else 0
        return self.ladder.steps[first:]

    def target(self, step: EscalationStepName) -> str | None:
        """Who a step goes to; ``None`` (no peer, no lead) skips the step."""
        return {"peer": self.peer, "lead": self.lead, "ceo": "ceo"}[step]

    def firing_steps(self) -> list[EscalationStepName]:
        """The steps that will fire if nobody acts: the ladder's steps that have a target."""
        return [s.step for s in self.ladder_steps() if self.target(s.step)]


class EscalationOutcome(BaseModel):
    incident_key: str
    steps: list[EscalationRecord] = Field(default_factory=list)
    acknowledged_by: str | None = None
    closed: str | None = None
    ignored_signals: list[str] = Field(default_factory=list)
