"""CommitQueue: one per repository; guards its commits one at a time, in commit order.

The hook and the CLI signal-with-start it (``enqueue``), so it exists exactly when there is work.
It runs one ``CommitGuard`` child at a time. When a commit's first parent is not the last commit
it guarded on that branch (two hooks raced, or one never ran), it first guards the commits in
between, oldest first, so a late signal never reorders the branch's history. It also keeps the
times of its auto-reverts: the 24 h cap is counted here, durably, and handed to each guard, and
the culprits found on each branch, handed to each later guard so it blames its commit with them
reverted. When a revert went on top of later commits and the tip stayed red, those commits are
guarded next, in order. After an hour with no work and no revert inside the cap's window it
ends; it continues as new after many guards so its history stays small.

Its signals take no body, null or a malformed one without failing a workflow task: such a signal
is recorded in ``ignored_signals`` (the ``status`` query).
"""

import asyncio
from datetime import datetime, timedelta
from typing import Any

from temporalio import workflow
from temporalio.common import WorkflowIDReusePolicy
from temporalio.exceptions import ChildWorkflowError, WorkflowAlreadyStartedError
from temporalio.workflow import ParentClosePolicy

with workflow.unsafe.imports_passed_through():
    from pydantic import ValidationError

    from activities.git import GitActivities
    from selfheal import search_attributes as sa
    from selfheal.rollback import (
        REVERT_WINDOW,
        CommitCheck,
        CommitGuardInput,
        CommitQueueInput,
        CommitsBetweenInput,
        GuardStatus,
        QueueStatus,
        guard_workflow_id,
        legacy_guard_workflow_id,
    )
    from workflows.commit_guard import CommitGuard


_IDLE = 3600.0
_KEEP_GUARDED = 500
_KEEP_CULPRITS = 20
_KEEP_IGNORED = 20
_GUARD_ID_PATCH = "guard-id-with-path-hash"


