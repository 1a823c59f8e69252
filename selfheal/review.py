"""PR auto-review (M2.3): the payloads of ``PRReview`` and the pure rules that turn a GitHub
webhook delivery into at most one review per (pull request, head sha).

Everything that comes from a payload is validated here before it is used anywhere: owner and
repo names, the head sha and the number end up in workflow ids and in a GitHub API URL path, so
they are checked, whole (``fullmatch``: no trailing newline slips through), against GitHub's own
alphabets; free text (title, branch) is only ever data. JSON may carry lone surrogates
(``"\ud800"``), which no UTF-8 encoder takes: every text read from a payload has them replaced
with U+FFFD, so a delivery is answered, stored and reviewed like any other.
"""

import re
from dataclasses import dataclass
from typing import Any, Literal

from pydantic import BaseModel, Field, ValidationError, field_validator

from selfheal.models import TaskInput

REVIEW_ACTIONS: frozenset[str] = frozenset(
    {"opened", "synchronize", "reopened", "ready_for_review"}
)
STATUS_CONTEXT = "selfheal/review"
MAX_BODY_BYTES = 25 * 1024 * 1024  # GitHub caps webhook payloads at 25 MB

# Whole-value patterns: always used with ``fullmatch``.
_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,99}")
_SHA = re.compile(r"[0-9a-f]{40}|[0-9a-f]{64}")
_SURROGATE = re.compile(r"[\ud800-\udfff]")
_TEXT_LIMIT = 1000

ReviewState = Literal["running", "succeeded", "failed", "superseded", "cancelled"]
CommitState = Literal["pending", "success", "failure", "error"]
SUPERSEDED_PREFIX = "superseded by "


class PayloadError(ValueError):
    """A delivery whose JSON is not a usable ``pull_request`` payload (answered 400)."""


def _clip(text: str, limit: int = _TEXT_LIMIT) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def scrub(text: str) -> str:
    """``text`` encodable as UTF-8: lone surrogates (valid in JSON, not in UTF-8) become U+FFFD."""
    return _SURROGATE.sub("\ufffd", text)


def is_github_name(value: str) -> bool:
    return _NAME.fullmatch(value) is not None


def is_sha(value: str) -> bool:
    return _SHA.fullmatch(value) is not None


class PullRequest(BaseModel):
    """The details of a pull request the review task carries (from the webhook payload)."""

    owner: str
    repo: str
    number: int = Field(gt=0, lt=2**31)
    head_sha: str
    title: str = ""
    url: str = ""
    branch: str = ""
    base: str = ""
    author: str = ""
    draft: bool = False
    updated_at: str | None = None
    additions: int | None = Field(default=None, ge=0)
    deletions: int | None = Field(default=None, ge=0)
    changed_files: int | None = Field(default=None, ge=0)
    commits: int | None = Field(default=None, ge=0)

    @field_validator("owner", "repo")
    @classmethod
    def _github_name(cls, value: str) -> str:
        if not is_github_name(value):
            raise ValueError(f"not a GitHub owner or repository name: {_clip(scrub(value), 60)!r}")
        return value

    @field_validator("head_sha")
    @classmethod
    def _sha(cls, value: str) -> str:
        value = value.lower()
        if not is_sha(value):
            raise ValueError("head sha must be 40 (or 64) hex digits")
        return value

    @field_validator("title", "url", "branch", "base", "author", "updated_at")
    @classmethod
    def _text(cls, value: str | None) -> str | None:
        return None if value is None else _clip(scrub(value))

    @property
    def key(self) -> str:
        return f"{self.owner}/{self.repo}#{self.number}"

    @property
    def short_sha(self) -> str:
        return self.head_sha[:12]

    def diff_stats(self) -> dict[str, int]:
        stats = {
            "additions": self.additions,
            "deletions": self.deletions,
            "changed_files": self.changed_files,
            "commits": self.commits,
        }
        return {k: v for k, v in stats.items() if v is not None}

    def context(self) -> dict[str, Any]:
        """What the reviewer agent is told about the pull request."""
        return {
            "pull_request": {
                "repository": f"{self.owner}/{self.repo}",
                "number": self.number,
                "title": self.title,
                "url": self.url,
                "branch": self.branch,
                "base": self.base,
                "author": self.author,
                "head_sha": self.head_sha,
                **({"diff_stats": self.diff_stats()} if self.diff_stats() else {}),
            }
        }


def pr_prefix(owner: str, repo: str, number: int) -> str:
    """``pr-<owner>-<repo>-<number>-``: every review of one pull request starts with it."""
    return f"pr-{owner.lower()}-{repo.lower()}-{number}-"


def pr_review_workflow_id(owner: str, repo: str, number: int, sha: str) -> str:
    return f"{pr_prefix(owner, repo, number)}{sha.lower()[:12]}"


def review_task_id(pr: PullRequest) -> str:
    """The reviewer's AgentTask id; its workflow id is ``task-review-…``."""
    return f"review-{pr.owner.lower()}-{pr.repo.lower()}-{pr.number}-{pr.short_sha}"


def review_title(pr: PullRequest) -> str:
    return _clip(f"Review {pr.key}: {pr.title}" if pr.title else f"Review {pr.key}", 200)


