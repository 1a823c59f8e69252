"""docker-compose.yml is a real cluster. No engine runs containers on these machines, so the file is
checked here as far as it can be without one: its structure, every service's image or build, env and
dependencies, the commands it runs against the real `selfheal` parser, and its one-shot search
attribute job against a real Temporal server."""

import os
import re
import shlex
import shutil
import subprocess
import tomllib
from pathlib import Path
from typing import Any

import pytest
import yaml
from temporalio.testing import WorkflowEnvironment

from selfheal import search_attributes as sa
from starter.cli.main import build_parser
from tests.conftest import TEMPORAL

ROOT = Path(__file__).resolve().parents[2]
COMPOSE = ROOT / "docker-compose.yml"
SELFHEAL_SERVICES = ("selfheal-setup", "worker", "api")


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    return yaml.safe_load(COMPOSE.read_text())


def services(compose: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return compose["services"]


def env_of(service: dict[str, Any]) -> dict[str, str]:
    return {k: str(v) for k, v in service.get("environment", {}).items()}


def command(service: dict[str, Any]) -> list[str]:
    cmd = service["command"]
    return shlex.split(cmd) if isinstance(cmd, str) else list(cmd)


def test_the_cluster_has_every_part(compose: dict[str, Any]) -> None:
    assert set(services(compose)) == {
        "postgresql",
        "temporal",
        "temporal-ui",
        "temporal-admin-tools",
        "selfheal-setup",
        "worker",
        "api",
    }


def test_every_image_is_official_and_pinned(compose: dict[str, Any]) -> None:
    expected = {
        "postgresql": "postgres",
        "temporal": "temporalio/auto-setup",
        "temporal-ui": "temporalio/ui",
        "temporal-admin-tools": "temporalio/admin-tools",
    }
    for name, service in services(compose).items():
        if name in SELFHEAL_SERVICES:
            assert service["build"] == ".", name
            continue
        image, _, tag = service["image"].partition(":")
        assert image == expected[name]
        assert re.fullmatch(r"\d+(\.\d+)*(-[\w.-]+)?", tag), f"{name}: unpinned tag {tag!r}"


def test_temporal_runs_on_the_postgresql_service(compose: dict[str, Any]) -> None:
    temporal = services(compose)["temporal"]
    assert env_of(temporal)["DB"] == "postgres12"
    assert env_of(temporal)["POSTGRES_SEEDS"] == "postgresql"
    assert temporal["depends_on"]["postgresql"]["condition"] == "service_healthy"
    for name in ("temporal-ui", "temporal-admin-tools"):
        assert env_of(services(compose)[name])["TEMPORAL_ADDRESS"] == "temporal:7233"


def test_dependencies_name_real_services_with_valid_conditions(compose: dict[str, Any]) -> None:
    conditions = {"service_started", "service_healthy", "service_completed_successfully"}
    for name, service in services(compose).items():
        for target, rule in service.get("depends_on", {}).items():
            assert target in services(compose), f"{name} depends on unknown {target}"
            assert rule["condition"] in conditions
            if rule["condition"] == "service_healthy":
                assert "healthcheck" in services(compose)[target], target
            if rule["condition"] == "service_completed_successfully":
                assert services(compose)[target]["restart"] == "no", target


def test_selfheal_services_share_one_postgresql_ledger(compose: dict[str, Any]) -> None:
    urls = {env_of(services(compose)[name])["SELFHEAL_DB_URL"] for name in SELFHEAL_SERVICES}
    assert len(urls) == 1
    (url,) = urls
    assert url.startswith("postgresql+psycopg://selfheal:")
    assert url.endswith("@postgresql:5432/selfheal")
    for name in SELFHEAL_SERVICES:
        service_env = env_of(services(compose)[name])
        assert service_env["TEMPORAL_ADDRESS"] == "temporal:7233"
        assert service_env["SELFHEAL_DB_MIGRATE"] == "false"  # selfheal-setup migrates, once


def test_three_worker_replicas_with_metrics_and_a_graceful_stop(compose: dict[str, Any]) -> None:
    worker = services(compose)["worker"]
    assert worker["deploy"]["replicas"] == 3
    assert "--metrics-port" in command(worker)
    assert worker["stop_signal"] == "SIGTERM"
    assert worker["depends_on"]["selfheal-setup"]["condition"] == "service_completed_successfully"


def test_the_api_needs_a_token_off_loopback(compose: dict[str, Any]) -> None:
    api = services(compose)["api"]
    assert command(api)[command(api).index("--host") + 1] == "0.0.0.0"
    assert env_of(api)["SELFHEAL_API_TOKEN"].startswith("${SELFHEAL_API_TOKEN:?")


def test_every_selfheal_command_is_accepted_by_the_cli(compose: dict[str, Any]) -> None:
    parser = build_parser()
    for name in SELFHEAL_SERVICES:
        argv = command(services(compose)[name])
        if argv[:2] == ["sh", "-c"]:
            steps = [shlex.split(step) for step in argv[2].split("&&")]
        else:
            steps = [argv]
        for step in steps:
            assert step[0] == "selfheal", step
            parser.parse_args(step[1:])  # exits 2 on an unknown command or flag


def test_every_mounted_file_is_in_the_repository(compose: dict[str, Any]) -> None:
    for name, service in services(compose).items():
        for volume in service.get("volumes", []):
            source = volume.split(":")[0]
            if source.startswith("./"):
                assert (ROOT / source).is_file(), f"{name}: {source} is missing"


def test_the_image_holds_every_package() -> None:
    dockerfile = (ROOT / "Dockerfile").read_text()
    pyproject = tomllib.loads((ROOT / "pyproject.toml").read_text())
    include = pyproject["tool"]["setuptools"]["packages"]["find"]["include"]
    for pattern in include:
        top = pattern.rstrip("*")
        assert re.search(rf"^COPY {top} {top}$", dockerfile, re.M), f"Dockerfile misses {top}"
    assert re.search(r"pip install .*-c constraints\.txt", dockerfile), "the image is not pinned"


def registered_in_script() -> dict[str, str]:
    script = (ROOT / "deploy/temporal/register-search-attributes.sh").read_text()
    (pairs,) = re.findall(r"for attr in (.*?); do", script)
    return dict(pair.split(":") for pair in pairs.split())


def test_the_admin_job_registers_exactly_the_code_s_search_attributes() -> None:
    expected = {key.name: key.indexed_value_type.name.title() for key in sa.ALL}
    assert registered_in_script() == expected


async def test_the_admin_job_registers_them_on_a_real_server_idempotently(
    local_env: WorkflowEnvironment,
) -> None:
    binary = str(TEMPORAL)
    # A fresh namespace, so the attributes start unregistered even on the shared test server.
    namespace = f"compose-{os.getpid()}"
    address = local_env.client.service_client.config.target_host
    run_env = os.environ | {
        "TEMPORAL_ADDRESS": address,
        "TEMPORAL_NAMESPACE": namespace,
        "PATH": f"{TEMPORAL.parent}:{os.environ['PATH']}",
    }
    subprocess.run(
        [binary, "operator", "namespace", "create", "--namespace", namespace, "--address", address],
        check=True,
        capture_output=True,
    )
    script = ROOT / "deploy/temporal/register-search-attributes.sh"
    first = subprocess.run(["sh", str(script)], env=run_env, capture_output=True, text=True)
    assert first.returncode == 0, first.stderr
    second = subprocess.run(["sh", str(script)], env=run_env, capture_output=True, text=True)
    assert second.returncode == 0, second.stderr
    assert second.stdout.count("already registered") == len(sa.ALL)
    listed = subprocess.run(
        [binary, "operator", "search-attribute", "list", "--namespace", namespace],
        env=run_env,
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    for key in sa.ALL:
        assert re.search(rf"{key.name}\s+{registered_in_script()[key.name]}", listed)


@pytest.mark.skipif(not shutil.which("docker-compose"), reason="Debian's docker-compose absent")
def test_docker_compose_accepts_the_file() -> None:
    result = subprocess.run(
        ["docker-compose", "-f", str(COMPOSE), "config", "-q"],
        env=os.environ | {"SELFHEAL_API_TOKEN": "t", "POSTGRES_PASSWORD": "p"},
        capture_output=True,
        text=True,
    )
    assert result.returncode == 0, result.stderr
    without_token = subprocess.run(
        ["docker-compose", "-f", str(COMPOSE), "config", "-q"],
        env={k: v for k, v in os.environ.items() if k != "SELFHEAL_API_TOKEN"},
        capture_output=True,
        text=True,
    )
    assert without_token.returncode != 0
    assert "set SELFHEAL_API_TOKEN" in without_token.stderr
