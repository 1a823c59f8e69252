"""The demo's notification inbox: a real HTTP server on 127.0.0.1 standing in for Slack-style
channel and agent webhooks that the demo's config leaves unset."""

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

from pydantic import SecretStr
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from selfheal.config import Settings
from starter.api import make_server
from starter.devserver import free_port


@dataclass
class Notice:
    path: str
    idempotency_key: str | None
    text: str


@dataclass
class DemoInbox:
    url: str = ""
    notices: list[Notice] = field(default_factory=list)

    def app(self) -> Starlette:
        async def receive(request: Request) -> JSONResponse:
            body: dict[str, Any] = await request.json()
            key = request.headers.get("idempotency-key")
            if key not in {n.idempotency_key for n in self.notices}:
                self.notices.append(Notice(request.url.path, key, str(body.get("text", ""))))
            return JSONResponse({"ok": True})

        return Starlette(routes=[Route("/{name:path}", receive, methods=["POST"])])

    def to(self, path: str) -> list[Notice]:
        return [n for n in self.notices if n.path == path]

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
async def demo_inbox() -> AsyncIterator[DemoInbox]:
    inbox = DemoInbox()
    port = free_port()
    server = make_server(inbox.app(), port=port)
    task = asyncio.create_task(server.serve())
    while not server.started:
        if task.done():
            task.result()
        await asyncio.sleep(0.01)
    inbox.url = f"http://127.0.0.1:{port}"
    try:
        yield inbox
    finally:
        server.should_exit = True
        await task
