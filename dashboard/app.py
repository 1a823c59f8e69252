"""The dashboard's routes: ``GET /`` (the page), ``/api/health`` (JSON), ``/api/health/stream``
(SSE), ``/metrics`` (Prometheus) and ``/openapi.json``. Bad input and an unreachable ledger are
answered with one line, never a traceback."""

import asyncio
import contextlib
from collections.abc import AsyncIterator
from typing import Any

from markupsafe import escape
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, Response, StreamingResponse
from starlette.routing import BaseRoute, Route

from dashboard.document import BadWindowError, Window, check_window
from dashboard.metrics import render
from dashboard.openapi import openapi
from dashboard.page import render_page
from dashboard.queries import warm
from dashboard.service import HealthService, LedgerUnavailableError
from dashboard.stream import HealthHub

PROMETHEUS_TEXT = "text/plain; version=0.0.4; charset=utf-8"


class Dashboard:
    def __init__(self, service: HealthService, webhook_path: str | None = None) -> None:
        self.service = service
        self.hub = HealthHub(service)
        self.webhook_path = webhook_path
        self._warming: asyncio.Task[Any] | None = None

    def routes(self) -> list[BaseRoute]:
        return [
            Route("/", self.page),
            Route("/api/health", self.health),
            Route("/api/health/stream", self.stream),
            Route("/metrics", self.metrics),
            Route("/openapi.json", self.openapi),
        ]

    @contextlib.asynccontextmanager
    async def lifespan(self) -> AsyncIterator[None]:
        """Fill the rollups in the background, so the first viewer does not pay for it."""

        async def warm_up() -> None:
            with contextlib.suppress(LedgerUnavailableError):
                await self.service.ledger(warm, self.service.queries, self.service.agents)

        self._warming = asyncio.create_task(warm_up())
        try:
            yield
        finally:
            await self.hub.stop()
            self._warming.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._warming

    @staticmethod
    def _window(request: Request) -> Window:
        return check_window(request.query_params.get("window", "24h"))

    async def health(self, request: Request) -> Response:
        try:
            document = await self.service.document(self._window(request))
        except BadWindowError as err:
            return JSONResponse({"error": str(err)}, status_code=400)
        except LedgerUnavailableError as err:
            return JSONResponse({"error": str(err)}, status_code=503)
        return Response(document.model_dump_json(), media_type="application/json")

    async def page(self, request: Request) -> Response:
        try:
            window = self._window(request)
        except BadWindowError as err:
            return HTMLResponse(f"<!doctype html><title>bad request</title><p>{_escape(err)}",
                                status_code=400)  # fmt: skip
        try:
            document = await self.service.document(window)
        except LedgerUnavailableError as err:
            return HTMLResponse(render_page(window, None, error=str(err)), status_code=503)
        return HTMLResponse(render_page(window, document))

    async def stream(self, request: Request) -> Response:
        try:
            window = self._window(request)
        except BadWindowError as err:
            return JSONResponse({"error": str(err)}, status_code=400)
        return StreamingResponse(
            self.hub.subscribe(window),
            media_type="text/event-stream",
            headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
        )

    async def metrics(self, _: Request) -> Response:
        try:
            totals, workers, running = await self.service.totals()
        except LedgerUnavailableError:
            totals = None
            workers, running = await asyncio.gather(self.service.workers(), self.service.running())
        body = render(totals, workers, running, self.service.agents)
        return Response(body, media_type=PROMETHEUS_TEXT)

    async def openapi(self, _: Request) -> Response:
        return JSONResponse(openapi(self.webhook_path))


def _escape(value: object) -> str:
    return str(escape(str(value)))
