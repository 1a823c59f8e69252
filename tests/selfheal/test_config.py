"""Settings: selfheal.toml and SELFHEAL_* through pydantic-settings; the environment wins over the
file, and a problem is one ConfigError line."""

from pathlib import Path

import pytest

from selfheal.config import ConfigError, Settings, load_settings

TEAM_FILE = """
task_queue = "from-top-level"

[settings]
task_queue = "from-settings-table"
time_scale = 30
db_migrate = false
patterns_dir = "learnings"

[channels]
dev = "https://hooks.example/dev"

[agents.sam]
peers = ["ALEX"]
[agents.alex]
peers = ["SAM"]
lead = "MAX"
[agents.max]
role = "lead"
"""


@pytest.fixture
def team_file(tmp_path: Path) -> Path:
    path = tmp_path / "selfheal.toml"
    path.write_text(TEAM_FILE)
    return path


def test_the_file_sets_the_settings(team_file: Path) -> None:
    settings = load_settings(team_file, env={})
    assert settings.task_queue == "from-settings-table"  # [settings] over top-level keys
    assert settings.time_scale == 30 and settings.db_migrate is False
    assert settings.patterns_dir == Path("learnings")
    assert settings.dev_channel_url is not None
    assert settings.dev_channel_url.get_secret_value() == "https://hooks.example/dev"
    assert sorted(settings.agents) == ["ALEX", "MAX", "SAM"]  # names in upper case
    assert type(settings) is Settings


def test_the_environment_wins_over_the_file(team_file: Path) -> None:
    env = {
        "SELFHEAL_TASK_QUEUE": "from-env",
        "SELFHEAL_DB_MIGRATE": "true",
        "SELFHEAL_DB_URL": "postgresql+psycopg://u:pw@db/ledger",
        "SELFHEAL_API_TOKEN": "t0ken",
        "SELFHEAL_PATTERNS_DIR": "/srv/patterns",
        "SELFHEAL_TIME_SCALE": "",  # empty: not set
    }
    settings = load_settings(team_file, env=env)
    assert (settings.task_queue, settings.db_migrate) == ("from-env", True)
    assert settings.ledger_url == "postgresql+psycopg://u:pw@db/ledger"
    assert settings.api_token is not None and settings.api_token.get_secret_value() == "t0ken"
    assert "t0ken" not in repr(settings)
    assert settings.patterns_dir == Path("/srv/patterns")
    assert settings.time_scale == 30


def test_selfheal_config_names_the_file(team_file: Path) -> None:
    settings = load_settings(env={"SELFHEAL_CONFIG": str(team_file)})
    assert settings.task_queue == "from-settings-table"


def test_the_defaults_without_a_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    settings = load_settings(env={})
    assert settings == Settings()
    assert settings.db_migrate is True and settings.patterns_dir == Path("docs/patterns")
    assert settings.ledger_url == "sqlite:///.selfheal/ledger.db"


def test_the_process_environment_is_read(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("SELFHEAL_DATA_DIR", str(tmp_path / "d"))
    assert load_settings().data_dir == tmp_path / "d"


@pytest.mark.parametrize(
    "file_text, env, says",
    [
        (None, {"SELFHEAL_CONFIG": "/nowhere/selfheal.toml"}, "config file not found: /nowhere"),
        ("task_queue = [", {}, "cannot read config"),
        ("[settings]\ntime_scale = -1", {}, "invalid config (time_scale): Input should be greater"),
        (
            "",
            {"SELFHEAL_TIME_SCALE": "fast"},
            "invalid config (time_scale): Input should be a valid",
        ),
        (
            "",
            {"SELFHEAL_DB_MIGRATE": "maybe"},
            "invalid config (db_migrate): Input should be a valid",
        ),
        ('[agents.sam]\npeers = ["BOB"]', {}, "agent SAM names unknown agent 'BOB'"),
        ("", {"SELFHEAL_AGENTS": "{not json"}, "invalid config"),
    ],
)
def test_a_bad_setting_is_one_line(
    tmp_path: Path, file_text: str | None, env: dict[str, str], says: str
) -> None:
    path = None
    if file_text is not None:
        path = tmp_path / "selfheal.toml"
        path.write_text(file_text)
    with pytest.raises(ConfigError) as failed:
        load_settings(path, env=env)
    assert says in str(failed.value) and "\n" not in str(failed.value)
