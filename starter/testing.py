"""Stand-ins for the world outside selfheal, shared by the tests, the benchmarks and the demo (the
demo ships with the package, so they live here rather than in tests/):

- ``serving(app)``: an ASGI app on uvicorn at a free 127.0.0.1 port, in the running loop;
- ``NotificationSink``: Slack-style incoming webhooks for the channels and agents;
- ``FakeGitHub``: the commit-status endpoint of GitHub's REST API;
- ``pull_request_event``, ``signed_headers``, ``new_sha``: GitHub webhook deliveries, signed;
- ``git``, ``init_repo``, ``commit``: scratch git repositories, made with plain ``git``
  subprocesses so they do not share code with the GitPython side under test.
"""

import asyncio
import os
import secrets
import subprocess
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pydantic import SecretStr
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from selfheal.config import Settings
from starter.api.app import make_server
from starter.api.webhook import sign
from starter.devserver import free_port


@asynccontextmanager
async def serving(app: Any) -> AsyncIterator[str]:
    """``app`` on uvicorn at a free 127.0.0.1 port in this loop; yields its base URL."""
    port = free_port()
    server = make_server(app, port=port)
    task = asyncio.create_task(server.serve())
    while not server.started:
        if task.done():
            task.result()
        await asyncio.sleep(0.01)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        await task


# -- notifications -------------------------------------------------------------------------------


@dataclass
class Delivery:
    path: str
    idempotency_key: str | None
    body: dict[str, Any]

    @property
    def text(self) -> str:
        return str(self.body.get("text", ""))


@dataclass
class NotificationSink:
    """Slack-style incoming webhooks at ``/{name}``; answers 503 while ``down`` is true or for
    the first ``fail_first`` requests, then 200. ``delivered`` holds the accepted requests,
    ``notices`` the first of each idempotency key (what a person would see)."""

    url: str = ""
    down: bool = False
    fail_first: int = 0
    requests: int = 0
    delivered: list[Delivery] = field(default_factory=list)

    def app(self) -> Starlette:
        async def hook(request: Request) -> JSONResponse:
            self.requests += 1
            if self.down or self.requests <= self.fail_first:
                return JSONResponse({"ok": False}, status_code=503)
            self.delivered.append(
                Delivery(
                    request.url.path,
                    request.headers.get("idempotency-key"),
                    await request.json(),
                )
            )
            return JSONResponse({"ok": True})

        return Starlette(routes=[Route("/{name:path}", hook, methods=["POST"])])

    @property
    def notices(self) -> list[Delivery]:
        seen: set[str | None] = set()
        first = []
        for d in self.delivered:
            if d.idempotency_key is None or d.idempotency_key not in seen:
                seen.add(d.idempotency_key)
                first.append(d)
        return first

    def keys(self) -> list[str | None]:
        return [d.idempotency_key for d in self.delivered]

    def to(self, path: str) -> list[Delivery]:
        return [d for d in self.delivered if d.path == path]

    def wire(self, settings: Settings) -> Settings:
        """``settings`` with every unset channel and agent notify URL pointed here."""
        agents = {}
        for name, agent in settings.agents.items():
            url = agent.notify_url or SecretStr(f"{self.url}/agents/{name}")
            agents[name] = agent.model_copy(update={"notify_url": url})
        return settings.model_copy(
            update={
                "agents": agents,
                "dev_channel_url": settings.dev_channel_url or SecretStr(f"{self.url}/dev"),
                "ceo_channel_url": settings.ceo_channel_url or SecretStr(f"{self.url}/ceo"),
            }
        )


@asynccontextmanager
async def notification_sink(**options: Any) -> AsyncIterator[NotificationSink]:
    """A ``NotificationSink`` served on 127.0.0.1 (its ``url`` set) for the block's length."""
    sink = NotificationSink(**options)
    async with serving(sink.app()) as url:
        sink.url = url
        yield sink


# -- GitHub ------------------------------------------------------------------------------------


@dataclass
class StatusCall:
    owner: str
    repo: str
    sha: str
    body: dict[str, Any]
    authorization: str | None


