"""``POST /webhooks/github``: a signed GitHub delivery becomes at most one ``PRReview``.

Order of checks, so that nothing from an unverified body is ever interpreted: the signature
header's presence and algorithm (401), the declared and the actual body size (413), the
HMAC-SHA256 of the raw body against the configured secret in constant time (401); only then the
event, the JSON (400) and the rules in ``selfheal.review.decide``. The answer comes as soon as
Temporal has accepted the start (or said the review already exists); the review runs there.

A busy or unreachable Temporal never holds an answer past ``webhook_ack_budget`` (15 ms): the
delivery is then kept in the ledger's outbox, answered 202, and its review is started from the
outbox (the workflow id is still the dedupe). GitHub does not redeliver on its own, so a
delivery it was told is accepted must not depend on Temporal answering in time.
"""

import asyncio
import contextlib
import hashlib
import hmac
import json
import logging
from collections.abc import AsyncIterator
from typing import Any
from urllib.parse import parse_qs

from starlette.requests import ClientDisconnect, Request
from starlette.responses import JSONResponse
from starlette.routing import BaseRoute, Route
from temporalio.client import Client
from temporalio.common import (
    Priority,
    SearchAttributePair,
    TypedSearchAttributes,
    WorkflowIDReusePolicy,
)
from temporalio.exceptions import WorkflowAlreadyStartedError
from temporalio.service import RPCError

from activities.ledger import Ledger
from selfheal import search_attributes as sa
from selfheal.config import Settings
from selfheal.models import PRIORITY_KEYS, AdapterSpec
from selfheal.review import (
    MAX_BODY_BYTES,
    Decision,
    PayloadError,
    PRReviewInput,
    PullRequest,
    decide,
    pr_review_workflow_id,
    review_task_id,
    review_title,
)
from starter.client import build_task_input
from workflows.pr_review import PRReview, review_memo

PATH = "/webhooks/github"
log = logging.getLogger(__name__)


class _TooLarge(Exception):
    pass


def sign(secret: bytes, body: bytes) -> str:
    """The ``X-Hub-Signature-256`` value GitHub sends for ``body``."""
    return "sha256=" + hmac.new(secret, body, hashlib.sha256).hexdigest()


class _Answer(JSONResponse):
    """JSON with non-ASCII escaped: an answer is always encodable, whatever text a payload
    carried (payload text is scrubbed of lone surrogates already; this is the backstop)."""

    def render(self, content: Any) -> bytes:
        return json.dumps(content, separators=(",", ":")).encode("ascii")


def _answer(status: int, **body: Any) -> JSONResponse:
    return _Answer(body, status_code=status)


async def _read_body(request: Request, limit: int) -> bytes:
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise _TooLarge
        chunks.append(chunk)
    return b"".join(chunks)


def _payload(body: bytes, content_type: str) -> Any:
    """The JSON payload, sent as ``application/json`` or GitHub's form encoding (payload=…)."""
    if content_type.split(";")[0].strip().lower() == "application/x-www-form-urlencoded":
        fields = parse_qs(body.decode("utf-8"), strict_parsing=False)
        if "payload" not in fields:
            raise ValueError("form body has no payload field")
        return json.loads(fields["payload"][0])
    return json.loads(body)


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


