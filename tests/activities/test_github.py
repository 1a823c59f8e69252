"""``github.set_commit_status`` against a local server playing the GitHub REST API."""

import logging

import pytest
from pydantic import SecretStr, ValidationError
from temporalio.exceptions import ApplicationError
from temporalio.testing import ActivityEnvironment

from activities.github import GitHubActivities, status_url
from selfheal.config import Settings
from selfheal.review import CommitStatusInput
from starter.testing import FakeGitHub, serving

SHA = "0123456789abcdef0123456789abcdef01234567"
STATUS = CommitStatusInput(
    owner="octo", repo="web", sha=SHA, state="pending", description="QUINN is reviewing this commit"
)


async def test_posts_the_status_with_the_token_and_never_logs_it(
    settings: Settings, caplog: pytest.LogCaptureFixture
):
    fake = FakeGitHub()
    async with serving(fake.app()) as url:
        activities = GitHubActivities(settings.model_copy(update={
            "github_token": SecretStr("sekrit-token"), "github_api": url + "/"}))  # fmt: skip
        with caplog.at_level(logging.DEBUG):
            result = await ActivityEnvironment().run(activities.set_commit_status, STATUS)
    assert result.sent and result.http_status == 201
    [call] = fake.calls
    assert (call.owner, call.repo, call.sha, call.authorization) == (
        "octo",
        "web",
        SHA,
        "Bearer sekrit-token",
    )
    assert call.body == {"state": "pending", "description": "QUINN is reviewing this commit",
                         "context": "selfheal/review"}  # fmt: skip
    assert "sekrit-token" not in caplog.text


async def test_no_token_is_a_logged_no_op(settings: Settings, caplog: pytest.LogCaptureFixture):
    with caplog.at_level(logging.INFO):
        result = await ActivityEnvironment().run(
            GitHubActivities(settings).set_commit_status, STATUS
        )
    assert not result.sent and "no GitHub token" in caplog.text


@pytest.mark.parametrize(
    ("fake", "retryable"), [(FakeGitHub(fail_first=99), True), (FakeGitHub(refuse=True), False)]
)
async def test_5xx_is_retryable_and_4xx_is_not(
    settings: Settings, fake: FakeGitHub, retryable: bool
):
    async with serving(fake.app()) as url:
        activities = GitHubActivities(settings.model_copy(update={
            "github_token": SecretStr("t"), "github_api": url}))  # fmt: skip
        with pytest.raises(ApplicationError) as err:
            await ActivityEnvironment().run(activities.set_commit_status, STATUS)
    assert err.value.non_retryable is not retryable


def test_the_url_quotes_every_path_segment():
    odd = STATUS.model_copy(update={"repo": "we b", "owner": "o?x"})
    assert (
        status_url("https://api.github.com/", odd)
        == f"https://api.github.com/repos/o%3Fx/we%20b/statuses/{SHA}"
    )


@pytest.mark.parametrize(
    "bad", [{"owner": "octo\n"}, {"repo": "web\n"}, {"sha": SHA + "\n"}, {"owner": "../octo"}]
)
def test_a_status_for_a_name_or_sha_not_matched_whole_is_refused(bad: dict[str, str]):
    """Owner, repo and sha become the API URL's path: a trailing newline is not let through."""
    with pytest.raises(ValidationError):
        CommitStatusInput.model_validate(STATUS.model_dump() | bad)