class PRReviewInput(BaseModel):
    """Input of ``PRReview``. ``task`` is the reviewer's AgentTask input, built (and its policies
    scaled) by the webhook receiver, so the workflow reads no clock or setting."""

    pr: PullRequest
    action: str
    task: TaskInput
    delivery_id: str | None = None
    supersedes: str | None = None  # the sha a ``synchronize`` replaced (its ``before``)
    report_status: bool = False
    status_context: str = STATUS_CONTEXT


class PRReviewResult(BaseModel):
    workflow_id: str
    pr: str
    head_sha: str
    state: ReviewState
    task_workflow_id: str
    task_state: str | None = None
    attempts: int = 0
    superseded: list[str] = Field(default_factory=list)
    statuses: list[str] = Field(default_factory=list)


class CommitStatusInput(BaseModel):
    """Input of ``github.set_commit_status``; the token is read by the activity, never passed.
    Owner, repo and sha become the API URL's path: checked whole, whoever built the input."""

    owner: str
    repo: str
    sha: str
    state: CommitState
    description: str = Field(default="", max_length=140)
    context: str = STATUS_CONTEXT
    target_url: str | None = None

    @field_validator("owner", "repo")
    @classmethod
    def _github_name(cls, value: str) -> str:
        return PullRequest._github_name(value)

    @field_validator("sha")
    @classmethod
    def _sha(cls, value: str) -> str:
        return PullRequest._sha(value)

    @field_validator("description", "context", "target_url")
    @classmethod
    def _text(cls, value: str | None) -> str | None:
        return None if value is None else scrub(value)


class CommitStatusResult(BaseModel):
    sent: bool
    http_status: int | None = None
    note: str = ""


class OlderReviewsQuery(BaseModel):
    """Input of ``review.find_older``: running reviews of the same PR, other than ``exclude``.
    Owner and repo go into a visibility query: checked whole."""

    owner: str
    repo: str
    number: int = Field(gt=0, lt=2**31)
    exclude: str
    updated_at: str | None = None

    @field_validator("owner", "repo")
    @classmethod
    def _github_name(cls, value: str) -> str:
        return PullRequest._github_name(value)


@dataclass(frozen=True)
class Decision:
    """What the receiver does with one (verified) delivery."""

    action: Literal["ping", "ignore", "review"]
    reason: str
    pr: PullRequest | None = None
    event_action: str = ""
    supersedes: str | None = None


def _get(data: Any, *path: str) -> Any:
    for key in path:
        if not isinstance(data, dict):
            return None
        data = data.get(key)
    return data


def _str(data: Any, *path: str) -> str:
    value = _get(data, *path)
    return scrub(value) if isinstance(value, str) else ""


def _int(data: Any, *path: str) -> int | None:
    value = _get(data, *path)
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def parse_pull_request(payload: Any) -> PullRequest:
    """The pull request of a ``pull_request`` payload; ``PayloadError`` if it is not one."""
    pr = _get(payload, "pull_request")
    if not isinstance(pr, dict):
        raise PayloadError("payload has no pull_request object")
    owner = _str(payload, "repository", "owner", "login")
    repo = _str(payload, "repository", "name")
    if not (owner and repo):
        full = _str(payload, "repository", "full_name") or _str(pr, "base", "repo", "full_name")
        owner, _, repo = full.partition("/")
    number = _int(pr, "number") or _int(payload, "number")
    try:
        return PullRequest(
            owner=owner,
            repo=repo,
            number=number if number is not None else 0,
            head_sha=_str(pr, "head", "sha"),
            title=_str(pr, "title"),
            url=_str(pr, "html_url"),
            branch=_str(pr, "head", "ref"),
            base=_str(pr, "base", "ref"),
            author=_str(pr, "user", "login"),
            draft=_get(pr, "draft") is True,
            updated_at=_str(pr, "updated_at") or None,
            additions=_int(pr, "additions"),
            deletions=_int(pr, "deletions"),
            changed_files=_int(pr, "changed_files"),
            commits=_int(pr, "commits"),
        )
    except ValidationError as err:
        first = err.errors()[0]
        where = ".".join(str(p) for p in first["loc"]) or "pull_request"
        raise PayloadError(f"invalid pull_request payload ({where}): {first['msg']}") from None


def decide(event: str, payload: Any) -> Decision:
    """The rules of issue M2.3: which deliveries start a review, and why the others do not."""
    if event == "ping":
        return Decision("ping", "pong")
    if event != "pull_request":
        return Decision("ignore", f"event {_clip(scrub(event), 60)!r} is not reviewed")
    action = _get(payload, "action")
    if not isinstance(action, str):
        raise PayloadError("pull_request payload has no action")
    action = scrub(action)
    if action not in REVIEW_ACTIONS:
        return Decision(
            "ignore", f"action {_clip(action, 60)!r} is not reviewed", event_action=action
        )
    pr = parse_pull_request(payload)
    if pr.draft and action != "ready_for_review":
        return Decision(
            "ignore", "draft pull request: it is reviewed once it is ready for review",
            pr=pr, event_action=action,
        )  # fmt: skip
    before = _str(payload, "before").lower() if action == "synchronize" else ""
    supersedes = before if is_sha(before) and before != pr.head_sha else None
    return Decision("review", "review requested", pr=pr, event_action=action, supersedes=supersedes)


def newer(a: str | None, b: str | None) -> bool:
    """True when update time ``a`` is strictly later than ``b`` (ISO 8601, as GitHub sends)."""
    return bool(a and b and a > b)
