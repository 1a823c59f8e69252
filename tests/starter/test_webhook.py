"""``POST /webhooks/github`` end to end: uvicorn on 127.0.0.1, real signed HTTP requests, a real
Temporal dev server and worker, and a local server playing the GitHub API."""

import asyncio
import contextlib
import hashlib
import hmac
import json
import secrets
import sys
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from hypothesis import HealthCheck, given
from hypothesis import settings as hsettings
from hypothesis import strategies as st
from pydantic import SecretStr
from starlette.applications import Starlette
from temporalio.client import Client, WorkflowExecutionStatus, WorkflowFailureError
from temporalio.service import RPCError, RPCStatusCode
from temporalio.testing import WorkflowEnvironment
from temporalio.worker import Worker

from selfheal import search_attributes as sa
from selfheal.config import Settings
from selfheal.models import AdapterSpec, TaskInput
from selfheal.plugins import SelfHealing
from selfheal.review import MAX_BODY_BYTES, PRReviewResult, decide
from starter.api.app import create_app
from starter.api.webhook import PATH, webhook_routes
from starter.testing import FakeGitHub, pull_request_event, serving, signed_headers

SECRET = "it's a secret to everybody"
TOKEN = "ghp_local_test_token"


def sha() -> str:
    return secrets.token_hex(20)


def repo() -> str:
    return f"app-{uuid.uuid4().hex[:8]}"


async def deliver(
    http: httpx.AsyncClient,
    url: str,
    payload: Any,
    event: str = "pull_request",
    delivery: str | None = None,
    headers: dict[str, str] | None = None,
    body: bytes | None = None,
) -> httpx.Response:
    body = json.dumps(payload).encode() if body is None else body
    sent = signed_headers(SECRET, body, event, delivery or str(uuid.uuid4()))
    return await http.post(url, content=body, headers={**sent, **(headers or {})})


async def exists(client: Client, workflow_id: str) -> bool:
    try:
        await client.get_workflow_handle(workflow_id).describe()
        return True
    except RPCError as err:
        if err.status == RPCStatusCode.NOT_FOUND:
            return False
        raise


async def wait_running(client: Client, workflow_id: str) -> None:
    for _ in range(200):
        if await exists(client, workflow_id):
            return
        await asyncio.sleep(0.05)
    raise AssertionError(f"{workflow_id} never started")


async def wait_closed(client: Client, workflow_id: str) -> Any:
    handle = client.get_workflow_handle(workflow_id)
    with contextlib.suppress(WorkflowFailureError):  # superseded reviews end cancelled
        await asyncio.wait_for(handle.result(), 30)
    return await handle.describe()


@pytest.fixture
async def github() -> AsyncIterator[FakeGitHub]:
    fake = FakeGitHub()
    async with serving(fake.app()) as url:
        fake.url = url
        yield fake


@pytest.fixture
def hook_settings(settings: Settings, github: FakeGitHub) -> Settings:
    return settings.model_copy(update={
        "github_secret": SecretStr(SECRET), "github_token": SecretStr(TOKEN),
        "github_api": github.url, "time_scale": 60.0,
        # These tests pin down what Temporal answers; the outbox path has tests of its own.
        "webhook_ack_budget": 30.0,
    })  # fmt: skip


@pytest.fixture
async def http() -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(timeout=30) as client:
        yield client


@pytest.fixture
async def api(local_env: WorkflowEnvironment, hook_settings: Settings) -> AsyncIterator[str]:
    """The real API (``create_app``) and a selfheal worker; reviews use QUINN's sim (ok)."""
    async with (
        Worker(local_env.client, task_queue=hook_settings.task_queue,
               plugins=[SelfHealing(hook_settings)]),
        serving(create_app(hook_settings, local_env.client)) as url,
    ):  # fmt: skip
        yield url + PATH


@pytest.fixture
async def slow_api(local_env: WorkflowEnvironment, hook_settings: Settings) -> AsyncIterator[str]:
    """The webhook with reviews that never finish, so a newer head finds them running."""
    app = Starlette(
        routes=webhook_routes(hook_settings, local_env.client, AdapterSpec(kind="sim", sim="hang"))
    )
    async with (
        Worker(local_env.client, task_queue=hook_settings.task_queue,
               plugins=[SelfHealing(hook_settings)]),
        serving(app) as url,
    ):  # fmt: skip
        yield url + PATH


