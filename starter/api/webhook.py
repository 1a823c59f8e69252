"""``POST /webhooks/github``: a signed GitHub delivery becomes at most one ``PRReview``.

Order of checks, so that nothing from an unverified body is ever interpreted: the signature
header's presence and algorithm (401), the declared and the actual body size (413), the
HMAC-SHA256 of the raw body against the configured secret in constant time (401); only then the
event, the JSON (400) and the rules in ``selfheal.review.decide``. The answer comes as soon as
Temporal has accepted the start (or said the review already exists); the review runs there.

A busy or unreachable Temporal never holds an answer past ``webhook_ack_budget`` (15 ms): the
delivery is then answered 202 and started from the outbox (``starter.api.outbox``).
"""

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

from selfheal.config import Settings
from selfheal.models import AdapterSpec
from selfheal.review import (
    MAX_BODY_BYTES,
    PayloadError,
    decide,
    pr_review_workflow_id,
)
from starter.api.outbox import ReviewOutbox
from starter.reviews import build_review_input

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


class GitHubWebhook:
    def __init__(
        self, settings: Settings, client: Client, adapter: AdapterSpec | None = None
    ) -> None:
        self.settings = settings
        self.adapter = adapter
        self.outbox = ReviewOutbox(settings, client)
        secret = settings.github_secret
        self._secret = secret.get_secret_value().encode() if secret else None

    def routes(self) -> list[BaseRoute]:
        return [Route(PATH, self.handle, methods=["POST"])]

    @contextlib.asynccontextmanager
    async def lifespan(self, app: Any) -> AsyncIterator[None]:
        """The outbox's drainer runs while the app does."""
        async with self.outbox.lifespan(app):
            yield

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
        started, queued = await self.outbox.submit(input, workflow_id)
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
