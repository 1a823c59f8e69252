"""One set of start options for every starter of an AgentTask (client, lead dispatch, PR review)."""

from temporalio.common import Priority

from selfheal import search_attributes as sa
from selfheal.models import PRIORITY_KEYS, AdapterSpec, TaskInput
from selfheal.task_options import task_options


def test_a_task_starts_findable_with_its_priority_and_story():
    task = TaskInput(
        id="lead-x-1", agent="MAX", title="Unblock SAM: fix login", priority="high",
        adapter=AdapterSpec(kind="sim", sim="ok"),
    )  # fmt: skip
    options = task_options(task, "selfheal")
    assert options["id"] == "task-lead-x-1" and options["task_queue"] == "selfheal"
    attributes = options["search_attributes"]
    assert [attributes.get(k) for k in (sa.KIND, sa.AGENT, sa.STATE, sa.ATTEMPT)] == [
        "task", "MAX", "running", 1,
    ]  # fmt: skip
    assert options["priority"] == Priority(priority_key=PRIORITY_KEYS["high"])
    assert options["memo"] == {"title": "Unblock SAM: fix login", "priority": "high"}
    assert options["static_summary"] == "MAX: Unblock SAM: fix login"
    assert options["static_details"] == "priority high · adapter sim"
    told = task_options(task, "q", summary="MAX: unblock SAM", details="review of o/r#1")
    assert told["static_summary"] == "MAX: unblock SAM"
    assert told["static_details"] == "review of o/r#1"
