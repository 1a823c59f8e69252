"""The input of bench/bare_workflows.py's ``BareSameCalls``, outside the workflow's module: the
sandbox re-imports that module for every run, and a pydantic model is costly to rebuild."""

from pydantic import BaseModel

from selfheal.learning import HintsRequest
from selfheal.models import AgentRunInput


class SameCallsInput(BaseModel):
    run: AgentRunInput
    hints: HintsRequest
    title: str
