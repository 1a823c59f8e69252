"""The ``sim`` adapter's script: one token per attempt; past the end, the last token repeats."""

from typing import Literal

from pydantic import BaseModel

SimKind = Literal["ok", "transient", "agent", "task", "permanent", "stall", "hang"]
_PLAIN = {"ok", "transient", "agent", "task", "permanent", "hang"}


class SimScriptError(ValueError):
    pass


class SimStep(BaseModel):
    kind: SimKind
    seconds: float = 0.0


def parse_sim_script(script: str) -> list[SimStep]:
    tokens = [t.strip().lower() for t in script.split(",")]
    if not script.strip() or any(not t for t in tokens):
        raise SimScriptError(f"sim script {script!r} has an empty token (e.g. ok,transient,ok)")
    steps: list[SimStep] = []
    for token in tokens:
        if token in _PLAIN:
            steps.append(SimStep(kind=token))  # type: ignore[arg-type]
            continue
        name, _, arg = token.partition(":")
        if name != "stall" or not arg:
            raise SimScriptError(
                f"unknown sim token {token!r}: use ok, transient, agent, task, permanent, "
                "stall:SECONDS or hang"
            )
        try:
            seconds = float(arg)
        except ValueError:
            raise SimScriptError(f"stall needs seconds, got {arg!r}") from None
        if seconds < 0 or seconds != seconds or seconds == float("inf"):
            raise SimScriptError(f"stall seconds must be a finite, non-negative number: {arg!r}")
        steps.append(SimStep(kind="stall", seconds=seconds))
    return steps


def step_for_attempt(steps: list[SimStep], attempt: int) -> SimStep:
    return steps[min(attempt, len(steps)) - 1]