async def test_signed_opened_starts_one_high_priority_review_with_the_details(
    api: str, http: httpx.AsyncClient, local_env: WorkflowEnvironment, github: FakeGitHub
):
    client, head, name = local_env.client, sha(), repo()
    response = await deliver(
        http,
        api,
        pull_request_event(
            "opened", head, owner="Octo", repo=name, number=42, title="Add the signup form"
        ),
    )
    assert response.status_code == 201, response.text
    answer = response.json()
    workflow_id = f"pr-octo-{name}-42-{head[:12]}"
    assert answer["workflow_id"] == workflow_id and answer["started"] is True

    handle = client.get_workflow_handle(workflow_id, result_type=PRReviewResult)
    result = await handle.result()
    assert result.state == "succeeded" and result.pr == f"Octo/{name}#42"
    assert result.statuses == ["pending", "success"]
    described = await handle.describe()
    assert described.workflow_type == "PRReview"
    assert described.typed_search_attributes.get(sa.KIND) == "pr-review"
    assert described.typed_search_attributes.get(sa.STATE) == "succeeded"
    assert described.raw_description.workflow_execution_info.priority.priority_key == 1

    task = client.get_workflow_handle(answer["task_workflow_id"])
    assert answer["task_workflow_id"] == f"task-review-octo-{name}-42-{head[:12]}"
    task_info = await task.describe()
    assert task_info.raw_description.workflow_execution_info.priority.priority_key == 1
    assert task_info.typed_search_attributes.get(sa.AGENT) == "QUINN"
    assert task_info.typed_search_attributes.get(sa.KIND) == "task"
    assert task_info.parent_id == workflow_id
    history = await task.fetch_history()
    start = history.events[0].workflow_execution_started_event_attributes
    input = TaskInput.model_validate_json(start.input.payloads[0].data)
    assert input.agent == "QUINN" and input.priority == "high"
    assert input.retry.waits == [1.0, 5.0, 15.0]  # scaled by the receiver (time scale 60)
    assert input.context["pull_request"] == {
        "repository": f"Octo/{name}", "number": 42, "title": "Add the signup form",
        "url": f"https://github.com/Octo/{name}/pull/42", "branch": "feature-42",
        "base": "main", "author": "SAM", "head_sha": head,
        "diff_stats": {"additions": 42, "deletions": 7, "changed_files": 3, "commits": 2},
    }  # fmt: skip

    assert github.states(head) == ["pending", "success"]
    assert {c.authorization for c in github.calls} == {f"Bearer {TOKEN}"}
    assert {(c.owner, c.repo, c.body["context"]) for c in github.calls} == {
        ("Octo", name, "selfheal/review")
    }
    assert TOKEN not in history.to_json()


async def test_bad_missing_or_wrong_algorithm_signatures_are_401_and_start_nothing(
    api: str, http: httpx.AsyncClient, local_env: WorkflowEnvironment
):
    head, name = sha(), repo()
    body = json.dumps(pull_request_event("opened", head, repo=name, number=1)).encode()
    good = "sha256=" + hmac.new(SECRET.encode(), body, hashlib.sha256).hexdigest()
    sha1 = "sha1=" + hmac.new(SECRET.encode(), body, hashlib.sha1).hexdigest()
    other = "sha256=" + hmac.new(b"wrong secret", body, hashlib.sha256).hexdigest()
    cases: list[dict[str, str]] = [
        {"X-Hub-Signature-256": ""},
        {"X-Hub-Signature-256": other},
        {"X-Hub-Signature-256": good[:-2] + ("00" if good[-2:] != "00" else "11")},
        {"X-Hub-Signature-256": good.replace("sha256=", "sha512=")},
        {"X-Hub-Signature-256": good.upper()},
        {"X-Hub-Signature-256": "sha256=not-hex"},
    ]
    for headers in cases:
        response = await deliver(http, api, None, body=body, headers=headers)
        assert response.status_code == 401, (headers, response.text)
    # GitHub's legacy SHA-1 header alone is not accepted.
    base = signed_headers(SECRET, body, "pull_request", "d-1")
    del base["X-Hub-Signature-256"]
    response = await http.post(api, content=body, headers={**base, "X-Hub-Signature": sha1})
    assert response.status_code == 401 and "X-Hub-Signature-256" in response.json()["error"]
    assert not await exists(local_env.client, f"pr-octo-{name}-1-{head[:12]}")


