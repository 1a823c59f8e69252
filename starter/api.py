"""The HTTP API (Starlette on uvicorn): health now; the GitHub webhook and dashboard mount here.

It binds 127.0.0.1 unless told otherwise.
"""

import asyncio
from typing import Any

import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import BaseRoute, Route
from temporalio.client import Client

from activities.ledger import Ledger
from selfheal.config import Settings
from starter.webhook import GitHubWebhook


def create_app(settings: Settings, client: Client) -> Starlette:
    # Migrate the ledger (or refuse an older schema) before serving, so a bad ledger is one line
    # at start, not an error on the first request.
    Ledger.from_settings(settings).open().close()

    async def healthz(_: Request) -> JSONResponse:
        try:
            await asyncio.wait_for(client.service_client.check_health(), 2.0)
            temporal = "ok"
        except Exception as err:
            temporal = f"unreachable: {type(err).__name__}"
        return JSONResponse(
            {"status": "ok" if temporal == "ok" else "degraded", "temporal": temporal},
            status_code=200 if temporal == "ok" else 503,
        )

    webhook = GitHubWebhook(settings, client)
    routes: list[BaseRoute] = [Route("/healthz", healthz), *webhook.routes()]
    app = Starlette(routes=routes, lifespan=webhook.lifespan)
    app.state.settings, app.state.client = settings, client
    return app


def make_server(app: Any, host: str = "127.0.0.1", port: int = 8080) -> uvicorn.Server:
    config = uvicorn.Config(app, host=host, port=port, log_level="warning", lifespan="auto")
    return uvicorn.Server(config)
