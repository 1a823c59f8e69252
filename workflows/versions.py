"""The ``workflow.patched`` decisions of the workflows, taken once at the top of ``run``.

Every patch is asked for before the workflow's first local activity. Asked for later, a patch
can be decided wrongly on replay: when the server started a new workflow task right after a
local activity's marker, the code after the activity replays inside the earlier task, before
the core has looked ahead to the patch's marker, so ``patched`` answers False and the marker
then fails the replay as nondeterministic (seen: a worker restarted mid-task, its AgentTask
wedged on ``wait-for-cancelled-attempt``). The ids are recorded in histories: never rename one.
"""

from dataclasses import dataclass

from temporalio import workflow

# A cancelled attempt is waited for (histories before it used TRY_CANCEL).
WAIT_FOR_CANCELLED_ATTEMPT = "wait-for-cancelled-attempt"
# A failed task fails its execution (it used to complete with state "failed").
TASK_FAILED_FAILS_EXECUTION = "task-failed-fails-the-execution"
# The learning loop (M2.5): learnings attached at start, advice after a failure, uses recorded.
LEARNING_LOOP = "learning-loop"
# No signal goes to an escalation known to be over (acknowledged, or every step fired).
QUIET_LADDER = "no-signal-to-an-escalation-that-is-over"
# CommitGuard's incident ledger writes are local activities (regular ones before).
LOCAL_INCIDENT_WRITES = "incident-ledger-writes-local"


@dataclass(frozen=True)
class TaskVersions:
    """AgentTask's patches; the defaults are the newest code, for a task not yet running."""

    learning_loop: bool = True
    wait_for_cancelled_attempt: bool = True
    failed_fails_execution: bool = True

    @classmethod
    def decide(cls) -> "TaskVersions":
        return cls(
            learning_loop=workflow.patched(LEARNING_LOOP),
            wait_for_cancelled_attempt=workflow.patched(WAIT_FOR_CANCELLED_ATTEMPT),
            failed_fails_execution=workflow.patched(TASK_FAILED_FAILS_EXECUTION),
        )