async def test_malformed_json_and_unusable_payloads_are_400(api: str, http: httpx.AsyncClient):
    for body in (b"{not json", b"", b"\xff\xfe\x00garbage", b"[" * 100_000):
        response = await deliver(http, api, None, body=body)
        assert response.status_code == 400, (body[:20], response.text)
    bad_owner = pull_request_event("opened", sha(), owner="../../etc")
    bad_sha = pull_request_event("opened", "HEAD; rm -rf /")
    no_pr = {"action": "opened"}
    for payload in (bad_owner, bad_sha, no_pr, {"action": 3}):
        response = await deliver(http, api, payload)
        assert response.status_code == 400, (payload, response.text)


async def test_a_trailing_newline_in_owner_repo_or_sha_is_400(
    api: str, http: httpx.AsyncClient, local_env: WorkflowEnvironment
):
    """Names and shas are matched whole: ``$`` would let ``"app\\n"`` through into an id."""
    head, name = sha(), repo()
    cases = [
        pull_request_event("opened", head, owner="octo\n", repo=name),
        pull_request_event("opened", head, repo=name + "\n"),
        pull_request_event("opened", head + "\n", repo=name),
    ]
    for payload in cases:
        response = await deliver(http, api, payload)
        assert response.status_code == 400, (payload["repository"], response.text)
    assert not await exists(local_env.client, f"pr-octo-{name}-1-{head[:12]}")


async def test_a_lone_surrogate_is_answered_and_the_pr_still_reviewed(
    api: str, http: httpx.AsyncClient, local_env: WorkflowEnvironment
):
    """``"\\ud800"`` is valid JSON but not UTF-8: the ignored-action answer carries it, and a
    PR title with it is reviewed (stored, started, its title with U+FFFD in its place)."""
    body = json.dumps({"action": "clo\ud800sed", "pull_request": {}}).encode()
    assert b"\\ud800" in body
    ignored = await deliver(http, api, None, body=body)
    assert ignored.status_code == 202, ignored.text
    assert ignored.json()["action"] == "clo\ufffdsed" and ignored.json()["ignored"] is True
    head, name = sha(), repo()
    payload = pull_request_event("opened", head, repo=name, title="fix \ud800 the \udfff form")
    response = await deliver(http, api, payload)
    assert response.status_code == 201, response.text
    result = await local_env.client.get_workflow_handle(
        response.json()["workflow_id"], result_type=PRReviewResult
    ).result()
    assert result.state == "succeeded"
    task = await local_env.client.get_workflow_handle(response.json()["task_workflow_id"]).query(
        "status"
    )
    assert task["title"] == f"Review octo/{name}#1: fix \ufffd the \ufffd form"


async def test_a_lone_surrogate_in_a_title_goes_through_the_outbox_too(
    local_env: WorkflowEnvironment, hook_settings: Settings, http: httpx.AsyncClient
):
    settings = hook_settings.model_copy(update={"webhook_ack_budget": 0.0})
    payload = pull_request_event("opened", sha(), repo=repo(), title="\ud800")
    async with serving(create_app(settings, local_env.client)) as url:
        response = await deliver(http, url + PATH, payload)
        assert response.status_code == 202 and response.json()["queued"] is True, response.text
        await wait_running(local_env.client, response.json()["workflow_id"])
    await local_env.client.get_workflow_handle(response.json()["workflow_id"]).terminate("done")


