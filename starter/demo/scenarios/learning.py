"""Self-improvement (M2.5): a mistake is learned at its second occurrence, and the other agents
do not repeat it.

SAM's task makes a mistake (``mistake:NAME``) on its first two attempts. The second occurrence
publishes the learning, so the third attempt follows it and succeeds. Then ALEX and LEO get tasks
about the same kind of work that would make the same mistake: the learning is attached to their
hints at start, and they succeed at once. The seed metric "same mistake repeated after learning"
is the most occurrences of one fingerprint after its learning was published, read from the
ledger (bench/week.py measures it over a simulated week).
"""

import asyncio
import random
import uuid

from activities.ledger import Ledger
from activities.ledger.learnings import LearningStore, UnknownLearning
from selfheal.learning import learning_id
from selfheal.models import AdapterSpec, TaskStatus
from selfheal.sim import mistake_fingerprint
from starter.client import build_task_input, start_task, task_outcome
from starter.demo.scenario import DemoContext, Metric, Scenario, ScenarioResult

FIRST = ("SAM", "add the orders table migration")
OTHERS = [("ALEX", "rename the users column migration"), ("LEO", "backfill invoices migration")]
BAR = 2  # DESIGN §7: no fingerprint recurs more than 2 times after its learning was published


async def run(ctx: DemoContext) -> ScenarioResult:
    # A name of letters only (numbers are normalised away), new for each run: the entity of a
    # fingerprint outlives a demo when the demo runs against a server of your own.
    name = "missing-migration-" + "".join(random.choices("abcdefghjk", k=6))
    fp = mistake_fingerprint(name)
    run_id = uuid.uuid4().hex[:6]
    result = ScenarioResult(
        "self-improvement (M2.5)",
        ["task", "agent", "attempts", "outcomes", "learnings given", "state", "workflow"],
    )
    statuses: list[TaskStatus] = []

    async def dispatch(i: int, agent: str, title: str) -> TaskStatus:
        input = build_task_input(
            ctx.settings, agent=agent, title=title, task_id=f"learn-{run_id}-{i}",
            adapter=AdapterSpec(kind="sim", sim=f"mistake:{name}"), context={"repo": "shop"},
        )  # fmt: skip
        return await task_outcome(await start_task(ctx.client, ctx.settings, input))

    ctx.report(f"{FIRST[0]} makes the mistake {name!r}")
    first = await dispatch(1, *FIRST)
    statuses.append(first)
    ctx.report(
        f"{FIRST[0]}: {first.state} after {len(first.attempts)} attempt(s); the others start"
    )
    statuses += await asyncio.gather(
        *(dispatch(i, agent, title) for i, (agent, title) in enumerate(OTHERS, start=2))
    )
    for status in statuses:
        result.rows.append([
            status.title, status.agent, str(len(status.attempts)),
            ",".join(a.outcome for a in status.attempts),
            ",".join(sorted({i for a in status.attempts for i in a.learnings})) or "-",
            status.state, ctx.link(status.workflow_id),
        ])  # fmt: skip
    learned = learning_id(fp)
    if [a.outcome for a in first.attempts] != ["failed", "failed", "succeeded"]:
        result.failures.append(f"{first.title}: attempts {[a.outcome for a in first.attempts]}")
    elif first.attempts[-1].learnings != [learned]:
        result.failures.append(f"{first.title}: its third attempt was not given {learned}")
    for status in statuses[1:]:
        if len(status.attempts) != 1 or status.state != "succeeded":
            result.failures.append(f"{status.agent} repeated the mistake: {status.title}")
        elif learned not in status.attempts[0].learnings:
            result.failures.append(f"{status.agent}'s task was not given {learned}")

    store = LearningStore(Ledger.from_settings(ctx.settings))
    try:
        learning = await asyncio.to_thread(store.get, learned)
        repeats = learning.repeats_after_publication
        value = f"{repeats} (max over the demo's mistakes; {learning.occurrences} occurrences)"
    except UnknownLearning:
        repeats, value = BAR + 1, "no learning was published"
    result.metrics.append(
        Metric(
            "same mistake repeated after learning",
            value,
            f"<= {BAR}",
            repeats <= BAR,
            note=f"{FIRST[0]} made it twice, then its learning was published; "
            f"{' and '.join(a for a, _ in OTHERS)} were given it at start "
            "(bench/week.py measures a whole simulated week, learning on and off)",
        )
    )
    return result


SCENARIO = Scenario(
    "self-improvement (M2.5)",
    run,
    metrics=("same mistake repeated after learning",),
    order=50,
    policy_time=30 * 60,
)
