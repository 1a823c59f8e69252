"""The pure rules that turn a delivery into a review decision, and the ids they produce."""

import pytest

from selfheal.review import PayloadError, decide, pr_review_workflow_id
from starter.testing import pull_request_event

SHA = "0123456789abcdef0123456789abcdef01234567"


@pytest.mark.parametrize("action", ["opened", "synchronize", "reopened", "ready_for_review"])
def test_review_actions_start_a_review(action: str):
    decision = decide("pull_request", pull_request_event(action, SHA, owner="Octo", number=12))
    assert decision.action == "review" and decision.pr is not None
    assert (
        pr_review_workflow_id(decision.pr.owner, decision.pr.repo, 12, SHA)
        == "pr-octo-web-12-0123456789ab"
    )


def test_synchronize_names_the_sha_it_supersedes():
    before = "f" * 40
    decision = decide("pull_request", pull_request_event("synchronize", SHA, before=before))
    assert decision.supersedes == before
    same = decide("pull_request", pull_request_event("synchronize", SHA, before=SHA))
    assert same.supersedes is None


def test_drafts_wait_for_ready_for_review():
    assert decide("pull_request", pull_request_event("opened", SHA, draft=True)).action == "ignore"
    ready = decide("pull_request", pull_request_event("ready_for_review", SHA, draft=False))
    assert ready.action == "review"


@pytest.mark.parametrize(
    ("event", "action"),
    [("issues", "opened"), ("pull_request", "closed"), ("pull_request", "edited"), ("push", "")],
)
def test_other_events_and_actions_are_ignored_with_a_reason(event: str, action: str):
    decision = decide(event, pull_request_event(action, SHA))
    assert decision.action == "ignore" and "not reviewed" in decision.reason


@pytest.mark.parametrize("change", [
    {"repository": {"name": "..", "owner": {"login": "octo"}}},
    {"repository": {"name": "web", "owner": {"login": "a/b"}}},
    {"repository": {"name": "web;rm", "owner": {"login": "octo"}}},
    {"pull_request": {"number": 1, "head": {"sha": "HEAD"}}},
    {"pull_request": {"number": -1, "head": {"sha": SHA}}},
    {"pull_request": "nope"},
])  # fmt: skip
def test_names_shas_and_numbers_are_validated(change: dict):
    payload = pull_request_event("opened", SHA) | change
    with pytest.raises(PayloadError):
        decide("pull_request", payload)


def test_long_titles_are_clipped_not_refused():
    decision = decide("pull_request", pull_request_event("opened", SHA, title="x" * 10_000))
    assert decision.pr is not None and len(decision.pr.title) == 1000
