"""The start options of an ``AgentTask``, shared by every starter.

The client (``selfheal task start``, orchestrators), Escalation's lead dispatch and PRReview's
reviewer task all spread the same options, so a task is found the same way in the UI and in
``task list`` however it was started::

    await client.start_workflow(AgentTask.run, input, **task_options(input, queue), ...)
    await workflow.start_child_workflow(AgentTask.run, input, **task_options(input, queue), ...)
"""

from typing import Any, TypedDict

from temporalio.common import Priority, SearchAttributePair, TypedSearchAttributes

from selfheal import search_attributes as sa
from selfheal.ids import task_workflow_id
from selfheal.models import PRIORITY_KEYS, TaskInput


class TaskOptions(TypedDict):
    id: str
    task_queue: str
    search_attributes: TypedSearchAttributes
    memo: dict[str, Any]
    priority: Priority
    static_summary: str
    static_details: str


def task_options(
    input: TaskInput, task_queue: str, *, summary: str | None = None, details: str | None = None
) -> TaskOptions:
    """Id ``task-<id>``, the search attributes a running task has, its priority and UI text."""
    return TaskOptions(
        id=task_workflow_id(input.id),
        task_queue=task_queue,
        search_attributes=TypedSearchAttributes(
            [
                SearchAttributePair(sa.KIND, "task"),
                SearchAttributePair(sa.AGENT, input.agent),
                SearchAttributePair(sa.STATE, "running"),
                SearchAttributePair(sa.ATTEMPT, 1),
            ]
        ),
        memo={"title": input.title, "priority": input.priority},
        priority=Priority(priority_key=PRIORITY_KEYS[input.priority]),
        static_summary=summary or f"{input.agent}: {input.title}",
        static_details=details or f"priority {input.priority} · adapter {input.adapter.kind}",
    )
