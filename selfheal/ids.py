"""Workflow ids (DESIGN §4) and activity names shared by workflows and workers."""

import re

_SAFE = re.compile(r"[^A-Za-z0-9._-]+")
_TASK_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,199}")


class TaskIdError(ValueError):
    pass


def check_task_id(task_id: str) -> str:
    """``task_id`` if it can be part of a workflow id, a workspace path and a URL: letters,
    digits, ``.``, ``_`` and ``-`` (no ``/``, no spaces), at most 200 characters."""
    if not _TASK_ID.fullmatch(task_id):
        raise TaskIdError(
            f"bad task id {task_id!r}: use letters, digits, '.', '_' and '-' "
            "(no '/' or spaces), at most 200 characters"
        )
    return task_id


def task_workflow_id(task_id: str) -> str:
    return task_id if task_id.startswith("task-") else f"task-{task_id}"


def task_id_of(id_or_workflow_id: str) -> str:
    return id_or_workflow_id.removeprefix("task-")


def escalation_workflow_id(task_id: str, n: int) -> str:
    return f"escalation-{task_id}-{n}"


def safe_id(text: str) -> str:
    return _SAFE.sub("-", text).strip("-") or "x"


class Activities:
    """Activity names: workflows call activities by name, never by importing implementations."""

    RUN_AGENT = "agent.run"
    RECORD_ATTEMPT = "ledger.record_attempt"
    OPEN_INCIDENT = "ledger.open_incident"
    UPDATE_INCIDENT = "ledger.update_incident"
    NOTIFY = "notify.send"
    SET_COMMIT_STATUS = "github.set_commit_status"
    FIND_OLDER_REVIEWS = "review.find_older"
