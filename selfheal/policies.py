"""The declared healing policies, their seed defaults, and time scaling.

Every duration is in seconds. ``scaled(n)`` divides each duration by ``n``; the starter applies it
once and fixes the result in the workflow input, so a workflow never reads a clock or a setting.
"""

from typing import Annotated, Literal, Self

from pydantic import BaseModel, BeforeValidator, Field, model_validator

from selfheal.durations import parse_duration

Seconds = Annotated[float, BeforeValidator(parse_duration)]
RetryStrategy = Literal["same", "fresh", "alternative"]
_STRATEGIES: tuple[RetryStrategy, ...] = ("same", "fresh", "alternative")
EscalationStepName = Literal["peer", "lead", "ceo"]


class RetryLadder(BaseModel):
    """Initial attempt + one retry per wait; each retry has its own strategy."""

    waits: list[Seconds] = Field(default_factory=lambda: [60.0, 300.0, 900.0])
    strategies: list[RetryStrategy] = Field(default_factory=lambda: list(_STRATEGIES))
    attempt_timeout: Seconds = 3600.0
    heartbeat_timeout: Seconds = 30.0
    infra_retries: int = Field(default=8, ge=1)

    @model_validator(mode="after")
    def _one_strategy_per_wait(self) -> Self:
        if len(self.strategies) < len(self.waits):
            raise ValueError(
                f"retry ladder has {len(self.waits)} waits but {len(self.strategies)} strategies"
            )
        return self

    @property
    def max_attempts(self) -> int:
        return 1 + len(self.waits)

    def scaled(self, factor: float) -> "RetryLadder":
        return self.model_copy(
            update={
                "waits": [w / factor for w in self.waits],
                "attempt_timeout": self.attempt_timeout / factor,
            }
        )


class StuckPolicy(BaseModel):
    no_progress: Seconds = 1800.0
    same_fingerprint_limit: int = Field(default=3, ge=2)

    def scaled(self, factor: float) -> "StuckPolicy":
        return self.model_copy(update={"no_progress": self.no_progress / factor})


class EscalationStep(BaseModel):
    step: EscalationStepName
    after: Seconds


def _default_steps() -> list[EscalationStep]:
    return [
        EscalationStep(step="peer", after=900.0),
        EscalationStep(step="lead", after=1800.0),
        EscalationStep(step="ceo", after=3600.0),
    ]


class EscalationLadder(BaseModel):
    steps: list[EscalationStep] = Field(default_factory=_default_steps)

    @model_validator(mode="after")
    def _in_order(self) -> Self:
        afters = [s.after for s in self.steps]
        if afters != sorted(afters):
            raise ValueError("escalation steps must be in increasing order of time")
        return self

    def scaled(self, factor: float) -> "EscalationLadder":
        return EscalationLadder(
            steps=[EscalationStep(step=s.step, after=s.after / factor) for s in self.steps]
        )


class RollbackPolicy(BaseModel):
    enabled: bool = True
    build_command: str = "npx next build"
    setup_command: str | None = None
    build_timeout: Seconds = 900.0
    max_reverts_per_day: int = Field(default=5, ge=0)
    push: bool = False


class Policies(BaseModel):
    retry: RetryLadder = Field(default_factory=RetryLadder)
    stuck: StuckPolicy = Field(default_factory=StuckPolicy)
    escalation: EscalationLadder = Field(default_factory=EscalationLadder)
    rollback: RollbackPolicy = Field(default_factory=RollbackPolicy)

    def scaled(self, factor: float) -> "Policies":
        if factor <= 0:
            raise ValueError("time scale must be positive")
        if factor == 1:
            return self
        return Policies(
            retry=self.retry.scaled(factor),
            stuck=self.stuck.scaled(factor),
            escalation=self.escalation.scaled(factor),
            rollback=self.rollback,  # builds take the time they take
        )
