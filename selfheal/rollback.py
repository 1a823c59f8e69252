"""Git rollback (M2.2) payloads, ids and commit-message rules.

Pure and side-effect free, so workflows import it through the sandbox. A ``CommitCheck`` is what
the hook or the CLI sends: one commit plus every policy it is guarded under, already scaled.
"""

import hashlib
import re
import shlex
from datetime import datetime
from typing import Literal

from pydantic import BaseModel, Field

from selfheal.ids import safe_id
from selfheal.policies import EscalationLadder, RollbackPolicy

REVERT_TRAILER = "Selfheal-Revert-Of"
NO_REVERT_TRAILER = "Selfheal-No-Revert"
REVERT_WINDOW = 24 * 3600.0  # the cap counts auto-reverts over this many seconds
_TRAILER = re.compile(r"([A-Za-z0-9-]+):\s*(.*?)\s*")  # used with fullmatch
_GIT_REVERT = re.compile(r"This reverts commit [0-9a-f]{7,40}")

GuardState = Literal[
    "running",
    "passed",  # the build is green: nothing to do
    "flaky",  # failed once, passed on the re-run: an incident, no revert
    "parent-broken",  # the parent fails too: not this commit's fault; escalated
    "setup-broken",  # the build command or setup could not run at all; escalated
    "reverted",  # reverted and the revert builds green
    "inherited",  # red only because of an earlier culprit: green with it reverted; no escalation
    "revert-failed",  # reverted, but the build is still red; escalated
    "refused",  # culprit, but not reverted (dirty tree, conflict, a revert, ...); escalated
    "capped",  # culprit, but the 24 h cap is reached; escalated
    "opted-out",  # culprit whose message says Selfheal-No-Revert: true; escalated
    "disabled",  # culprit, but the rollback kill switch is off; escalated
    "skipped",  # the commit is gone from its branch, or was guarded already
]


def repo_key(repo_path: str) -> str:
    """A short stable hash of the repository path (two repos may share a name)."""
    return hashlib.sha256(repo_path.encode()).hexdigest()[:8]


def guard_workflow_id(repo_name: str, repo_path: str, sha: str) -> str:
    """``commit-<repo name>-<hash of the repo path, 8>-<sha[:12]>`` (DESIGN §4)."""
    return f"commit-{safe_id(repo_name)}-{repo_key(repo_path)}-{sha[:12]}"


def legacy_guard_workflow_id(repo_name: str, sha: str) -> str:
    """The id before the path hash, kept for queues whose history started children with it."""
    return f"commit-{safe_id(repo_name)}-{sha[:12]}"


def incident_key(workflow_id: str, recheck: int) -> str:
    """One incident per judgement: the first keeps the guard's id, a re-check gets its own."""
    return workflow_id if recheck == 0 else f"{workflow_id}-recheck-{recheck}"


def queue_workflow_id(repo_name: str, repo_path: str) -> str:
    return f"commit-queue-{safe_id(repo_name)}-{repo_key(repo_path)}"


NPM_TOOLS = frozenset({"npx", "npm", "yarn", "pnpm"})


def program_of(command: str) -> str | None:
    """The program a shell command runs first (after ``VAR=value`` words), or None."""
    try:
        words = shlex.split(command)
    except ValueError:
        return None
    return next((w for w in words if "=" not in w), None)


def needs_package_json(command: str) -> bool:
    """An npm tool (the seed's ``npx next build``): without a package.json it cannot build."""
    program = program_of(command)
    return program is not None and program.rsplit("/", 1)[-1] in NPM_TOOLS


def trailers(message: str) -> dict[str, str]:
    """The trailers of a commit message (its last paragraph of ``Key: value`` lines)."""
    paragraphs = [p for p in message.strip().split("\n\n") if p.strip()]
    if len(paragraphs) < 2:
        return {}
    found: dict[str, str] = {}
    for line in paragraphs[-1].splitlines():
        match = _TRAILER.fullmatch(line.strip())
        if not match:
            return {}
        found[match.group(1).lower()] = match.group(2)
    return found


