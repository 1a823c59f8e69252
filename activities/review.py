"""Temporal visibility for PR reviews: which older reviews of a pull request are still running.

A ``synchronize`` names the sha it replaced, and ``PRReview`` cancels that review by id; this
sweep catches the rest (a missed delivery, a reopen after pushes) so only the newest head of a
pull request keeps a reviewer busy.
"""

from temporalio import activity
from temporalio.client import Client

from selfheal.review import OlderReviewsQuery, newer, pr_prefix

_LIMIT = 50


class ReviewActivities:
    def __init__(self, client: Client) -> None:
        self.client = client

    @activity.defn(name="review.find_older")
    async def find_older(self, query: OlderReviewsQuery) -> list[str]:
        prefix = pr_prefix(query.owner, query.repo, query.number)
        key = f"{query.owner}/{query.repo}#{query.number}".lower()
        found: list[str] = []
        # The prefix is built from validated names (no quotes); the memo check makes owner
        # "a-b"/repo "c" and owner "a"/repo "b-c" (the same prefix) distinct.
        visibility = (
            f"WorkflowType = 'PRReview' AND ExecutionStatus = 'Running' "
            f"AND WorkflowId STARTS_WITH '{prefix}'"
        )
        async for execution in self.client.list_workflows(visibility, limit=_LIMIT):
            if execution.id == query.exclude:
                continue
            memo = await execution.memo()
            if str(memo.get("pr", "")).lower() != key:
                continue
            if newer(memo.get("updated_at"), query.updated_at):
                continue  # a newer head is under review; an old delivery does not cancel it
            found.append(execution.id)
        return sorted(found)
