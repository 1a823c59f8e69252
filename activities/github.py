"""GitHub REST: commit statuses on a pull request's head sha (``selfheal/review`` context).

The token is read from the settings when the activity runs, so it is never in a workflow payload,
a history or a log line. With no token configured every call is a logged no-op.
"""

import logging
from urllib.parse import quote

import httpx
from temporalio import activity
from temporalio.exceptions import ApplicationError

from selfheal.config import Settings
from selfheal.review import CommitStatusInput, CommitStatusResult

log = logging.getLogger(__name__)

# Worth another try: rate limits and GitHub's own trouble. Anything else 4xx will not get better.
_RETRYABLE = {408, 429, 500, 502, 503, 504}


def status_url(api: str, input: CommitStatusInput) -> str:
    owner, repo, sha = (quote(part, safe="") for part in (input.owner, input.repo, input.sha))
    return f"{api.rstrip('/')}/repos/{owner}/{repo}/statuses/{sha}"


class GitHubActivities:
    def __init__(self, settings: Settings, timeout: float = 10.0) -> None:
        self.settings = settings
        self.timeout = timeout

    @activity.defn(name="github.set_commit_status")
    async def set_commit_status(self, input: CommitStatusInput) -> CommitStatusResult:
        token = self.settings.github_token
        if token is None:
            log.info(
                "no GitHub token configured: commit status %s on %s/%s@%s not sent",
                input.state,
                input.owner,
                input.repo,
                input.sha[:12],
            )
            return CommitStatusResult(sent=False, note="no GitHub token configured")
        body: dict[str, str] = {
            "state": input.state,
            "description": input.description,
            "context": input.context,
        }
        if input.target_url:
            body["target_url"] = input.target_url
        headers = {
            "Authorization": f"Bearer {token.get_secret_value()}",
            "Accept": "application/vnd.github+json",
            "X-GitHub-Api-Version": "2022-11-28",
            "User-Agent": "selfheal",
        }
        url = status_url(self.settings.github_api, input)
        try:
            async with httpx.AsyncClient(timeout=self.timeout) as http:
                response = await http.post(url, json=body, headers=headers)
        except httpx.HTTPError as err:
            raise ApplicationError(f"GitHub API unreachable: {type(err).__name__}") from None
        if response.status_code in _RETRYABLE:
            raise ApplicationError(f"GitHub API answered {response.status_code}")
        if response.status_code >= 400:
            raise ApplicationError(
                f"GitHub API refused the commit status: {response.status_code}",
                non_retryable=True,
            )
        log.info(
            "commit status %s on %s/%s@%s", input.state, input.owner, input.repo, input.sha[:12]
        )
        return CommitStatusResult(sent=True, http_status=response.status_code)