@workflow.defn(name="CommitQueue")
class CommitQueue:
    @workflow.init
    def __init__(self, input: CommitQueueInput) -> None:
        self._input = input
        self._pending: list[CommitCheck] = list(input.pending)
        self._guarded: list[str] = list(input.guarded)
        self._last: dict[str, str] = dict(input.last_guarded)
        self._reverts = list(input.reverts)
        self._culprits: dict[str, list[str]] = {b: list(k) for b, k in input.culprits.items()}
        self._ignored: list[str] = list(input.ignored_signals)
        self._current: str | None = None
        self._verdicts: dict[str, GuardStatus] = {}

    @workflow.run
    async def run(self, input: CommitQueueInput) -> QueueStatus:
        workflow.upsert_search_attributes(
            [sa.KIND.value_set("commit-queue"), sa.STATE.value_set("running")]
        )
        ran = 0
        while True:
            self._describe()
            try:
                await workflow.wait_condition(
                    lambda: bool(self._pending),
                    timeout=timedelta(seconds=self._idle_for()),
                    timeout_summary="idle: waiting for the next commit",
                )
            except TimeoutError:
                if not self._pending and not self._window():
                    return self.status()
                continue
            check = self._pending.pop(0)
            if not check.recheck:
                await self._fill_gap(check)
            await self._guard(check)
            ran += 1
            if ran >= input.continue_after or workflow.info().is_continue_as_new_suggested():
                await workflow.wait_condition(workflow.all_handlers_finished)
                workflow.continue_as_new(
                    CommitQueueInput(
                        repo_path=input.repo_path, repo_name=input.repo_name,
                        pending=self._pending, guarded=self._guarded,
                        last_guarded=self._last, reverts=self._window(),
                        culprits=self._culprits, ignored_signals=self._ignored,
                        continue_after=input.continue_after,
                    )
                )  # fmt: skip

    @workflow.signal
    def verdict(self, body: Any = None) -> None:
        """From a guard: its verdict, sent before it waits for its #dev notice to go out."""
        try:
            status = GuardStatus.model_validate(body)
        except ValidationError:
            self._ignore("verdict", body)
            return
        self._verdicts[status.sha] = status

    @workflow.signal
    def enqueue(self, body: Any = None) -> None:
        """A commit to guard. A re-check (``commit check --recheck``) of a judged commit runs its
        guard again; a newer request for a commit still pending replaces the older one."""
        try:
            check = CommitCheck.model_validate(body)
        except ValidationError:
            self._ignore("enqueue", body)
            return
        queued = next((i for i, c in enumerate(self._pending) if c.sha == check.sha), None)
        if queued is not None:
            if check.recheck or check.policy != self._pending[queued].policy:
                self._pending[queued] = check
            return
        if check.recheck or not self._known(check.sha):
            self._pending.append(check)

    @workflow.query
    def status(self) -> QueueStatus:
        return QueueStatus(
            repo=self._input.repo_name,
            current=self._current,
            pending=[c.sha for c in self._pending],
            guarded=self._guarded[-50:],
            reverts_in_window=len(self._window()),
            culprits=self._culprits,
            ignored_signals=self._ignored,
        )

    def _ignore(self, name: str, body: Any) -> None:
        shown = "no body" if body is None else repr(body)[:120]
        workflow.logger.warning("ignored a malformed %s signal: %s", name, shown)
        self._ignored = [*self._ignored, f"{name}: {shown}"][-_KEEP_IGNORED:]

    def _known(self, sha: str) -> bool:
        return (
            sha == self._current or sha in self._guarded or any(c.sha == sha for c in self._pending)
        )

    async def _fill_gap(self, check: CommitCheck) -> None:
        last = self._last.get(check.branch or "")
        if not check.branch or not last or not check.first_parent or check.first_parent == last:
            return
        between = await workflow.execute_activity_method(
            GitActivities.commits_between,
            CommitsBetweenInput(repo_path=check.repo_path, base=last, head=check.sha),
            start_to_close_timeout=timedelta(seconds=60),
            summary=f"commits between {last[:12]} and {check.sha[:12]}",
        )
        for sha in between:
            if sha in self._guarded or sha == check.sha:
                continue
            queued = next((c for c in self._pending if c.sha == sha), None)
            if queued:
                self._pending.remove(queued)
            await self._guard(queued or check.model_copy(update={"sha": sha, "first_parent": None}))

    async def _guard(self, check: CommitCheck) -> None:
        self._current = check.sha
        self._describe()
        status: GuardStatus | None = None
        branch = check.branch or ""
        if workflow.patched(_GUARD_ID_PATCH):
            guard_id = guard_workflow_id(check.repo_name, check.repo_path, check.sha)
        else:
            guard_id = legacy_guard_workflow_id(check.repo_name, check.sha)
        try:
            child = await workflow.start_child_workflow(
                CommitGuard.run,
                CommitGuardInput(
                    check=check, recent_reverts=self._window(),
                    culprits=[k for k in self._culprits.get(branch, []) if k != check.sha],
                ),
                id=guard_id,
                id_reuse_policy=WorkflowIDReusePolicy.ALLOW_DUPLICATE
                if check.recheck else WorkflowIDReusePolicy.ALLOW_DUPLICATE_FAILED_ONLY,
                parent_close_policy=ParentClosePolicy.ABANDON,
                static_summary=f"guard {check.repo_name}@{check.sha[:12]}"
                + (f" (re-check {check.recheck})" if check.recheck else ""),
            )  # fmt: skip
            result = asyncio.ensure_future(_result(child))
            await workflow.wait_condition(lambda: check.sha in self._verdicts or result.done())
            status = self._verdicts.pop(check.sha, None) or result.result()
        except WorkflowAlreadyStartedError:
            workflow.logger.info("commit %s was guarded already", check.sha[:12])
        except ChildWorkflowError as err:  # one commit's trouble never blocks the queue
            workflow.logger.warning("guard of %s failed: %s", check.sha[:12], err)
        self._current = None
        self._guarded = [*(g for g in self._guarded if g != check.sha), check.sha][-_KEEP_GUARDED:]
        if check.branch and not check.recheck:  # a re-check never moves the branch back
            self._last[check.branch] = (status.revert_sha if status else None) or check.sha
        if status and status.reverted_at:
            self._reverts.append(status.reverted_at)
        if status and status.culprit:
            known = self._culprits.get(branch, [])
            if check.sha not in known:
                self._culprits[branch] = [*known, check.sha][-_KEEP_CULPRITS:]
        if status and status.deferred_to:
            self._guard_next(check, status.deferred_to)

    def _guard_next(self, check: CommitCheck, later: list[str]) -> None:
        """The commits a revert went on top of, oldest first, ahead of the rest of the queue:
        the tip stayed red, and the first of them to blame is among them."""
        ahead: list[CommitCheck] = []
        for sha in later:
            queued = next((c for c in self._pending if c.sha == sha), None)
            if queued:
                self._pending.remove(queued)
                ahead.append(queued)
            elif not self._known(sha):
                ahead.append(check.model_copy(update={
                    "sha": sha, "first_parent": None, "recheck": 0,
                    "previous_incident": None, "previous_escalation": None,
                }))  # fmt: skip
        self._pending = ahead + self._pending

    def _window(self) -> list[datetime]:
        now = workflow.now()
        return [t for t in self._reverts if (now - t).total_seconds() < REVERT_WINDOW]

    def _idle_for(self) -> float:
        reverts = self._window()
        if not reverts:
            return _IDLE
        until_clear = REVERT_WINDOW - (workflow.now() - min(reverts)).total_seconds()
        return max(_IDLE, until_clear + 1)

    def _describe(self) -> None:
        doing = f"guarding {self._current[:12]}" if self._current else "idle"
        workflow.set_current_details(
            f"**{self._input.repo_name}** · {doing} · {len(self._pending)} pending · "
            f"{len(self._window())} auto-revert(s) in 24 h"
        )


async def _result(child: workflow.ChildWorkflowHandle[Any, GuardStatus]) -> GuardStatus:
    return await child
