"""Hints reach agents as objects (id, text, advice, fingerprints): the command adapter's
``SELFHEAL_HINTS`` and the sim's ``mistake:NAME``, which only a published learning's hint fixes."""

import json

from activities.agents import AgentActivities, ProgressReporter, _agent_env
from selfheal.config import Settings
from selfheal.errors import fingerprint
from selfheal.learning import Advice, Hint
from selfheal.models import AdapterSpec, AgentRunInput, AgentRunResult
from selfheal.sim import mistake_fingerprint


def run_input(hints: list) -> AgentRunInput:
    return AgentRunInput(
        workflow_id="task-a", task_id="a", title="t", agent="SAM", attempt=1,
        strategy="initial", adapter=AdapterSpec(kind="command", command="true"), hints=hints,
    )  # fmt: skip


def test_selfheal_hints_is_a_json_list_of_objects():
    learned = Hint(id="L-task-1", text="run the migration", advice=Advice(strategy="fresh"),
                   fingerprints=["task-1"])  # fmt: skip
    env = _agent_env(run_input(["check the cookie", learned]))
    hints = json.loads(env["SELFHEAL_HINTS"])
    assert hints[0] == {"id": None, "text": "check the cookie", "advice": None, "fingerprints": []}
    assert hints[1]["id"] == "L-task-1" and hints[1]["advice"]["strategy"] == "fresh"


async def test_a_mistake_succeeds_only_with_its_published_learnings_hint(tmp_path):
    fp = mistake_fingerprint("skip-migration")
    agents = AgentActivities(Settings(data_dir=tmp_path), client=None)  # type: ignore[arg-type]

    async def attempt(hints: list) -> AgentRunResult:
        input = run_input(hints).model_copy(
            update={"adapter": AdapterSpec(kind="sim", sim="mistake:skip-migration")}
        )
        return await agents._run_sim(input, ProgressReporter(_ignore, 1.0))

    failed = await attempt([])
    assert failed.outcome == "failed" and failed.error_kind == "task"
    assert fingerprint("task", failed.error or "") == fp and "skip-migration" in failed.error
    # a person's hint naming it is not a learning (no id), nor is another fingerprint's learning
    assert (await attempt(["skip-migration: run makemigrations"])).outcome == "failed"
    other = Hint(id="L-task-x", text="x", fingerprints=["task-x"])
    assert (await attempt([other])).outcome == "failed"
    learned = Hint(id=f"L-{fp}", text="run makemigrations first", fingerprints=[fp])
    done = await attempt([other, learned])
    assert done.outcome == "succeeded" and f"L-{fp}" in done.output


async def _ignore(note: str) -> None:
    pass
