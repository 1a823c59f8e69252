"""Client helpers for PR reviews: the ``PRReview`` input for a webhook's review decision, and its
start (the workflow id is the dedupe: one review per PR head commit)."""

from temporalio.client import Client
from temporalio.common import (
    Priority,
    SearchAttributePair,
    TypedSearchAttributes,
    WorkflowIDReusePolicy,
)
from temporalio.exceptions import WorkflowAlreadyStartedError

from selfheal import search_attributes as sa
from selfheal.config import Settings
from selfheal.models import PRIORITY_KEYS, AdapterSpec
from selfheal.review import (
    Decision,
    PRReviewInput,
    PullRequest,
    pr_review_workflow_id,
    review_task_id,
    review_title,
)
from starter.client import build_task_input
from workflows.pr_review import PRReview, review_memo


def build_review_input(
    settings: Settings,
    decision: Decision,
    delivery_id: str | None,
    adapter: AdapterSpec | None = None,
) -> PRReviewInput:
    """The ``PRReview`` input for a review decision: the reviewer's task at high priority with
    the PR's details, its policies scaled from the settings now."""
    pr = decision.pr
    assert pr is not None
    reviewer = settings.reviewer
    if reviewer is None:
        raise ValueError('the team has no reviewer (an agent with role = "reviewer")')
    task = build_task_input(
        settings,
        agent=reviewer,
        title=review_title(pr),
        task_id=review_task_id(pr),
        description=_description(pr),
        priority="high",
        adapter=adapter,
        context=pr.context(),
    )
    return PRReviewInput(
        pr=pr,
        action=decision.event_action,
        task=task,
        delivery_id=delivery_id,
        supersedes=decision.supersedes,
        report_status=settings.github_token is not None,
    )


def _description(pr: PullRequest) -> str:
    stats = pr.diff_stats()
    lines = [
        f"Review pull request {pr.key} at {pr.head_sha}.",
        f"{pr.title}" if pr.title else "",
        f"Branch {pr.branch} into {pr.base}, by {pr.author}. {pr.url}".strip(),
        ", ".join(f"{k.replace('_', ' ')} {v}" for k, v in stats.items()) if stats else "",
    ]
    return "\n".join(line for line in lines if line)


async def start_review(client: Client, settings: Settings, input: PRReviewInput) -> bool:
    """Start the review; False when this (PR, head sha) already has one (the id is the dedupe,
    and REJECT_DUPLICATE keeps it one even after the first review finished)."""
    pr = input.pr
    try:
        await client.start_workflow(
            PRReview.run,
            input,
            id=pr_review_workflow_id(pr.owner, pr.repo, pr.number, pr.head_sha),
            task_queue=settings.task_queue,
            id_reuse_policy=WorkflowIDReusePolicy.REJECT_DUPLICATE,
            search_attributes=TypedSearchAttributes(
                [
                    SearchAttributePair(sa.KIND, "pr-review"),
                    SearchAttributePair(sa.AGENT, input.task.agent),
                    SearchAttributePair(sa.STATE, "running"),
                ]
            ),
            memo=review_memo(input),
            priority=Priority(priority_key=PRIORITY_KEYS["high"]),
            static_summary=f"review {pr.key} at {pr.short_sha}: {pr.title}"[:200],
            static_details=(
                f"{input.action} · {pr.branch} → {pr.base} by {pr.author} · {pr.url}\n\n"
                f"reviewer {input.task.agent}, priority high · delivery {input.delivery_id}"
            ),
        )
    except WorkflowAlreadyStartedError:
        return False
    return True