@dataclass
class FakeGitHub:
    """``POST /repos/{owner}/{repo}/statuses/{sha}``, recorded; ``fail_first`` answers 502 that
    many times first, ``refuse`` answers 422 always."""

    url: str = ""
    fail_first: int = 0
    refuse: bool = False
    calls: list[StatusCall] = field(default_factory=list)
    attempts: int = 0

    def app(self) -> Starlette:
        async def status(request: Request) -> JSONResponse:
            self.attempts += 1
            if self.attempts <= self.fail_first:
                return JSONResponse({"message": "bad gateway"}, status_code=502)
            if self.refuse:
                return JSONResponse({"message": "Validation Failed"}, status_code=422)
            p = request.path_params
            self.calls.append(
                StatusCall(
                    p["owner"],
                    p["repo"],
                    p["sha"],
                    await request.json(),
                    request.headers.get("authorization"),
                )
            )
            return JSONResponse({"id": len(self.calls), "state": "ok"}, status_code=201)

        return Starlette(routes=[
            Route("/repos/{owner}/{repo}/statuses/{sha}", status, methods=["POST"]),
        ])  # fmt: skip

    def states(self, sha: str) -> list[str]:
        return [c.body["state"] for c in self.calls if c.sha == sha]


def new_sha() -> str:
    return secrets.token_hex(20)


def pull_request_event(
    action: str,
    sha: str,
    *,
    owner: str = "octo",
    repo: str = "web",
    number: int = 1,
    title: str = "Add the signup form",
    draft: bool = False,
    before: str | None = None,
    updated_at: str = "2026-01-01T00:00:00Z",
    author: str = "SAM",
) -> dict[str, Any]:
    """A ``pull_request`` payload shaped like GitHub's (the fields selfheal reads, and some)."""
    payload: dict[str, Any] = {
        "action": action,
        "number": number,
        "pull_request": {
            "number": number,
            "title": title,
            "state": "open",
            "draft": draft,
            "html_url": f"https://github.com/{owner}/{repo}/pull/{number}",
            "user": {"login": author},
            "head": {"sha": sha, "ref": f"feature-{number}"},
            "base": {"ref": "main", "repo": {"full_name": f"{owner}/{repo}"}},
            "updated_at": updated_at,
            "additions": 42,
            "deletions": 7,
            "changed_files": 3,
            "commits": 2,
        },
        "repository": {"name": repo, "full_name": f"{owner}/{repo}", "owner": {"login": owner}},
        "sender": {"login": author},
    }
    if before:
        payload["before"], payload["after"] = before, sha
    return payload


def signed_headers(secret: str, body: bytes, event: str, delivery: str) -> dict[str, str]:
    return {
        "Content-Type": "application/json",
        "X-GitHub-Event": event,
        "X-GitHub-Delivery": delivery,
        "X-Hub-Signature-256": sign(secret.encode(), body),
        "User-Agent": "GitHub-Hookshot/selfheal-demo",
    }


# -- scratch git repositories -------------------------------------------------------------------


def git_env() -> dict[str, str]:
    """The environment without the caller's GIT_* variables (a hook's would redirect git)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("GIT_")}
    return env | {"GIT_OPTIONAL_LOCKS": "0"}


def git(repo: Path, *args: str, check: bool = True) -> str:
    """``git *args`` in ``repo`` without hooks or the caller's GIT_* variables; its stdout."""
    out = subprocess.run(
        ["git", "-c", "core.hooksPath=/dev/null", *args], cwd=repo, env=git_env(), check=check,
        capture_output=True, text=True,
    )  # fmt: skip
    return out.stdout.strip()


def init_repo(path: Path, files: dict[str, str], author: str = "SAM") -> Path:
    """A new repository at ``path`` (branch ``main``) whose first commit holds ``files``."""
    path.mkdir(parents=True)
    git(path, "init", "-q", "-b", "main")
    git(path, "config", "user.name", author)
    git(path, "config", "user.email", f"{author.lower()}@example.com")
    commit(path, "initial", files)
    return path


def commit(
    repo: Path, message: str, files: dict[str, str] | None = None, add: list[str] | None = None
) -> str:
    """Write ``files``, commit them (and the paths in ``add``); the new commit's sha."""
    for name, text in (files or {}).items():
        (repo / name).parent.mkdir(parents=True, exist_ok=True)
        (repo / name).write_text(text)
    git(repo, "add", *(add or list(files or {})))
    git(repo, "commit", "-q", "-m", message)
    return git(repo, "rev-parse", "HEAD")
