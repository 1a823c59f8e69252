"""The demo's self-improvement scenario on the dev server: found by the runner, and its seed
metric "same mistake repeated after learning" measured from the ledger."""

import io

from temporalio.testing import WorkflowEnvironment

from selfheal.config import Settings
from starter.demo.runner import run_scenarios
from starter.demo.scenarios import discover, learning


def test_the_runner_finds_it():
    assert learning.SCENARIO in discover()
    assert learning.SCENARIO.metrics == ("same mistake repeated after learning",)


async def test_the_others_do_not_repeat_the_mistake(
    local_env: WorkflowEnvironment, settings: Settings
):
    settings = settings.model_copy(update={"time_scale": 600.0})
    out = io.StringIO()
    code = await run_scenarios(
        settings, local_env.client, None, out=out, scenarios=[learning.SCENARIO], as_json=True
    )
    text = out.getvalue()
    assert code == 0, text
    assert "same mistake repeated after learning" in text and "all checks held" in text
    assert '"value": "0 (' in text  # no repeat after publication
    assert "failed,failed,succeeded" in text  # SAM's task, learned at the second occurrence
