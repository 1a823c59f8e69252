"""The ``sim`` adapter's script: one token per attempt; past the end, the last token repeats.

``mistake:NAME`` is a recurring mistake (M2.5): it fails with a ``task`` error naming NAME, unless
the attempt's hints hold a published learning for that error's fingerprint; then it succeeds.
Like any error, its fingerprint ignores numbers, so ``mistake:step-1`` and ``mistake:step-2`` are
the same mistake.
"""

import re
from typing import Literal

from pydantic import BaseModel

from selfheal.errors import fingerprint

SimKind = Literal["ok", "transient", "agent", "task", "permanent", "stall", "hang", "mistake"]
_PLAIN = {"ok", "transient", "agent", "task", "permanent", "hang"}
_NAME = re.compile(r"[a-z0-9][a-z0-9_.-]*")


class SimScriptError(ValueError):
    pass


class SimStep(BaseModel):
    kind: SimKind
    seconds: float = 0.0
    name: str | None = None


def mistake_error(name: str) -> str:
    return f"sim: mistake {name}: the change repeats the known mistake {name!r}"


def mistake_fingerprint(name: str) -> str:
    return fingerprint("task", mistake_error(name))


def parse_sim_script(script: str) -> list[SimStep]:
    tokens = [t.strip().lower() for t in script.split(",")]
    if not script.strip() or any(not t for t in tokens):
        raise SimScriptError(f"sim script {script!r} has an empty token (e.g. ok,transient,ok)")
    steps: list[SimStep] = []
    for token in tokens:
        if token in _PLAIN:
            steps.append(SimStep(kind=token))
            continue
        name, _, arg = token.partition(":")
        if name == "mistake":
            if not _NAME.fullmatch(arg):
                raise SimScriptError(
                    f"mistake needs a name of letters, digits, '-', '_' or '.', got {arg!r}"
                )
            steps.append(SimStep(kind="mistake", name=arg))
            continue
        if name != "stall" or not arg:
            raise SimScriptError(
                f"unknown sim token {token!r}: use ok, transient, agent, task, permanent, "
                "stall:SECONDS, hang or mistake:NAME"
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
