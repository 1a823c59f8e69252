"""PR auto-review (M2.3): signed GitHub deliveries through a real API on 127.0.0.1, among them a
redelivery, a draft, a synchronize that supersedes a review in progress, and events that are
ignored; every reviewable event must end with exactly one review per head commit."""

import asyncio
import contextlib
import json
import secrets
import time
import uuid
from dataclasses import dataclass
from typing import Any

import httpx
from pydantic import SecretStr
from starlette.applications import Starlette
from temporalio.client import Client, WorkflowExecutionStatus, WorkflowFailureError
from temporalio.service import RPCError, RPCStatusCode

from selfheal import search_attributes as sa
from selfheal.models import AdapterSpec
from selfheal.review import REVIEW_ACTIONS
from starter.api.webhook import PATH, GitHubWebhook
from starter.demo.scenario import DemoContext, Metric, Scenario, ScenarioResult
from starter.testing import new_sha, pull_request_event, serving, signed_headers


@dataclass
class Delivery:
    label: str
    event: str
    payload: dict[str, Any]
    delivery: str
    reviewable: bool


def _deliveries(run_id: str) -> list[Delivery]:
    web1, web2, api1, api2 = new_sha(), new_sha(), new_sha(), new_sha()
    out: list[Delivery] = []

    def add(
        label: str,
        payload: dict[str, Any],
        event: str = "pull_request",
        delivery: str | None = None,
    ) -> None:
        action = payload.get("action", "")
        reviewable = (
            event == "pull_request"
            and action in REVIEW_ACTIONS
            and not (payload["pull_request"]["draft"] and action != "ready_for_review")
        )
        out.append(Delivery(label, event, payload, delivery or str(uuid.uuid4()), reviewable))

    repo = f"web-{run_id}"
    add("ping", {"zen": "Keep it logically awesome.", "hook_id": 1}, event="ping")
    add(
        "web#12 opened",
        pull_request_event("opened", web1, repo=repo, number=12, title="Fix the login redirect"),
    )
    add("web#12 redelivered", out[-1].payload, delivery=out[-1].delivery)
    add(
        "web#12 reopened, same head",
        pull_request_event("reopened", web1, repo=repo, number=12, title="Fix the login redirect"),
    )
    add(
        "web#13 opened as draft",
        pull_request_event("opened", web2, repo=repo, number=13, title="Dark mode", draft=True),
    )
    add(
        "web#13 ready for review",
        pull_request_event("ready_for_review", web2, repo=repo, number=13, title="Dark mode"),
    )
    add(
        "api#7 opened",
        pull_request_event(
            "opened",
            api1,
            repo=f"api-{run_id}",
            number=7,
            title="Rate-limit the API",
            updated_at="2026-01-01T00:00:00Z",
        ),
    )
    add(
        "api#7 synchronize (new head)",
        pull_request_event(
            "synchronize",
            api2,
            repo=f"api-{run_id}",
            number=7,
            title="Rate-limit the API",
            before=api1,
            updated_at="2026-01-01T00:05:00Z",
        ),
    )
    add("api#7 labeled", pull_request_event("labeled", api2, repo=f"api-{run_id}", number=7))
    add("web#12 closed", pull_request_event("closed", web1, repo=repo, number=12))
    add("issues event", {"action": "opened", "issue": {"number": 3}}, event="issues")
    return out  # fmt: skip


async def _final_state(client: Client, workflow_id: str) -> str:
    handle = client.get_workflow_handle(workflow_id)
    with contextlib.suppress(WorkflowFailureError):  # a superseded review ends cancelled
        await asyncio.wait_for(handle.result(), timeout=120)
    description = await handle.describe()
    state = description.typed_search_attributes.get(sa.STATE)
    if description.status == WorkflowExecutionStatus.CANCELED and state != "superseded":
        return "cancelled"
    return state or "unknown"


async def _started(client: Client, workflow_id: str, timeout: float = 120) -> None:
    handle = client.get_workflow_handle(workflow_id)
    deadline = asyncio.get_running_loop().time() + timeout
    while True:
        try:
            await handle.describe()
            return
        except RPCError as err:
            if err.status != RPCStatusCode.NOT_FOUND:
                raise
            if asyncio.get_running_loop().time() > deadline:
                raise TimeoutError(f"review {workflow_id} was accepted but never started") from None
        await asyncio.sleep(0.1)


async def _runs(client: Client, workflow_id: str) -> int:
    """How many executions ever had this id (a duplicate review would be a second one)."""
    return (await client.count_workflows(f"WorkflowId = '{workflow_id}'")).count


