"""Self-improvement (M2.5) payloads: the ``Pattern`` entity, ``PatternAnalysis`` and their
activities. Pure and side-effect free, so workflows import it through the sandbox."""

from datetime import datetime
from typing import Literal

from pydantic import BaseModel, Field

from selfheal.learning import (
    HintsRequest,
    Learning,
    LearningPolicy,
    Occurrence,
    PatternState,
    UseRecord,
)
from selfheal.models import AdapterSpec, TaskInput
from selfheal.policies import EscalationLadder, RetryLadder, StuckPolicy

ANALYSIS_SCHEDULE_ID = "selfheal-pattern-analysis"


class PatternInput(BaseModel):
    """Input of ``Pattern`` (id ``pattern-<fingerprint>``). ``state`` is None on a first start
    (it is then loaded from the ledger) and carried over on continue-as-new. The ladder and team
    fields are those of the task whose failure started the entity: a regression escalates on
    them."""

    fingerprint: str
    kind: str
    template: str
    policy: LearningPolicy = Field(default_factory=LearningPolicy)
    escalation: EscalationLadder = Field(default_factory=EscalationLadder)
    retry: RetryLadder = Field(default_factory=RetryLadder)
    stuck: StuckPolicy = Field(default_factory=StuckPolicy)
    peers: dict[str, list[str]] = Field(default_factory=dict)
    lead: str | None = "MAX"
    lead_adapter: AdapterSpec = Field(default_factory=lambda: AdapterSpec(kind="sim", sim="ok"))
    time_scale: float = 1.0
    state: PatternState | None = None
    # Continue-as-new after this many handled signals (or when Temporal suggests it).
    max_events: int = Field(default=200, ge=1)


class PatternCommand(BaseModel):
    """Signal ``retire`` / ``republish`` to a ``Pattern`` (from the analysis or a person)."""

    by: str = "selfheal"
    reason: str = ""


class LoadPattern(BaseModel):
    fingerprint: str
    kind: str
    template: str
    window: float
    min_occurrences: int


class PublishInput(BaseModel):
    state: PatternState
    policy: LearningPolicy
    at: datetime


class StatusChange(BaseModel):
    """Input of ``learning.set_status``: a learning's new status (regressed, retired, ...)."""

    fingerprint: str
    status: Literal["published", "regressed", "retired"]
    at: datetime
    by: str = "selfheal"
    reason: str = ""


class AdviceRequest(BaseModel):
    fingerprint: str
    kinds: list[str] = Field(default_factory=lambda: ["task", "agent"])


class AttemptLearning(BaseModel):
    """Input of ``learning.after_attempt``: one finished attempt as the learning loop needs it —
    the learnings it was given and their outcomes, the failure to count (``occurrence``, which
    signals-with-start its ``Pattern``), and what resolved the task's earlier failures."""

    workflow_id: str
    attempt: int
    outcome: Literal["succeeded", "failed"]
    agent: str
    strategy: str
    uses: list[UseRecord] = Field(default_factory=list)
    occurrence: Occurrence | None = None
    pattern: PatternInput | None = None
    resolves: list[int] = Field(default_factory=list)
    ended_by_incident: str | None = None
    policy: LearningPolicy = Field(default_factory=LearningPolicy)
    at: datetime


class AnalysisInput(BaseModel):
    """Input of ``PatternAnalysis``: the policy (window, retire_after, merge similarity) and
    the ``dev`` channel digest switch."""

    policy: LearningPolicy = Field(default_factory=LearningPolicy)
    digest: bool = True
    # A worker lost while writing the docs is noticed after this long, and the step retried.
    heartbeat_timeout: float = Field(default=15.0, gt=0)


class ConsolidateInput(BaseModel):
    policy: LearningPolicy
    now: datetime
    analysis_id: str


class Merge(BaseModel):
    into: str
    merged: list[str]
    template: str


class Recurring(BaseModel):
    id: str
    template: str
    occurrences: int


class Consolidation(BaseModel):
    """What ``learning.consolidate`` did to the ledger, and every learning as it now is."""

    analysis_id: str
    now: datetime
    learnings: list[Learning] = Field(default_factory=list)
    new: list[str] = Field(default_factory=list)
    regressed: list[str] = Field(default_factory=list)
    retired: list[str] = Field(default_factory=list)
    merged: list[Merge] = Field(default_factory=list)
    rescored: dict[str, int] = Field(default_factory=dict)
    top_recurring: list[Recurring] = Field(default_factory=list)


class DocsInput(BaseModel):
    analysis_id: str
    learnings: list[Learning]
    now: datetime


class PersonHint(BaseModel):
    """A hint a person rewrote in a learning's file; the ledger takes it."""

    learning_id: str
    text: str


class DocsResult(BaseModel):
    """What ``patterns.write_docs`` did: files written or left, the commit, and problems."""

    directory: str
    written: list[str] = Field(default_factory=list)
    unchanged: list[str] = Field(default_factory=list)
    kept_prose: list[str] = Field(default_factory=list)
    person_hints: list[PersonHint] = Field(default_factory=list)
    commit: str | None = None
    problems: list[str] = Field(default_factory=list)
    notes: list[str] = Field(default_factory=list)


class AnalysisReport(BaseModel):
    """The result of ``PatternAnalysis``: consolidation, docs and the digest text."""

    analysis_id: str
    consolidation: Consolidation
    docs: DocsResult
    digest: str
    problems: list[str] = Field(default_factory=list)


def digest_text(consolidation: Consolidation, docs: DocsResult) -> str:
    """The weekly digest for the ``dev`` channel: new, regressed, retired, top recurring."""
    by_id = {x.id: x for x in consolidation.learnings}

    def name(learning_id: str) -> str:
        item = by_id.get(learning_id)
        return f"`{item.template[:80]}`" if item else learning_id

    lines = [f":brain: *Pattern analysis* {consolidation.analysis_id}"]
    for label, ids in (
        ("new learnings", consolidation.new),
        ("regressed (the learning is not working)", consolidation.regressed),
        ("retired", consolidation.retired),
    ):
        shown = ", ".join(name(i) for i in ids[:5]) + (" …" if len(ids) > 5 else "")
        lines.append(f"• {len(ids)} {label}" + (f": {shown}" if ids else ""))
    if consolidation.merged:
        lines.append(f"• {len(consolidation.merged)} near-duplicate group(s) merged")
    if consolidation.top_recurring:
        top = "; ".join(
            f"{r.occurrences}x `{r.template[:60]}`" for r in consolidation.top_recurring[:3]
        )
        lines.append(f"• top recurring this week: {top}")
    written = len(docs.written)
    lines.append(
        f"• docs: {written} file(s) written in {docs.directory}"
        + (f", commit {docs.commit[:12]}" if docs.commit else "")
    )
    lines += [f"• :warning: {problem}" for problem in docs.problems]
    return "\n".join(lines)


def hints_request(task: TaskInput) -> HintsRequest:
    """What ``learning.hints_for`` is asked when ``task`` is dispatched."""
    policy = task.learning
    return HintsRequest(
        agent=task.agent,
        title=task.title,
        description=task.description,
        context=task.context,
        limit=policy.max_attached,
        kinds=policy.feedback_kinds,
    )
