"""Real HTTP servers on 127.0.0.1 for tests: uvicorn in the test's event loop, and a local
server playing the GitHub REST API's commit-status endpoint."""

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from starter.api import make_server
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


@dataclass
class Delivery:
    path: str
    idempotency_key: str | None
    body: dict[str, Any]


@dataclass
class NotificationSink:
    """Slack-style incoming webhooks at ``/{name}``; answers 503 while ``down`` is true or for
    the first ``fail_first`` requests, then 200. ``delivered`` holds the accepted requests."""

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

    def keys(self) -> list[str | None]:
        return [d.idempotency_key for d in self.delivered]

    def to(self, path: str) -> list[Delivery]:
        return [d for d in self.delivered if d.path == path]