async def run(ctx: DemoContext) -> ScenarioResult:
    run_id = uuid.uuid4().hex[:6]
    secret = secrets.token_hex(16)
    settings = ctx.settings.model_copy(update={"github_secret": SecretStr(secret)})
    # A review that takes a moment, so the synchronize finds the first head still under review.
    adapter = AdapterSpec(kind="sim", sim="stall:2")
    # The API as `selfheal api` runs it: the receiver and, in its lifespan, the outbox drainer
    # that starts the reviews answered 202 (queued).
    webhook = GitHubWebhook(settings, ctx.client, adapter)
    app = Starlette(routes=webhook.routes(), lifespan=webhook.lifespan)
    result = ScenarioResult(
        "PR auto-review (M2.3)",
        ["delivery", "HTTP", "ack ms", "review", "workflow"],
    )
    async with serving(app) as url:
        deliveries = _deliveries(run_id)
        ctx.report(f"sending {len(deliveries)} signed deliveries to the webhook")
        answers = await _send_all(f"{url}{PATH}", secret, deliveries)
        reviews = sorted({a["workflow_id"] for _, a, _, _ in answers if a.get("workflow_id")})
        ctx.report(f"{len(answers)} deliveries answered; {len(reviews)} reviews accepted")
        # The API stays up until every accepted review has started (from the outbox, if queued).
        await asyncio.gather(*(_started(ctx.client, w) for w in reviews))
    ctx.report(f"{len(reviews)} reviews started; waiting for them to end")
    states: dict[str, str] = {}

    async def settle(workflow_id: str) -> None:
        states[workflow_id] = await _final_state(ctx.client, workflow_id)
        ctx.report(f"{len(states)}/{len(reviews)} reviews ended ({workflow_id}: "
                   f"{states[workflow_id]})")  # fmt: skip

    await asyncio.gather(*(settle(w) for w in reviews))
    # A new review is answered 201 (started) or 202 (queued in the outbox, started from there).
    started = [a["workflow_id"] for _, a, _, _ in answers if a.get("started") or a.get("queued")]
    dispatched = 0
    reviewable = 0
    for d, answer, code, ms in answers:
        wid = answer.get("workflow_id")
        outcome = answer.get("reason") or ("duplicate" if answer.get("duplicate") else "")
        state = states.get(wid, "") if wid else outcome or "-"
        result.rows.append([d.label, str(code), f"{ms:.1f}", state,
                            ctx.link(wid) if wid else "-"])  # fmt: skip
        if d.reviewable:
            reviewable += 1
            dispatched += bool(wid and wid in states and code in (200, 201, 202))
        elif wid:
            result.failures.append(f"{d.label}: started {wid} but should have been ignored")
    superseded = [w for w, s in states.items() if s == "superseded"]
    if len(superseded) != 1:
        result.failures.append(f"expected one superseded review, got {superseded}")
    rate = dispatched / reviewable if reviewable else 0.0
    pairs = {_pair(d.payload) for d, *_ in answers if d.reviewable}
    runs = await asyncio.gather(*(_runs(ctx.client, w) for w in reviews))
    duplicates = (len(started) - len(pairs)) + sum(n - 1 for n in runs if n > 1)
    result.metrics.append(
        Metric(
            "PR events → review dispatched",
            f"{rate:.0%} ({dispatched}/{reviewable} events, {len(reviews)} reviews)",
            "100%",
            rate == 1.0,
        )
    )
    result.metrics.append(Metric(
        "duplicate reviews", f"{duplicates} ({len(answers)} deliveries)", "0", duplicates == 0,
    ))  # fmt: skip
    return result


def _pair(payload: dict[str, Any]) -> tuple[str, int, str]:
    pr = payload["pull_request"]
    return payload["repository"]["full_name"], pr["number"], pr["head"]["sha"]


async def _send_all(
    url: str, secret: str, deliveries: list[Delivery]
) -> list[tuple[Delivery, dict[str, Any], int, float]]:
    answers = []
    async with httpx.AsyncClient(timeout=10) as http:
        for d in deliveries:
            body = json.dumps(d.payload).encode()
            began = time.perf_counter()
            response = await http.post(
                url, content=body, headers=signed_headers(secret, body, d.event, d.delivery)
            )
            ms = (time.perf_counter() - began) * 1000
            answers.append((d, response.json(), response.status_code, ms))
    return answers


SCENARIO = Scenario(
    "PR auto-review (M2.3)", run, order=30, policy_time=30 * 60,
    metrics=("PR events → review dispatched", "duplicate reviews"),
)  # fmt: skip