def opted_out(message: str) -> bool:
    return trailers(message).get(NO_REVERT_TRAILER.lower(), "").lower() == "true"


def revert_of(message: str) -> str | None:
    """The sha a selfheal revert reverts, from its trailer."""
    return trailers(message).get(REVERT_TRAILER.lower()) or None


def is_revert(message: str) -> bool:
    """A selfheal revert, or any ``git revert`` (whose body says "This reverts commit ...")."""
    return revert_of(message) is not None or bool(_GIT_REVERT.search(message))


def tail_lines(text: str, lines: int = 12, width: int = 200) -> str:
    kept = [line[:width] for line in text.rstrip().splitlines()[-lines:]]
    return "\n".join(kept)


def revert_message(
    subject: str, sha: str, parent: str, build_command: str, failure: str, merge: bool
) -> str:
    failure_block = "\n".join(f"    {line}" for line in tail_lines(failure).splitlines())
    mainline = " (a merge: reverted against its first parent, -m 1)" if merge else ""
    return (
        f'Revert "{subject}"\n\n'
        f"This reverts commit {sha}{mainline}.\n\n"
        f"selfheal: the build fails at {sha[:12]} and passes at its parent {parent[:12]}.\n"
        f"Build command: {build_command}\n"
        f"Failure:\n{failure_block or '    (no output)'}\n\n"
        f"{REVERT_TRAILER}: {sha}\n"
    )


class CommitCheck(BaseModel):
    """One commit to guard (sent by the hook or ``selfheal commit check``)."""

    repo_path: str
    repo_name: str
    sha: str
    branch: str | None  # the branch the commit was made on; None when HEAD was detached
    first_parent: str | None = None
    policy: RollbackPolicy = Field(default_factory=RollbackPolicy)
    escalation: EscalationLadder = Field(default_factory=EscalationLadder)
    peers: dict[str, list[str]] = Field(default_factory=dict)  # the team, for escalations
    lead: str | None = "MAX"
    heartbeat_timeout: float = 10.0
    requested_at: datetime | None = None
    time_scale: float = 1.0
    recheck: int = 0  # 0: the commit's first judgement; n: the n-th ``commit check --recheck``
    previous_incident: str | None = None  # a re-check settles the judgement before it
    previous_escalation: str | None = None  # ... and stops its ladder if it still runs


class CommitGuardInput(BaseModel):
    """Input of ``CommitGuard`` (id ``commit-<repo name>-<path hash>-<sha[:12]>``)."""

    check: CommitCheck
    recent_reverts: list[datetime] = Field(default_factory=list)
    # The culprits the queue already found on this branch, oldest first. Each build reverts those
    # that are ancestors of the built commit and not yet reverted there, so a commit is blamed
    # against its parent as if the known culprits were gone.
    culprits: list[str] = Field(default_factory=list)


class CommitQueueInput(BaseModel):
    """Input of ``CommitQueue``, the per-repository serializer; carried across continue-as-new."""

    repo_path: str
    repo_name: str
    pending: list[CommitCheck] = Field(default_factory=list)
    guarded: list[str] = Field(default_factory=list)
    last_guarded: dict[str, str] = Field(default_factory=dict)
    reverts: list[datetime] = Field(default_factory=list)
    culprits: dict[str, list[str]] = Field(default_factory=dict)  # per branch, oldest first
    ignored_signals: list[str] = Field(default_factory=list)
    continue_after: int = 200  # guards per run before it continues as new (small in tests)


class CommitInfo(BaseModel):
    sha: str
    parents: list[str]
    author: str
    author_email: str
    subject: str
    message: str
    committed_at: datetime
    on_branch: bool  # still reachable from its branch (None branch: always True)


