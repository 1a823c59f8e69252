"""PRReview driven directly on a real dev server: the commit statuses a local GitHub sees when the
review heals, fails, or GitHub misbehaves; a person's cancel; and replay of its history."""

import asyncio
import json
import secrets
import uuid
from pathlib import Path

import pytest
from pydantic import SecretStr
from temporalio.client import Client, WorkflowExecutionStatus, WorkflowFailureError, WorkflowHistory
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.testing import WorkflowEnvironment
from temporalio.worker import Replayer, Worker

from selfheal import search_attributes as sa
from selfheal.config import Settings
from selfheal.models import AdapterSpec
from selfheal.plugins import SelfHealing
from selfheal.review import PRReviewResult, decide
from starter.reviews import build_review_input, start_review
from starter.testing import FakeGitHub, pull_request_event, serving
from workflows.pr_review import PRReview

HISTORIES = Path(__file__).parent.parent / "histories"


def review_settings(settings: Settings, github: FakeGitHub | None) -> Settings:
    update: dict = {"time_scale": 60.0}
    if github:
        update |= {"github_token": SecretStr("t0ken"), "github_api": github.url}
    return settings.model_copy(update=update)


async def review(
    client: Client, settings: Settings, sim: str, head: str | None = None
) -> tuple[str, str]:
    head = head or secrets.token_hex(20)
    payload = pull_request_event("opened", head, repo=f"wf-{uuid.uuid4().hex[:8]}", number=4)
    input = build_review_input(
        settings, decide("pull_request", payload), "d-1", AdapterSpec(kind="sim", sim=sim)
    )
    assert await start_review(client, settings, input)
    return f"pr-octo-{input.pr.repo}-4-{head[:12]}", head


async def run(
    env: WorkflowEnvironment, settings: Settings, sim: str, github: FakeGitHub | None
) -> tuple[PRReviewResult, str, WorkflowHistory]:
    settings = review_settings(settings, github)
    async with Worker(env.client, task_queue=settings.task_queue,
                      plugins=[SelfHealing(settings)]):  # fmt: skip
        workflow_id, head = await review(env.client, settings, sim)
        handle = env.client.get_workflow_handle(workflow_id, result_type=PRReviewResult)
        return await handle.result(), head, await handle.fetch_history()


@pytest.fixture
async def github():
    fake = FakeGitHub()
    async with serving(fake.app()) as url:
        fake.url = url
        yield fake


async def test_the_review_heals_like_any_task_and_github_sees_pending_then_success(
    local_env: WorkflowEnvironment, settings: Settings, github: FakeGitHub
):
    result, head, history = await run(local_env, settings, "transient,ok", github)
    assert result.state == "succeeded" and result.attempts == 2
    assert github.states(head) == ["pending", "success"]
    assert {c.authorization for c in github.calls} == {"Bearer t0ken"}
    assert "t0ken" not in history.to_json()
    await Replayer(workflows=[PRReview], data_converter=pydantic_data_converter).replay_workflow(
        history
    )


async def test_a_failed_review_sets_failure(
    local_env: WorkflowEnvironment, settings: Settings, github: FakeGitHub
):
    result, head, _ = await run(local_env, settings, "permanent", github)
    assert result.state == "failed" and result.task_state == "failed"
    assert github.states(head) == ["pending", "failure"]
    assert "failed after 1 attempt" in github.calls[-1].body["description"]


async def test_github_5xx_is_retried_and_a_4xx_does_not_fail_the_review(
    local_env: WorkflowEnvironment, settings: Settings, github: FakeGitHub
):
    github.fail_first = 2
    result, head, _ = await run(local_env, settings, "ok", github)
    assert result.state == "succeeded" and github.states(head) == ["pending", "success"]
    assert github.attempts == 4

    github.refuse, github.calls = True, []
    result, _, _ = await run(local_env, settings, "ok", github)
    assert result.state == "succeeded"
    assert result.statuses == ["pending (failed)", "success (failed)"]


async def test_without_a_token_no_status_is_sent(
    local_env: WorkflowEnvironment, settings: Settings
):
    result, _, history = await run(local_env, settings, "ok", None)
    assert result.state == "succeeded" and result.statuses == []
    scheduled = [
        e.activity_task_scheduled_event_attributes.activity_type.name
        for e in history.events
        if e.HasField("activity_task_scheduled_event_attributes")
    ]
    assert "github.set_commit_status" not in scheduled


async def test_a_cancel_by_a_person_is_cancelled_not_superseded(
    local_env: WorkflowEnvironment, settings: Settings, github: FakeGitHub
):
    settings = review_settings(settings, github)
    async with Worker(local_env.client, task_queue=settings.task_queue,
                      plugins=[SelfHealing(settings)]):  # fmt: skip
        workflow_id, head = await review(local_env.client, settings, "hang")
        handle = local_env.client.get_workflow_handle(workflow_id)
        for _ in range(100):
            if github.states(head):
                break
            await asyncio.sleep(0.05)
        await handle.cancel()
        with pytest.raises(WorkflowFailureError):
            await handle.result()
        described = await handle.describe()
        history = await handle.fetch_history()
    assert described.status == WorkflowExecutionStatus.CANCELED
    assert described.typed_search_attributes.get(sa.STATE) == "cancelled"
    assert github.states(head) == ["pending", "error"]
    await Replayer(workflows=[PRReview], data_converter=pydantic_data_converter).replay_workflow(
        history
    )


@pytest.mark.parametrize("name", sorted(p.name for p in HISTORIES.glob("pr_review_*.json")))
async def test_recorded_histories_replay(name: str):
    history = WorkflowHistory.from_json("recorded", json.loads((HISTORIES / name).read_text()))
    await Replayer(workflows=[PRReview], data_converter=pydantic_data_converter).replay_workflow(
        history
    )