async def test_unsupported_events_and_actions_are_202_ignored_with_the_reason(
    api: str, http: httpx.AsyncClient, local_env: WorkflowEnvironment
):
    head, name = sha(), repo()
    for event, payload, why in (
        ("issues", {"action": "opened"}, "event 'issues' is not reviewed"),
        ("push", {"ref": "refs/heads/main"}, "event 'push' is not reviewed"),
        ("pull_request", pull_request_event("closed", head, repo=name),
         "action 'closed' is not reviewed"),
        ("pull_request", pull_request_event("labeled", head, repo=name),
         "action 'labeled' is not reviewed"),
    ):  # fmt: skip
        response = await deliver(http, api, payload, event=event)
        assert response.status_code == 202
        assert response.json()["ignored"] is True and response.json()["reason"] == why
    assert not await exists(local_env.client, f"pr-octo-{name}-1-{head[:12]}")
    ping = await deliver(http, api, {"zen": "Design for failure.", "hook_id": 7}, event="ping")
    assert ping.status_code == 200 and ping.json()["ok"] is True


async def test_a_body_over_25_mb_is_413(api: str, http: httpx.AsyncClient):
    big = b"{" + b" " * MAX_BODY_BYTES + b"}"
    response = await deliver(http, api, None, body=big)
    assert response.status_code == 413

    async def chunks():  # no Content-Length: the receiver counts while it reads
        for _ in range(26):
            yield b" " * (1024 * 1024)

    headers = signed_headers(SECRET, b"", "pull_request", "d-big")
    response = await http.post(api, content=chunks(), headers=headers)
    assert response.status_code == 413
    exactly = await deliver(http, api, {"zen": "x" * (MAX_BODY_BYTES - 20)}, event="ping")
    assert exactly.status_code == 200


async def test_redelivery_and_a_second_event_for_the_same_head_start_nothing_new(
    api: str, http: httpx.AsyncClient, local_env: WorkflowEnvironment
):
    head, name = sha(), repo()
    opened = pull_request_event("opened", head, repo=name, number=5)
    first = await deliver(http, api, opened, delivery="delivery-1")
    assert first.status_code == 201
    workflow_id = first.json()["workflow_id"]
    again = await deliver(http, api, opened, delivery="delivery-1")
    assert again.status_code == 200
    assert again.json() | {"delivery": None} == first.json() | {
        "started": False,
        "duplicate": True,
        "delivery": None,
    }
    await wait_closed(local_env.client, workflow_id)
    reopened = await deliver(http, api, pull_request_event("reopened", head, repo=name, number=5))
    assert reopened.status_code == 200 and reopened.json()["workflow_id"] == workflow_id
    runs = await local_env.client.count_workflows(f"WorkflowId = '{workflow_id}'")
    assert runs.count == 1
    tasks = await local_env.client.count_workflows(
        f"WorkflowId = '{first.json()['task_workflow_id']}'"
    )
    assert tasks.count == 1


async def test_synchronize_supersedes_the_older_heads_review(
    slow_api: str, http: httpx.AsyncClient, local_env: WorkflowEnvironment, github: FakeGitHub
):
    client, old, new, name = local_env.client, sha(), sha(), repo()
    first = await deliver(
        http,
        slow_api,
        pull_request_event("opened", old, repo=name, number=9, updated_at="2026-01-01T10:00:00Z"),
    )
    await wait_running(client, first.json()["task_workflow_id"])
    second = await deliver(
        http,
        slow_api,
        pull_request_event(
            "synchronize", new, repo=name, number=9, before=old, updated_at="2026-01-01T10:05:00Z"
        ),
    )
    assert second.status_code == 201 and second.json()["supersedes"] == old

    described = await wait_closed(client, first.json()["workflow_id"])
    assert described.status == WorkflowExecutionStatus.CANCELED
    assert described.typed_search_attributes.get(sa.STATE) == "superseded"
    task = await wait_closed(client, first.json()["task_workflow_id"])
    assert task.status == WorkflowExecutionStatus.CANCELED
    assert github.states(old) == ["pending", "error"]
    error = [c for c in github.calls if c.sha == old][-1].body["description"]
    assert error.startswith(f"superseded by {new[:12]}")
    newer = await client.get_workflow_handle(second.json()["workflow_id"]).describe()
    assert newer.status == WorkflowExecutionStatus.RUNNING
    await client.get_workflow_handle(second.json()["workflow_id"]).cancel()


