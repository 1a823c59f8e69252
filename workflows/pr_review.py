"""PRReview: one high-priority review of one pull request head commit (M2.3).

The GitHub webhook starts it with id ``pr-<owner>-<repo>-<number>-<sha[:12]>``; that id is the
dedupe, so a redelivery or a second event for the same head starts nothing. It first cancels the
reviews of the same pull request it supersedes (the sha a ``synchronize`` replaced, and any older
head still running), sets the commit status to pending, and runs the reviewer's ``AgentTask`` as
a child at Temporal priority high; the review heals like any task. Cancelled because a newer head
arrived, it cancels its review task and records itself as ``superseded``.
"""

import asyncio
from datetime import timedelta
from typing import Any

from temporalio import workflow
from temporalio.common import RetryPolicy
from temporalio.exceptions import ActivityError, ChildWorkflowError, FailureError
from temporalio.workflow import ParentClosePolicy

with workflow.unsafe.imports_passed_through():
    from activities.github import GitHubActivities
    from activities.review import ReviewActivities
    from selfheal import search_attributes as sa
    from selfheal.ids import task_workflow_id
    from selfheal.models import TaskStatus
    from selfheal.outcome import status_of_failure
    from selfheal.review import (
        SUPERSEDED_PREFIX,
        CommitState,
        CommitStatusInput,
        OlderReviewsQuery,
        PRReviewInput,
        PRReviewResult,
        ReviewState,
        pr_review_workflow_id,
    )
    from selfheal.task_options import task_options
    from workflows.agent_task import AgentTask


_STATUS_RETRY = RetryPolicy(
    initial_interval=timedelta(seconds=1), maximum_interval=timedelta(seconds=30),
    maximum_attempts=5,
)  # fmt: skip
_SWEEP_RETRY = RetryPolicy(initial_interval=timedelta(seconds=1), maximum_attempts=3)


