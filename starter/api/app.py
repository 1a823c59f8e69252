"""The HTTP API (Starlette on uvicorn): ``/healthz``, the GitHub webhook, and the health
dashboard (page, JSON, SSE, Prometheus).

It binds 127.0.0.1 unless told otherwise; bound elsewhere, every path but ``/healthz`` and the
signed webhook needs the bearer token ``SELFHEAL_API_TOKEN``.
"""

import asyncio
import contextlib
import os
from collections.abc import AsyncIterator
from typing import Any

import uvicorn
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import BaseRoute, Route
from temporalio.client import Client

from activities.ledger import Ledger
from dashboard.app import Dashboard
from dashboard.auth import BearerToken, is_loopback
from dashboard.service import HealthService
from selfheal.config import Settings
from starter.api.webhook import PATH as WEBHOOK_PATH
from starter.api.webhook import GitHubWebhook


def api_token(settings: Settings) -> str | None:
    token = getattr(settings, "api_token", None)
    if token is not None:
        return token.get_secret_value() if hasattr(token, "get_secret_value") else str(token)
    return os.environ.get("SELFHEAL_API_TOKEN") or None


def create_app(
    settings: Settings,
    client: Client,
    *,
    host: str = "127.0.0.1",
    ui_url: str | None = None,
) -> Starlette:
    """The API app. Off loopback it refuses to be built without a token (ValueError)."""
    token = api_token(settings)
    if not is_loopback(host) and not token:
        raise ValueError(f"binding {host} needs SELFHEAL_API_TOKEN (a bearer token)")
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
    dashboard = Dashboard(
        HealthService(settings, client, ui_url or os.environ.get("SELFHEAL_UI_URL")),
        webhook_path=WEBHOOK_PATH,
    )

    @contextlib.asynccontextmanager
    async def lifespan(app: Any) -> AsyncIterator[None]:
        async with webhook.lifespan(app), dashboard.lifespan():
            yield

    routes: list[BaseRoute] = [Route("/healthz", healthz), *webhook.routes(), *dashboard.routes()]
    middleware = []
    if not is_loopback(host) and token:
        middleware.append(
            Middleware(BearerToken, token=token, open_paths={"/healthz", WEBHOOK_PATH})
        )
    app = Starlette(routes=routes, lifespan=lifespan, middleware=middleware)
    app.state.settings, app.state.client, app.state.dashboard = settings, client, dashboard
    return app


def make_server(app: Any, host: str = "127.0.0.1", port: int = 8080) -> uvicorn.Server:
    # Open event streams end at shutdown instead of holding it.
    config = uvicorn.Config(
        app, host=host, port=port, log_level="warning", lifespan="auto", timeout_graceful_shutdown=3
    )
    return uvicorn.Server(config)