async def test_a_new_head_without_before_supersedes_through_visibility(
    slow_api: str, http: httpx.AsyncClient, local_env: WorkflowEnvironment
):
    client, old, new, name = local_env.client, sha(), sha(), repo()
    first = await deliver(
        http,
        slow_api,
        pull_request_event("opened", old, repo=name, number=3, updated_at="2026-01-01T10:00:00Z"),
    )
    other_pr = await deliver(
        http,
        slow_api,
        pull_request_event(
            "opened", sha(), repo=name, number=33, updated_at="2026-01-01T10:00:00Z"
        ),
    )
    await wait_running(client, first.json()["task_workflow_id"])
    await wait_running(client, other_pr.json()["task_workflow_id"])
    await asyncio.sleep(0.5)  # let visibility catch up with the first review
    reopened = await deliver(
        http,
        slow_api,
        pull_request_event("reopened", new, repo=name, number=3, updated_at="2026-01-01T11:00:00Z"),
    )
    assert reopened.status_code == 201 and reopened.json()["supersedes"] is None
    described = await wait_closed(client, first.json()["workflow_id"])
    assert described.typed_search_attributes.get(sa.STATE) == "superseded"
    untouched = await client.get_workflow_handle(other_pr.json()["workflow_id"]).describe()
    assert untouched.status == WorkflowExecutionStatus.RUNNING  # PR #33 is another PR
    for answer in (reopened, other_pr):
        await client.get_workflow_handle(answer.json()["workflow_id"]).cancel()


async def test_a_draft_is_skipped_then_reviewed_when_ready(
    api: str, http: httpx.AsyncClient, local_env: WorkflowEnvironment
):
    head, name = sha(), repo()
    draft = await deliver(http, api, pull_request_event("opened", head, repo=name, draft=True))
    assert draft.status_code == 202 and "draft" in draft.json()["reason"]
    synced = await deliver(
        http, api, pull_request_event("synchronize", head, repo=name, draft=True, before=sha())
    )
    assert synced.status_code == 202
    workflow_id = f"pr-octo-{name}-1-{head[:12]}"
    assert not await exists(local_env.client, workflow_id)
    ready = await deliver(http, api, pull_request_event("ready_for_review", head, repo=name))
    assert ready.status_code == 201 and ready.json()["workflow_id"] == workflow_id
    result = await local_env.client.get_workflow_handle(
        workflow_id, result_type=PRReviewResult
    ).result()
    assert result.state == "succeeded"


async def test_without_a_configured_secret_every_delivery_is_refused(
    local_env: WorkflowEnvironment, settings: Settings, http: httpx.AsyncClient
):
    async with serving(create_app(settings, local_env.client)) as url:
        response = await deliver(http, url + PATH, {"zen": "x"}, event="ping")
    assert response.status_code == 401 and "SELFHEAL_GITHUB_SECRET" in response.json()["error"]


# Any text JSON can carry, lone surrogates ("\\ud800") included: they are valid JSON escapes.
_text = st.text(max_size=20) | st.builds(
    str.__add__, st.text(max_size=6), st.text(st.characters(categories=["Cs"]), min_size=1)
)
_json = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | _text,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(_text, inner, max_size=4),
    max_leaves=12,
)
_header_text = st.text(st.characters(min_codepoint=32, max_codepoint=126), max_size=40).map(
    str.strip
)
_fields = st.sampled_from(["action", "number", "pull_request", "repository", "before"])
_pr_fields = st.sampled_from(["number", "head", "draft", "title", "user", "base", "additions"])
_pr_texts = st.sampled_from(["title", "html_url", "updated_at"])


