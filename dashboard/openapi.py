"""The OpenAPI description of the API (``GET /openapi.json``), its schemas from the pydantic
models, so the description cannot drift from what ``/api/health`` answers."""

from typing import Any

from dashboard.document import WINDOWS, ErrorBody, HealthDocument

REF = "#/components/schemas/{model}"


def _schemas() -> dict[str, Any]:
    out: dict[str, Any] = {}
    for model in (HealthDocument, ErrorBody):
        schema = model.model_json_schema(ref_template=REF, mode="serialization")
        out.update(schema.pop("$defs", {}))
        out[model.__name__] = schema
    return out


def _json(ref: str, description: str) -> dict[str, Any]:
    return {
        "description": description,
        "content": {"application/json": {"schema": {"$ref": f"#/components/schemas/{ref}"}}},
    }


def _error(description: str) -> dict[str, Any]:
    return _json("ErrorBody", description)


def _public(summary: str, responses: dict[str, str]) -> dict[str, Any]:
    """An operation that needs no bearer token, its responses by status and description."""
    described = {status: {"description": text} for status, text in responses.items()}
    return {"summary": summary, "security": [], "responses": described}


WINDOW_PARAM = {
    "name": "window",
    "in": "query",
    "required": False,
    "schema": {"type": "string", "enum": list(WINDOWS), "default": "24h"},
    "description": "the span the figures cover",
}
UNAUTHORIZED = _error("a bearer token is required (the API is bound off loopback)")


def openapi(webhook_path: str | None = None) -> dict[str, Any]:
    paths: dict[str, Any] = {
        "/api/health": {
            "get": {
                "summary": "The health document (M2.6)",
                "description": "Agent uptime, error rate by agent and kind, recent incidents, "
                "retry success rate, the seed metrics and worker liveness over a window.",
                "parameters": [WINDOW_PARAM],
                "responses": {
                    "200": _json("HealthDocument", "the document"),
                    "400": _error("unknown window"),
                    "401": UNAUTHORIZED,
                    "503": _error("the ledger cannot be read; the reason in one line"),
                },
            }
        },
        "/api/health/stream": {
            "get": {
                "summary": "Live updates of the health page (server-sent events)",
                "description": 'Events named `health` whose data is `{"html": ...}`, the '
                "page's live fragment, sent on each change.",
                "parameters": [WINDOW_PARAM],
                "responses": {
                    "200": {
                        "description": "an event stream",
                        "content": {"text/event-stream": {"schema": {"type": "string"}}},
                    },
                    "400": _error("unknown window"),
                    "401": UNAUTHORIZED,
                },
            }
        },
        "/": {
            "get": {
                "summary": "The health page (HTML, live over SSE)",
                "parameters": [WINDOW_PARAM],
                "responses": {
                    "200": {"description": "the page", "content": {"text/html": {}}},
                    "400": {"description": "unknown window", "content": {"text/html": {}}},
                    "401": UNAUTHORIZED,
                    "503": {"description": "ledger unreachable", "content": {"text/html": {}}},
                },
            }
        },
        "/metrics": {
            "get": {
                "summary": "Prometheus metrics (selfheal_*)",
                "responses": {
                    "200": {"description": "text format 0.0.4", "content": {"text/plain": {}}},
                    "401": UNAUTHORIZED,
                },
            }
        },
        "/healthz": {
            "get": _public(
                "Liveness of the API and its Temporal connection (no token needed)",
                {"200": "ok", "503": "Temporal unreachable"},
            )
        },
    }
    if webhook_path:
        paths[webhook_path] = {
            "post": _public(
                "GitHub pull_request webhook (HMAC-signed; no token needed)",
                {
                    "200": "ignored or duplicate",
                    "201": "review started",
                    "202": "review queued",
                    "401": "bad signature",
                },
            )
        }
    return {
        "openapi": "3.1.0",
        "info": {"title": "selfheal API", "version": "1"},
        "paths": paths,
        "components": {
            "schemas": _schemas(),
            "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}},
        },
        "security": [{"bearer": []}],
    }
