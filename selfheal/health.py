"""HealthProbe payloads (M2.6): one sample per agent per run of the probe."""

from datetime import datetime

from pydantic import BaseModel, Field


class HealthProbeInput(BaseModel):
    """Input of ``HealthProbe``: how long one agent's probe may take (scaled with the schedule)."""

    timeout: float = Field(default=5.0, gt=0)


class ProbeRequest(BaseModel):
    """Input of ``health.probe_agents``."""

    timeout: float = 5.0


class AgentSample(BaseModel):
    agent: str
    available: bool
    detail: str = ""
    latency_ms: float | None = None


class ProbeResult(BaseModel):
    samples: list[AgentSample] = Field(default_factory=list)


class SampleBatch(BaseModel):
    """Input of ``health.record_samples``: keyed by (agent, ``at``), so a retry writes nothing
    twice."""

    at: datetime
    samples: list[AgentSample]


class ProbeSummary(BaseModel):
    at: datetime
    up: list[str] = Field(default_factory=list)
    down: list[str] = Field(default_factory=list)
    held: list[str] = Field(default_factory=list)