@st.composite
def _payloads(draw: st.DrawFn) -> Any:
    """Arbitrary JSON, or a real pull_request payload with arbitrary values in its fields."""
    if draw(st.integers(0, 2)) == 0:
        return draw(_json)
    action = draw(st.sampled_from(["opened", "synchronize", "reopened", "ready_for_review",
                                   "closed", "edited"]))  # fmt: skip
    payload = pull_request_event(action, secrets.token_hex(20), repo="prop", number=1)
    for field in draw(st.lists(_fields, max_size=2)):
        payload[field] = draw(_json)
    if isinstance(payload.get("pull_request"), dict):
        for field in draw(st.lists(_pr_fields, max_size=2)):
            payload["pull_request"][field] = draw(_json)
        for field in draw(st.lists(_pr_texts, max_size=2)):  # still a review, with odd text
            payload["pull_request"][field] = draw(_text)
    if isinstance(payload.get("action"), str) and draw(st.booleans()):
        payload["action"] += draw(_text)  # an action nobody reviews, and odd text in the answer
    return payload


def _decision(headers: dict[str, str], body: bytes) -> str | None:
    """What the rules say of a signed delivery (None: a 400), for the property test."""
    if headers.get("Content-Type", "").split(";")[0].strip().lower() not in (
        "",
        "application/json",
    ):
        return None  # some other encoding: not judged here
    event = headers.get("X-GitHub-Event", "").strip()
    try:
        return decide(event, json.loads(body)).action if event else None
    except ValueError:
        return None


async def test_property_arbitrary_json_and_headers_never_5xx_never_unsigned_workflows(
    local_env: WorkflowEnvironment, hook_settings: Settings
):
    """No worker: whatever starts stays visible on this test's own task queue."""
    started_signed: set[str] = set()
    unsigned: list[int] = []
    reviewed: list[str] = []

    def check(url: str) -> None:
        @hsettings(
            max_examples=150,
            deadline=None,
            suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
        )
        @given(
            payload=_payloads(),
            event=st.one_of(
                *[st.sampled_from(["pull_request"] * 3 + ["ping", "issues", ""])] * 3, _header_text
            ),
            signature=st.sampled_from(["valid"] * 4 + ["none", "garbage", "sha1", "other"]),
            garbage=_header_text,
            extra=st.dictionaries(
                st.sampled_from(
                    ["X-GitHub-Delivery", "Content-Type", "X-GitHub-Hook-ID", "Content-Encoding"]
                ),
                _header_text,
                max_size=2,
            ),
        )
        def one(payload: Any, event: str, signature: str, garbage: str,
                extra: dict[str, str]) -> None:  # fmt: skip
            body = json.dumps(payload).encode()
            headers = {**signed_headers(SECRET, body, event, str(uuid.uuid4())), **extra}
            if signature != "valid":
                headers["X-Hub-Signature-256"] = {
                    "none": "", "garbage": garbage,
                    "sha1": "sha1=" + hashlib.sha1(body).hexdigest(),
                    "other": signed_headers("other", body, event, "x")["X-Hub-Signature-256"],
                }[signature]  # fmt: skip
            with httpx.Client(timeout=30) as http:
                response = http.post(url, content=body, headers=headers)
            assert response.status_code < 500, response.text
            if signature != "valid":
                assert response.status_code == 401
                unsigned.append(response.status_code)
                return
            if response.status_code == 201:
                started_signed.add(response.json()["workflow_id"])
            expected = _decision(headers, body)
            if expected == "review":  # review-worthy: started now, or an earlier duplicate
                assert response.status_code in (200, 201), response.text
                reviewed.append(response.json()["workflow_id"])
            elif expected == "ignore":
                assert response.status_code == 202 and response.json()["ignored"], response.text

        one()

    app = create_app(hook_settings, local_env.client)
    async with serving(app) as url:
        await asyncio.to_thread(check, url + PATH)
    assert unsigned, "hypothesis never tried an unsigned delivery"
    assert reviewed, "hypothesis never tried a review-worthy delivery"
    query = f"TaskQueue = '{hook_settings.task_queue}'"
    for _ in range(50):  # visibility is eventually consistent
        found = {w.id async for w in local_env.client.list_workflows(query)}
        if found == started_signed:
            break
        await asyncio.sleep(0.1)
    assert found == started_signed
    for workflow_id in found:
        await local_env.client.get_workflow_handle(workflow_id).terminate("test over")


