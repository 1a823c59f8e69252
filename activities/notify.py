"""``notify.send``: Slack-compatible JSON to the ``dev``/``ceo`` channels and agents' notify URLs.

Each notice carries an ``Idempotency-Key`` header (one per incident and step), so a retried
delivery can be dropped by the receiver. An endpoint that is down (connection error, 5xx, 429)
raises, and Temporal retries with backoff for as long as it takes; a missing URL is a logged
no-op; a 4xx other than 408/429 is recorded as rejected and not retried.
"""

import asyncio
from typing import Any

import httpx
from temporalio import activity

from activities.ledger import Ledger
from selfheal.config import Settings
from selfheal.models import Notice, NoticeResult


class EndpointDown(RuntimeError):
    pass


class NotifyActivities:
    def __init__(self, settings: Settings, ledger: Ledger) -> None:
        self.settings = settings
        self.ledger = ledger

    def url_for(self, target: str) -> str | None:
        if target in ("dev", "ceo"):
            secret = getattr(self.settings, f"{target}_channel_url")
        else:
            agent = self.settings.agents.get(target.upper())
            secret = agent.notify_url if agent else None
        return secret.get_secret_value() if secret else None

    @activity.defn(name="notify.send")
    async def send(self, notice: Notice) -> NoticeResult:
        url = self.url_for(notice.target)
        if not url:
            activity.logger.info("no notify URL for %s; notice not sent", notice.target)
            await asyncio.to_thread(self.ledger.record_notification, notice, "skipped")
            return NoticeResult(delivered=False, skipped_reason=f"no URL for {notice.target}")
        body: dict[str, Any] = {
            "text": notice.text,
            "blocks": [{"type": "section", "text": {"type": "mrkdwn", "text": notice.text}}],
        }
        if notice.fields:
            body["blocks"].append(
                {
                    "type": "section",
                    "fields": [
                        {"type": "mrkdwn", "text": f"*{k}*\n{v}"} for k, v in notice.fields.items()
                    ],
                }
            )
        headers = {"Idempotency-Key": notice.idempotency_key, "User-Agent": "selfheal"}
        try:
            async with httpx.AsyncClient(timeout=10.0) as http:
                response = await http.post(url, json=body, headers=headers)
        except httpx.HTTPError as err:
            reason = type(err).__name__
            raise EndpointDown(f"{notice.target} endpoint unreachable: {reason}") from None
        code = response.status_code
        if code >= 500 or code in (408, 429):
            raise EndpointDown(f"{notice.target} endpoint answered {code}")
        status = "sent" if code < 400 else "rejected"
        await asyncio.to_thread(self.ledger.record_notification, notice, status, code)
        return NoticeResult(delivered=status == "sent", status_code=code)
