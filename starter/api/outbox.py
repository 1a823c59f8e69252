"""The review outbox: a webhook's answer never waits on Temporal past ``webhook_ack_budget``
(15 ms). A new delivery is kept in the ledger's outbox first (its primary key is the first
dedupe); if Temporal accepts the review's start within the budget it is answered started, else
it is answered queued and started from the outbox by a drainer that runs beside the API (the
workflow id is still the dedupe). GitHub does not redeliver on its own, so a delivery it was
told is accepted must not depend on Temporal answering in time.
"""

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator
from typing import Any

from temporalio.client import Client
from temporalio.service import RPCError

from activities.ledger import Ledger
from selfheal.config import Settings
from selfheal.review import PRReviewInput
from starter.reviews import start_review

log = logging.getLogger(__name__)


class ReviewOutbox:
    def __init__(self, settings: Settings, client: Client) -> None:
        self.settings = settings
        self.client = client
        self._ledger: Ledger | None = None
        self._kick: asyncio.Event | None = None
        self._drainer: asyncio.Task[None] | None = None
        self._late: set[asyncio.Future[bool]] = set()
        self._in_flight: set[str] = set()

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

    async def submit(self, input: PRReviewInput, workflow_id: str) -> tuple[bool, bool]:
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