class GitHubWebhook:
    def __init__(
        self, settings: Settings, client: Client, adapter: AdapterSpec | None = None
    ) -> None:
        self.settings = settings
        self.client = client
        self.adapter = adapter
        secret = settings.github_secret
        self._secret = secret.get_secret_value().encode() if secret else None
        self._ledger: Ledger | None = None
        self._kick: asyncio.Event | None = None
        self._drainer: asyncio.Task[None] | None = None
        self._late: set[asyncio.Future[bool]] = set()
        self._in_flight: set[str] = set()

    def routes(self) -> list[BaseRoute]:
        return [Route(PATH, self.handle, methods=["POST"])]

    @contextlib.asynccontextmanager
    async def lifespan(self, _app: Any) -> AsyncIterator[None]:
        """Start reviews left in the outbox by an earlier process, then keep draining it."""
        self._ensure_drainer()
        try:
            yield
        finally:
            if self._drainer:
                self._drainer.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await self._drainer

    @property
    def ledger(self) -> Ledger:
        if self._ledger is None:
            self._ledger = Ledger(self.settings.ledger_url)
        return self._ledger

    def _ensure_drainer(self) -> None:
        if self._kick is None:
            self._kick = asyncio.Event()
        if self._drainer is None or self._drainer.done():
            self._drainer = asyncio.create_task(self._drain())

    async def _drain(self) -> None:
        assert self._kick is not None
        wait = 5.0
        while True:
            self._kick.clear()
            try:
                for workflow_id, raw in await asyncio.to_thread(self.ledger.queued_reviews):
                    if workflow_id in self._in_flight:
                        continue  # its own start is still under way
                    await start_review(
                        self.client, self.settings, PRReviewInput.model_validate_json(raw)
                    )
                    await asyncio.to_thread(self.ledger.review_started, workflow_id)
                wait = 5.0
            except RPCError as err:
                log.warning("outbox: Temporal refused a start (%s); retrying", err.message)
                wait = min(wait * 2, 60.0)
            except Exception:
                log.exception("outbox: could not drain")
                wait = min(wait * 2, 60.0)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._kick.wait(), wait)

    async def _start_or_queue(self, input: PRReviewInput, workflow_id: str) -> tuple[bool, bool]:
        """(a new review, still queued). The outbox's primary key is the first dedupe, so a
        redelivery never waits on Temporal; a new review is answered started if Temporal
        accepts it within the budget, else queued (its start goes on; the outbox backs it)."""
        fresh = await asyncio.to_thread(
            self.ledger.queue_review, workflow_id, input.model_dump_json(), input.delivery_id
        )
        if not fresh:
            return False, False
        attempt = asyncio.ensure_future(self._start_and_mark(input, workflow_id))
        try:
            started = await asyncio.wait_for(
                asyncio.shield(attempt), self.settings.webhook_ack_budget
            )
        except TimeoutError:
            self._late.add(attempt)
            attempt.add_done_callback(self._settle)
        except RPCError as err:
            log.warning("delivery %s: Temporal refused the start: %s", input.delivery_id,
                        err.message)  # fmt: skip
        else:
            return started, False
        self._ensure_drainer()
        assert self._kick is not None
        self._kick.set()
        return True, True

    async def _start_and_mark(self, input: PRReviewInput, workflow_id: str) -> bool:
        self._in_flight.add(workflow_id)
        try:
            started = await start_review(self.client, self.settings, input)
            await asyncio.to_thread(self.ledger.review_started, workflow_id)
            return started
        finally:
            self._in_flight.discard(workflow_id)

    def _settle(self, attempt: asyncio.Future[bool]) -> None:
        self._late.discard(attempt)
        if not attempt.cancelled() and attempt.exception():
            log.info("a late start failed; the outbox retries it: %s", attempt.exception())

    async def handle(self, request: Request) -> JSONResponse:
        signature = request.headers.get("x-hub-signature-256", "")
        if self._secret is None:
            return _answer(401, error="no webhook secret is configured (SELFHEAL_GITHUB_SECRET)")
        if not signature.startswith("sha256="):
            return _answer(401, error="missing or unsupported signature: "
                           "X-Hub-Signature-256 (sha256=…) is required")  # fmt: skip
        declared = request.headers.get("content-length")
        if declared is not None:
            if not declared.isdigit():
                return _answer(400, error="invalid Content-Length")
            if int(declared) > MAX_BODY_BYTES:
                return _answer(413, error="payload larger than 25 MB")
        try:
            body = await _read_body(request, MAX_BODY_BYTES)
        except _TooLarge:
            return _answer(413, error="payload larger than 25 MB")
        except ClientDisconnect:
            return _answer(400, error="client went away")
        if not hmac.compare_digest(sign(self._secret, body).encode(), signature.encode()):
            return _answer(401, error="signature does not match")
        return await self._verified(request, body)

    async def _verified(self, request: Request, body: bytes) -> JSONResponse:
        event = request.headers.get("x-github-event", "").strip()
        delivery = request.headers.get("x-github-delivery") or None
        if not event:
            return _answer(400, error="missing X-GitHub-Event header")
        try:
            payload = _payload(body, request.headers.get("content-type", ""))
            decision = decide(event, payload)
        except (ValueError, RecursionError) as err:  # JSON, UTF-8 and payload errors alike
            reason = str(err) if isinstance(err, PayloadError) else "body is not valid JSON"
            return _answer(400, error=reason, delivery=delivery)
        if decision.action == "ping":
            return _answer(200, ok=True, event="ping", delivery=delivery)
        if decision.action == "ignore":
            return _answer(
                202,
                ignored=True,
                reason=decision.reason,
                event=event,
                action=decision.event_action or None,
                delivery=delivery,
            )
        try:
            input = build_review_input(self.settings, decision, delivery, self.adapter)
        except ValueError as err:  # a team or adapter problem in the config, not in the request
            log.error("cannot build the review task: %s", err)
            return _answer(500, error=f"selfheal is misconfigured: {err}", delivery=delivery)
        pr = input.pr
        workflow_id = pr_review_workflow_id(pr.owner, pr.repo, pr.number, pr.head_sha)
        started, queued = await self._start_or_queue(input, workflow_id)
        outcome = "queued" if queued else "started" if started else "exists"
        log.info("delivery %s: %s %s → %s %s", delivery, event, decision.event_action,
                 workflow_id, outcome)  # fmt: skip
        return _answer(
            (202 if queued else 201) if started else 200,
            workflow_id=workflow_id,
            started=started and not queued,
            queued=queued,
            duplicate=not started,
            task_workflow_id=f"task-{input.task.id}",
            supersedes=input.supersedes,
            delivery=delivery,
        )


def webhook_routes(
    settings: Settings, client: Client, adapter: AdapterSpec | None = None
) -> list[BaseRoute]:
    return GitHubWebhook(settings, client, adapter).routes()
