"""The dashboard's HTTP surfaces on a real uvicorn: ``/api/health`` (and its 400/503),
``/metrics`` parsed with prometheus_client's parser, ``/openapi.json``, and the bearer-token
rule off loopback (401, nothing leaked)."""

import json
import re
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path

import httpx
import psycopg
import pytest
from prometheus_client.parser import text_string_to_metric_families
from temporalio.testing import WorkflowEnvironment

from dashboard.document import HealthDocument
from selfheal.config import Settings
from starter.api.app import create_app
from starter.testing import serving
from tests.dashboard.ledger_data import HOSTILE, fill
from tests.postgres import PostgresCluster
from tests.workers import ROOT

TOKEN = "s3cret-token-for-tests"


@pytest.fixture
def filled(settings: Settings) -> Settings:
    now = datetime.now(UTC).replace(second=0, microsecond=0)
    fill(settings.ledger_url, now).engine.dispose()
    return settings


@pytest.fixture
async def api(filled: Settings, local_env: WorkflowEnvironment) -> AsyncIterator[str]:
    async with serving(create_app(filled, local_env.client)) as url:
        yield url


async def test_health_json_is_the_document(api: str) -> None:
    async with httpx.AsyncClient(base_url=api) as http:
        answers = {w: await http.get("/api/health", params={"window": w}) for w in ("1h", "7d")}
        default = await http.get("/api/health")
    assert all(a.status_code == 200 for a in answers.values())
    doc = HealthDocument.model_validate(default.json())
    assert doc.window == "24h"
    sam = next(a for a in doc.agents if a.name == "SAM")
    assert (sam.attempts, sam.failed, sam.errors_by_kind) == (10, 3, {"transient": 1, "task": 2})
    assert [a.name for a in doc.agents] == ["SAM", "ALEX", "LEO", "QUINN", "MAX"]
    leo = next(a for a in doc.agents if a.name == "LEO")
    assert leo.held and leo.current is not None
    assert (leo.current.state, leo.current.title) == ("blocked", HOSTILE)
    assert doc.incidents[0].ui_url and doc.incidents[0].ui_url.endswith("/workflows/task-leo-1")
    assert f"no live worker polls task queue {doc.workers.task_queue}" in doc.problems
    assert HealthDocument.model_validate(answers["7d"].json()).seed.retry_success.failed_once == 5


async def test_unknown_window_is_400_in_one_line(api: str) -> None:
    async with httpx.AsyncClient(base_url=api) as http:
        for path in ("/api/health", "/api/health/stream", "/"):
            answer = await http.get(path, params={"window": "2w"})
            assert answer.status_code == 400, path
            assert "unknown window" in answer.text and "2w" in answer.text
            assert "Traceback" not in answer.text


async def test_metrics_parse_and_carry_no_task_ids(api: str) -> None:
    async with httpx.AsyncClient(base_url=api) as http:
        answer = await http.get("/metrics")
    assert answer.status_code == 200
    assert answer.headers["content-type"].startswith("text/plain")
    families = {f.name: f for f in text_string_to_metric_families(answer.text)}
    samples = {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for f in families.values()
        for s in f.samples
    }
    key = (
        "selfheal_attempts_total",
        (("agent", "SAM"), ("error_kind", "none"), ("outcome", "succeeded")),
    )
    assert samples[key] == 117
    assert samples[("selfheal_tasks_total", (("state", "failed"),))] == 2
    assert samples[("selfheal_incidents_open", (("kind", "blocked"),))] == 1
    assert samples[("selfheal_agent_up", (("agent", "LEO"),))] == 0
    assert samples[("selfheal_agent_up", (("agent", "SAM"),))] == 1
    assert samples[("selfheal_retry_success_ratio", ())] == pytest.approx(2 / 3)
    assert samples[("selfheal_revert_seconds_bucket", (("le", "120.0"),))] == 1
    assert samples[("selfheal_revert_seconds_count", ())] == 2
    assert samples[("selfheal_ledger_up", ())] == 1
    assert families["selfheal_attempts"].type == "counter"
    assert families["selfheal_revert_seconds"].type == "histogram"
    labels = {v for f in families.values() for s in f.samples for v in s.labels.values()}
    assert not any(v.startswith("task-") for v in labels)
    # every selfheal_* series the Grafana dashboard charts is one we export
    grafana = (ROOT / "docs" / "grafana" / "selfheal.json").read_text()
    exprs = [t["expr"] for p in json.loads(grafana)["panels"] for t in p.get("targets", [])]
    charted = set(re.findall(r"selfheal_[a-z0-9_]+", " ".join(exprs)))
    exported = {s.name for f in families.values() for s in f.samples}
    assert charted and charted <= exported, charted - exported


