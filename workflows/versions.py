"""The ``workflow.patched`` decision of AgentTask and CommitGuard, taken once at the top of ``run``.

Every change to their commands since the first release (v1: tests/histories/v1_*) sits behind one
marker, ``selfheal-v2``: a failed task fails its execution, a cancelled attempt is waited for, the
learning loop (M2.5), no signal to an escalation that is over, CommitGuard's incident ledger
writes as local activities. One marker per history rather than one per change, because each
marker costs two events (the marker and its search attribute upsert) on every task, and the
success path must stay within 2x a bare workflow's events (bench/retry_overhead.py). A later
change to the commands adds its own id here.

The marker is asked for before the workflow's first local activity. Asked for later, a patch can
be decided wrongly on replay: when the server started a new workflow task right after a local
activity's marker, the code after the activity replays inside the earlier task, before the core
has looked ahead to the patch's marker, so ``patched`` answers False and the marker then fails
the replay as nondeterministic (seen: a worker restarted mid-task wedged its AgentTask). The id
is recorded in histories: never rename it.
"""

from dataclasses import dataclass, fields

from temporalio import workflow

V2 = "selfheal-v2"


@dataclass(frozen=True)
class Versions:
    """What the history says about the code that wrote it, one flag per behaviour (each use site
    names the behaviour it depends on); the defaults are the newest code."""

    learning_loop: bool = True
    wait_for_cancelled_attempt: bool = True
    failed_fails_execution: bool = True
    quiet_ladder: bool = True
    local_incident_writes: bool = True

    @classmethod
    def decide(cls) -> "Versions":
        v2 = workflow.patched(V2)  # every behaviour above arrived with v2
        return cls(**dict.fromkeys((f.name for f in fields(cls)), v2))
