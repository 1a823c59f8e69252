"""A task's outcome as Temporal sees it (DESIGN §4): ``succeeded`` completes with the status
document; ``failed`` fails the execution with a non-retryable ``ApplicationError`` of type
``TaskFailed`` whose details carry the status document. Workflows (a parent of an AgentTask) and
clients read both cases back with ``status_of_failure``."""

from typing import Any

from temporalio.exceptions import ApplicationError

from selfheal.models import TaskStatus

TASK_FAILED = "TaskFailed"


def task_failed(status: TaskStatus) -> ApplicationError:
    """The error an AgentTask raises when it ends ``failed``."""
    last = status.attempts[-1] if status.attempts else None
    why = f": {last.error_kind}: {last.error}" if last and last.error else ""
    return ApplicationError(
        f"task {status.id} failed after {len(status.attempts)} attempt(s){why}"[:1000],
        status,
        type=TASK_FAILED,
        non_retryable=True,
    )


def status_of_failure(err: BaseException | None) -> TaskStatus | None:
    """The status document a ``TaskFailed`` error carries, found along the chain of causes of
    ``err`` (a ``WorkflowFailureError`` or a ``ChildWorkflowError``); ``None`` for any other
    failure (cancelled, terminated, timed out, a bug)."""
    seen = 0
    while err is not None and seen < 10:
        if isinstance(err, ApplicationError) and err.type == TASK_FAILED and err.details:
            return _as_status(err.details[0])
        err = getattr(err, "cause", None) or err.__cause__
        seen += 1
    return None


def _as_status(detail: Any) -> TaskStatus | None:
    if isinstance(detail, TaskStatus):
        return detail
    try:
        return TaskStatus.model_validate(detail)
    except ValueError:
        return None