async def test_openapi_describes_the_health_document(api: str) -> None:
    async with httpx.AsyncClient(base_url=api) as http:
        spec = (await http.get("/openapi.json")).json()
    health = spec["paths"]["/api/health"]["get"]
    assert set(health["responses"]) == {"200", "400", "401", "503"}
    assert health["parameters"][0]["schema"]["enum"] == ["1h", "24h", "7d"]
    assert "AgentHealth" in spec["components"]["schemas"]
    assert "error_rate" in spec["components"]["schemas"]["AgentHealth"]["properties"]


async def test_unreachable_ledger_is_503_with_the_reason(
    tmp_path: Path, local_env: WorkflowEnvironment, postgres: PostgresCluster
) -> None:
    """The ledger's database goes away while the API serves."""
    url = postgres.new_database()
    settings = Settings(data_dir=tmp_path, db_url=url)
    async with (
        serving(create_app(settings, local_env.client)) as api,
        httpx.AsyncClient(base_url=api, timeout=30) as http,
    ):
        assert (await http.get("/api/health")).status_code == 200
        database = url.rsplit("/", 1)[1]
        with psycopg.connect(postgres.url().replace("+psycopg", ""), autocommit=True) as conn:
            conn.execute(f'DROP DATABASE "{database}" WITH (FORCE)')
        dropped = await http.get("/api/health")  # the pooled connection was terminated
        health = await http.get("/api/health")  # then: that database does not exist
        page = await http.get("/")
        metrics = await http.get("/metrics")
    assert dropped.status_code == 503 and "\n" not in dropped.json()["error"]
    assert health.status_code == 503
    error = health.json()["error"]
    assert error.startswith("ledger unreachable: ") and "\n" not in error
    assert database in error  # the reason: that database does not exist
    assert page.status_code == 503 and "ledger unreachable" in page.text
    assert "Traceback" not in page.text + health.text
    assert metrics.status_code == 200 and "selfheal_ledger_up 0.0" in metrics.text


async def test_off_loopback_everything_but_healthz_and_webhook_needs_the_token(
    filled: Settings, local_env: WorkflowEnvironment, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SELFHEAL_API_TOKEN", TOKEN)
    app = create_app(filled, local_env.client, host="0.0.0.0")
    async with serving(app) as url, httpx.AsyncClient(base_url=url) as http:
        for path in ("/", "/api/health", "/api/health/stream", "/metrics", "/openapi.json"):
            for headers in ({}, {"Authorization": "Bearer wrong"}, {"Authorization": TOKEN}):
                answer = await http.get(path, headers=headers)
                assert answer.status_code == 401, (path, headers)
                assert answer.json() == {"error": "unauthorized: a bearer token is required"}
        assert (await http.get("/healthz")).status_code == 200
        unsigned = await http.post("/webhooks/github", content=b"{}")
        assert "bearer" not in unsigned.text  # the webhook's own answer: its signature rule
        good = {"Authorization": f"Bearer {TOKEN}"}
        assert (await http.get("/api/health", headers=good)).status_code == 200
        assert (await http.get("/metrics", headers=good)).status_code == 200
        # a browser: ?token= once, then the cookie
        first = await http.get("/", params={"token": TOKEN, "window": "1h"})
        assert first.status_code == 303 and first.headers["location"] == "/?window=1h"
        assert "httponly" in first.headers["set-cookie"].lower()
        page = await http.get("/?window=1h")
        assert page.status_code == 200 and "selfheal · health" in page.text


def test_off_loopback_without_a_token_refuses_to_start(
    settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("SELFHEAL_API_TOKEN", raising=False)
    with pytest.raises(ValueError, match=r"binding 0\.0\.0\.0 needs SELFHEAL_API_TOKEN"):
        create_app(settings, None, host="0.0.0.0")  # type: ignore[arg-type]
