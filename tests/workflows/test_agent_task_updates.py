"""The task's Updates (``mark_blocked``, ``acknowledge``, ``resolve``) on the time-skipping server:
the validator refuses what cannot apply, the answer says what the workflow did, and the signals
of the same names go through the same code."""

from typing import Any

import pytest
from temporalio.client import WorkflowHandle, WorkflowUpdateFailedError
from temporalio.exceptions import ApplicationError
from temporalio.testing import WorkflowEnvironment

from selfheal.config import Settings
from selfheal.models import TaskAnswer, TaskStatus
from tests.workflows.test_escalation import stack


async def ask(handle: WorkflowHandle[Any, TaskStatus], name: str, body: Any) -> TaskAnswer:
    return await handle.execute_update(name, body, result_type=TaskAnswer)


async def refused(
    handle: WorkflowHandle[Any, TaskStatus], name: str, body: Any
) -> ApplicationError:
    with pytest.raises(WorkflowUpdateFailedError) as err:
        await ask(handle, name, body)
    assert isinstance(err.value.cause, ApplicationError)
    return err.value.cause


async def test_updates_are_validated_then_answered(
    skipping_env: WorkflowEnvironment, settings: Settings
):
    async with stack(skipping_env, settings) as s:
        handle = await s.start("transient,ok")
        await s.wait_state(handle, "retrying")

        for name in ("acknowledge", "resolve"):
            cause = await refused(handle, name, {"by": "MAX"})
            assert cause.type == "NoOpenIncident" and "no open" in cause.message
        for body in ({"reason": "   "}, {}, None, "blocked!", {"reason": 7}):
            cause = await refused(handle, "mark_blocked", body)
            assert cause.type == "MalformedBody", cause.message
            assert cause.message.startswith("mark_blocked: "), cause.message

        answer = await ask(handle, "mark_blocked", {"reason": "no API key"})
        assert answer.state == "blocked" and answer.message == "blocked: incident 1 opened"
        assert answer.incident and answer.incident.reason == "no API key"
        again = await ask(handle, "mark_blocked", {"reason": "still no key"})
        assert again.message == "already blocked (incident 1)"
        assert (await refused(handle, "acknowledge", {})).type == "MalformedBody"

        # The signal of the same name takes the same path: here it acknowledges.
        await handle.signal("acknowledge", {"by": "LEO"})
        cause = await refused(handle, "acknowledge", {"by": "MAX"})
        assert cause.type == "NoOpenIncident"
        resolved = await ask(handle, "resolve", {"note": "key added"})
        assert resolved.message == "incident 1 resolved"
        assert resolved.incident and resolved.incident.status == "resolved"
        final = await handle.result()
    assert final.state == "succeeded"
    assert final.incidents[0].acknowledged_by == "LEO"
    assert final.incidents[0].resolution == "key added"
    assert final.blocked_reason is None
    assert final.ignored_signals == []  # refused Updates are answers, not ignored signals