@workflow.defn(name="PRReview")
class PRReview:
    @workflow.init
    def __init__(self, input: PRReviewInput) -> None:
        self._input = input
        self._result = PRReviewResult(
            workflow_id=workflow.info().workflow_id,
            pr=input.pr.key,
            head_sha=input.pr.head_sha,
            state="running",
            task_workflow_id=task_workflow_id(input.task.id),
        )

    @workflow.run
    async def run(self, input: PRReviewInput) -> PRReviewResult:
        self._ensure_attributes()
        pr, reviewer = input.pr, input.task.agent
        try:
            await self._supersede_older()
            await self._commit_status("pending", f"{reviewer} is reviewing this commit")
            self._describe(f"{reviewer} is reviewing {pr.short_sha} ({input.action})")
            status = await self._review()
        except asyncio.CancelledError:
            await self._on_cancelled()
            raise
        self._result.task_state = status.state if status else "failed"
        self._result.attempts = len(status.attempts) if status else 0
        ok = status is not None and status.state == "succeeded"
        self._set_state("succeeded" if ok else "failed")
        if ok:
            await self._commit_status("success", f"reviewed by {reviewer}")
        else:
            await self._commit_status(
                "failure", f"review by {reviewer} failed after {self._result.attempts} attempt(s)"
            )
        self._describe(f"review {self._result.state} ({self._result.attempts} attempt(s))")
        return self._result

    @workflow.query
    def result(self) -> PRReviewResult:
        return self._result

    async def _review(self) -> TaskStatus | None:
        task = self._input.task
        pr = self._input.pr
        try:
            return await workflow.execute_child_workflow(
                AgentTask.run,
                task,
                **task_options(
                    task,
                    workflow.info().task_queue,
                    details=f"priority {task.priority} · review of {pr.key} at {pr.short_sha} · "
                    f"{pr.branch} → {pr.base} by {pr.author}",
                ),
                # Superseded while the task was starting, the review ends without waiting for
                # it; the task must then be cancelled (its attempt stopped), not terminated.
                parent_close_policy=ParentClosePolicy.REQUEST_CANCEL,
            )
        except ChildWorkflowError as err:
            _raise_if_cancelled(err)
            failed = status_of_failure(err)  # a failed review task: TaskFailed, with its status
            if failed is not None:
                return failed
            cause = err.cause.message if isinstance(err.cause, FailureError) else err.message
            workflow.logger.warning(
                "review task %s ended abnormally: %s", self._result.task_workflow_id, cause
            )
            return None

    async def _supersede_older(self) -> None:
        """Cancel the reviews this head supersedes: the ``before`` of a synchronize by its id,
        then whatever older head of the same PR visibility still shows running."""
        pr = self._input.pr
        me = self._result.workflow_id
        targets: list[str] = []
        if self._input.supersedes:
            targets.append(
                pr_review_workflow_id(pr.owner, pr.repo, pr.number, self._input.supersedes)
            )
        try:
            targets += await workflow.execute_activity_method(
                ReviewActivities.find_older,
                OlderReviewsQuery(
                    owner=pr.owner,
                    repo=pr.repo,
                    number=pr.number,
                    exclude=me,
                    updated_at=pr.updated_at,
                ),
                start_to_close_timeout=timedelta(seconds=20),
                retry_policy=_SWEEP_RETRY,
                summary=f"find older running reviews of {pr.key}",
            )
        except ActivityError as err:
            _raise_if_cancelled(err)
            workflow.logger.warning("could not look for older reviews: %s", err.cause or err)
        for target in dict.fromkeys(t for t in targets if t != me):
            try:
                await workflow.get_external_workflow_handle(target).cancel(
                    reason=f"{SUPERSEDED_PREFIX}{pr.short_sha} ({me})"
                )
                self._result.superseded.append(target)
            except FailureError:
                pass  # it finished already, or never ran: nothing to supersede

    async def _on_cancelled(self) -> None:
        reason = workflow.cancellation_reason() or ""
        # From another workflow the server wraps the reason ("Cancel requested by workflow …
        # with reason: superseded by …"); from a client it arrives as sent.
        superseded = SUPERSEDED_PREFIX in reason
        if superseded:
            reason = reason[reason.index(SUPERSEDED_PREFIX) :]
        self._set_state("superseded" if superseded else "cancelled")
        self._describe(reason or "cancelled")
        await self._commit_status("error", (reason if superseded else "review cancelled")[:140])

    async def _commit_status(self, state: CommitState, description: str) -> None:
        if not self._input.report_status:
            return
        pr = self._input.pr
        try:
            result = await workflow.execute_activity_method(
                GitHubActivities.set_commit_status,
                CommitStatusInput(
                    owner=pr.owner,
                    repo=pr.repo,
                    sha=pr.head_sha,
                    state=state,
                    description=description[:140],
                    context=self._input.status_context,
                    target_url=pr.url or None,
                ),
                start_to_close_timeout=timedelta(seconds=30),
                retry_policy=_STATUS_RETRY,
                summary=f"GitHub status {state} on {pr.short_sha}",
            )
            self._result.statuses.append(state if result.sent else f"{state} (not sent)")
        except ActivityError as err:
            _raise_if_cancelled(err)
            # A status GitHub will not take must not fail the review itself.
            workflow.logger.warning("commit status %s not set: %s", state, err.cause or err)
            self._result.statuses.append(f"{state} (failed)")

    def _ensure_attributes(self) -> None:
        """The webhook sets these at start; a review started another way sets them here."""
        if workflow.info().typed_search_attributes.get(sa.STATE) is None:
            workflow.upsert_search_attributes([
                sa.KIND.value_set("pr-review"),
                sa.AGENT.value_set(self._input.task.agent),
                sa.STATE.value_set("running"),
            ])  # fmt: skip
        if "pr" not in workflow.memo():
            workflow.upsert_memo(review_memo(self._input))

    def _set_state(self, state: ReviewState) -> None:
        self._result.state = state
        workflow.upsert_search_attributes([sa.STATE.value_set(state)])

    def _describe(self, details: str) -> None:
        pr = self._input.pr
        workflow.set_current_details(
            f"**{self._result.state}** · {pr.key} at `{pr.short_sha}` · {details}\n\n"
            f"review task: {self._result.task_workflow_id}"
        )


def _raise_if_cancelled(err: Exception) -> None:
    """An activity or child that failed because this review was cancelled ends the review as
    cancelled, not as a failure to shrug off."""
    if workflow.cancellation_reason() is not None:
        raise asyncio.CancelledError from err


def review_memo(input: PRReviewInput) -> dict[str, Any]:
    """What ``review.find_older`` reads to tell one PR's reviews from another's, and their age."""
    return {"pr": input.pr.key, "head_sha": input.pr.head_sha, "updated_at": input.pr.updated_at}