async def selfheal(*args: str, env: dict[str, str]) -> tuple[int, str, str]:
    process = await asyncio.create_subprocess_exec(
        str(Path(sys.executable).parent / "selfheal"),
        *args,
        env=env,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await process.communicate()
    return process.returncode or 0, out.decode(), err.decode()


async def test_pr_replay_signs_and_posts_a_saved_payload(
    api: str, local_env: WorkflowEnvironment, tmp_path: Path
):
    head, name = sha(), repo()
    saved = tmp_path / "opened.json"
    saved.write_text(json.dumps(pull_request_event("opened", head, repo=name, number=8)))
    env = {"PATH": "/usr/bin:/bin", "SELFHEAL_GITHUB_SECRET": SECRET, "HOME": str(tmp_path)}
    code, out, _ = await selfheal("pr", "replay", str(saved), "--url", api, "--delivery", "d-8",
                                  env=env)  # fmt: skip
    assert code == 0 and out.strip() == f"201 pr-octo-{name}-8-{head[:12]}"
    code, out, _ = await selfheal("pr", "replay", str(saved), "--url", api, "--delivery", "d-8",
                                  "--json", env=env)  # fmt: skip
    answer = json.loads(out)
    assert code == 0 and answer["status"] == 200 and answer["answer"]["duplicate"] is True
    code, out, _ = await selfheal("pr", "replay", str(saved), "--url", api, "--event", "issues",
                                  env=env)  # fmt: skip
    assert code == 0 and out.startswith("202 event 'issues' is not reviewed")
    code, _, err = await selfheal("pr", "replay", str(tmp_path / "missing.json"), env=env)
    assert code == 2 and err.count("\n") == 1 and "cannot read" in err
    code, _, err = await selfheal("pr", "replay", str(saved), env={"PATH": "/usr/bin:/bin"})
    assert code == 2 and "SELFHEAL_GITHUB_SECRET" in err


async def test_a_slow_temporal_is_answered_202_and_started_from_the_outbox(
    local_env: WorkflowEnvironment, hook_settings: Settings, http: httpx.AsyncClient
):
    """With no time to wait for Temporal, the delivery is kept in the ledger's outbox and
    answered 202; the review still starts, exactly once, and a redelivery is a duplicate."""
    from activities.ledger import Ledger, review_outbox

    settings = hook_settings.model_copy(update={"webhook_ack_budget": 0.0})
    payload = pull_request_event("opened", sha(), repo=repo(), number=5)
    async with serving(create_app(settings, local_env.client)) as url:
        first = await deliver(http, url + PATH, payload, delivery="d-1")
        again = await deliver(http, url + PATH, payload, delivery="d-1")
        assert first.status_code == 202, first.text
        assert first.json()["queued"] is True and first.json()["started"] is False
        workflow_id = first.json()["workflow_id"]
        assert again.status_code == 200 and again.json()["duplicate"] is True
        await wait_running(local_env.client, workflow_id)

        async def drained() -> bool:
            rows = Ledger(settings.ledger_url).rows(review_outbox, workflow_id=workflow_id)
            return len(rows) == 1 and rows[0]["started_at"] is not None

        for _ in range(200):
            if await drained():
                break
            await asyncio.sleep(0.05)
        assert await drained()


async def test_reviews_left_in_the_outbox_start_when_the_api_comes_back(
    local_env: WorkflowEnvironment, hook_settings: Settings
):
    from activities.ledger import Ledger
    from selfheal.review import Decision, decide, pr_review_workflow_id
    from starter.reviews import build_review_input

    payload = pull_request_event("opened", sha(), repo=repo(), number=9)
    decision: Decision = decide("pull_request", payload)
    input = build_review_input(hook_settings, decision, "d-left")
    pr = input.pr
    workflow_id = pr_review_workflow_id(pr.owner, pr.repo, pr.number, pr.head_sha)
    # A process accepted the delivery, then died before Temporal started the review.
    Ledger(hook_settings.ledger_url).queue_review(workflow_id, input.model_dump_json(), "d-left")
    assert not await exists(local_env.client, workflow_id)
    async with serving(create_app(hook_settings, local_env.client)):
        await wait_running(local_env.client, workflow_id)