class InspectInput(BaseModel):
    repo_path: str
    sha: str
    branch: str | None = None


class BuildInput(BaseModel):
    repo_path: str
    sha: str
    command: str
    setup_command: str | None = None
    timeout: float = 900.0
    label: str = "build"
    revert: list[str] = Field(default_factory=list)  # culprits to revert first, where they apply
    carried_of: list[str] = Field(default_factory=list)  # culprits to report, not revert


class BuildResult(BaseModel):
    sha: str
    label: str = "build"
    ok: bool
    exit_code: int | None
    broken_setup: bool = False
    timed_out: bool = False
    phase: Literal["setup", "build"] = "build"
    duration: float = 0.0
    tail: str = ""
    reverted: list[str] = Field(default_factory=list)  # the culprits reverted in this build's tree
    carried: list[str] = Field(default_factory=list)  # of ``carried_of``, those this commit holds
    built: bool = True  # False: not built (a culprit would not revert cleanly here)
    isolation_error: str | None = None


class RevertInput(BaseModel):
    repo_path: str
    sha: str
    branch: str | None
    build_command: str
    failure: str
    push: bool = False
    settle: float = 3.0  # how long a dirty checkout may take to be committed before we refuse


class RevertResult(BaseModel):
    outcome: Literal["reverted", "existing", "refused", "gone"]
    revert_sha: str | None = None
    reason: str | None = None
    tree_is_parent: bool = False  # the new head's tree is the (green) parent's: no build needed
    pushed: bool | None = None
    push_error: str | None = None
    tip: str | None = None  # the branch tip the revert went on top of
    later: list[str] = Field(default_factory=list)  # commits after the culprit, before the revert


class CommitsBetweenInput(BaseModel):
    repo_path: str
    base: str
    head: str
    limit: int = 20


class GuardLedgerEntry(BaseModel):
    """Input of ``ledger.record_commit_guard``: the guard's row as it is now (an upsert)."""

    workflow_id: str
    repo: str
    repo_path: str
    sha: str
    branch: str | None = None
    author: str | None = None
    subject: str | None = None
    build_command: str
    state: GuardState
    failure_tail: str | None = None
    revert_sha: str | None = None
    incident_key: str | None = None
    committed_at: datetime | None = None
    detected_at: datetime | None = None
    reverted_at: datetime | None = None
    verified_at: datetime | None = None


class GuardStatus(BaseModel):
    """What ``CommitGuard`` returns (and its ``status`` query): the commit's story so far."""

    workflow_id: str
    repo: str
    sha: str
    branch: str | None
    state: GuardState = "running"
    reason: str | None = None
    author: str | None = None
    subject: str | None = None
    build_command: str = ""
    builds: list[BuildResult] = Field(default_factory=list)
    revert_sha: str | None = None
    incident_key: str | None = None
    incident_kind: str | None = None
    escalation_id: str | None = None
    escalations: list[str] = Field(default_factory=list)
    committed_at: datetime | None = None
    detected_at: datetime | None = None
    reverted_at: datetime | None = None
    verified_at: datetime | None = None
    pushed: bool | None = None
    culprit: bool = False  # it breaks a green parent (whether or not it could be reverted)
    culprits: list[str] = Field(default_factory=list)  # earlier culprits its builds reverted
    # The revert went on top of later commits not judged yet and the tip is still red: the
    # verdict on the tip is left to their guards, which the queue runs next.
    deferred_to: list[str] = Field(default_factory=list)
    recheck: int = 0
    ignored_signals: list[str] = Field(default_factory=list)


class QueueStatus(BaseModel):
    repo: str
    current: str | None = None
    pending: list[str] = Field(default_factory=list)
    guarded: list[str] = Field(default_factory=list)
    reverts_in_window: int = 0
    culprits: dict[str, list[str]] = Field(default_factory=dict)
    ignored_signals: list[str] = Field(default_factory=list)
