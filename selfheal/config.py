"""Team and settings: ``selfheal.toml`` (path from SELFHEAL_CONFIG) overlaid by the environment
(``SELFHEAL_*``), both read as pydantic-settings sources.

Secrets (webhook secret, GitHub token, channel URLs, API token) are ``SecretStr``: never printed,
never put in a workflow payload; activities read them from here at run time.
"""

import os
import tomllib
from collections.abc import Mapping
from contextvars import ContextVar
from pathlib import Path
from typing import Any, Literal, Self

from pydantic import BaseModel, Field, SecretStr, ValidationError, model_validator
from pydantic_settings import (
    BaseSettings,
    EnvSettingsSource,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    SettingsError,
    TomlConfigSettingsSource,
)

from selfheal.learning import LearningPolicy
from selfheal.models import AdapterKind
from selfheal.policies import Policies


class ConfigError(ValueError):
    """A configuration problem, worded for one line on stderr."""


class AgentConfig(BaseModel):
    role: Literal["engineer", "reviewer", "lead"] = "engineer"
    peers: list[str] = Field(default_factory=list)
    lead: str | None = "MAX"
    adapter: AdapterKind = "sim"
    command: str | None = None
    url: str | None = None
    notify_url: SecretStr | None = None


def default_team() -> dict[str, AgentConfig]:
    return {
        "SAM": AgentConfig(peers=["ALEX", "LEO"]),
        "ALEX": AgentConfig(peers=["LEO", "SAM"]),
        "LEO": AgentConfig(peers=["SAM", "ALEX"]),
        "QUINN": AgentConfig(role="reviewer", peers=["MAX"]),
        "MAX": AgentConfig(role="lead", peers=["QUINN"], lead=None),
    }


class Settings(BaseModel):
    data_dir: Path = Path(".selfheal")
    db_url: str | None = None
    task_queue: str = "selfheal"
    time_scale: float = Field(default=1.0, gt=0)
    github_secret: SecretStr | None = None
    github_token: SecretStr | None = None
    github_api: str = "https://api.github.com"
    # How long a webhook answer may wait for Temporal to accept a review's start; past it the
    # delivery goes to the ledger's outbox, is answered 202, and is started from there.
    webhook_ack_budget: float = Field(default=0.015, ge=0)
    dev_channel_url: SecretStr | None = None
    ceo_channel_url: SecretStr | None = None
    # Where learnings are written as docs/patterns/*.md (M2.5).
    patterns_dir: Path = Path("docs/patterns")
    # Bearer token the API asks for when it is bound off loopback (M2.6).
    api_token: SecretStr | None = None
    # Migrate the ledger when a worker or the API starts; false: refuse an older schema instead.
    db_migrate: bool = True
    # Workflow tasks one worker holds at once (the SDK's default is 100). A worker that takes more
    # than it can finish within the 10 s workflow task timeout has them timed out and replayed
    # elsewhere, and the fleet collapses: bench/scale_out.py, 3 workers on 2 cores, 400 tasks.
    worker_workflow_tasks: int = Field(default=10, ge=1)
    agents: dict[str, AgentConfig] = Field(default_factory=default_team)
    policies: Policies = Field(default_factory=Policies)
    # The learning loop's policy (M2.5), ``[learning]`` in selfheal.toml.
    learning: LearningPolicy = Field(default_factory=LearningPolicy)

    @model_validator(mode="after")
    def _team_is_closed(self) -> Self:
        for name, agent in self.agents.items():
            for other in [*agent.peers, *([agent.lead] if agent.lead else [])]:
                if other not in self.agents:
                    raise ValueError(f"agent {name} names unknown agent {other!r}")
        return self

    @property
    def ledger_url(self) -> str:
        return self.db_url or f"sqlite:///{(self.data_dir / 'ledger.db').as_posix()}"

    @property
    def lead(self) -> str | None:
        leads = [n for n, a in self.agents.items() if a.role == "lead"]
        return leads[0] if leads else None

    @property
    def reviewer(self) -> str | None:
        reviewers = [n for n, a in self.agents.items() if a.role == "reviewer"]
        return reviewers[0] if reviewers else None

    def agent(self, name: str) -> AgentConfig:
        key = name.upper()
        if key not in self.agents:
            known = ", ".join(sorted(self.agents))
            raise ConfigError(f"unknown agent {name!r} (the team is {known})")
        return self.agents[key]

    def peers(self) -> dict[str, list[str]]:
        return {name: list(a.peers) for name, a in self.agents.items()}


# The file and the environment ``load_settings`` reads; sources are built per load.
_SOURCES: ContextVar[tuple[Path | None, Mapping[str, str]]] = ContextVar("selfheal_settings")


class TomlFileSource(TomlConfigSettingsSource):
    """``selfheal.toml``: top-level keys overlaid by its ``[settings]`` table, ``[channels]``
    ``dev``/``ceo`` as the channel URLs, agent names in upper case."""

    def _read_file(self, file_path: Any) -> dict[str, Any]:
        try:
            data = super()._read_file(file_path)
        except (OSError, tomllib.TOMLDecodeError) as err:
            raise ConfigError(f"cannot read config {file_path}: {err}") from None
        section = data.pop("settings", {})
        merged = {**data, **section}
        if "agents" in merged:
            merged["agents"] = {k.upper(): v for k, v in merged["agents"].items()}
        channels = merged.pop("channels", {})
        for channel in ("dev", "ceo"):
            if channel in channels:
                merged[f"{channel}_channel_url"] = channels[channel]
        return merged


class EnvironmentSource(EnvSettingsSource):
    """``SELFHEAL_*`` from the mapping given to ``load_settings`` (``os.environ`` by default)."""

    def _load_env_vars(self) -> Mapping[str, str | None]:
        _, env = _SOURCES.get()
        return {k.lower(): v for k, v in env.items() if v != ""}


class _Loaded(BaseSettings, Settings):
    model_config = SettingsConfigDict(env_prefix="SELFHEAL_", extra="ignore")

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        file, _ = _SOURCES.get()
        return (init_settings, EnvironmentSource(settings_cls), TomlFileSource(settings_cls, file))


def load_settings(path: str | Path | None = None, env: Mapping[str, str] | None = None) -> Settings:
    """Settings from the file (``path``, else SELFHEAL_CONFIG, else ./selfheal.toml if present),
    overlaid by SELFHEAL_* variables of ``env`` (default: the process environment)."""
    env = os.environ if env is None else env
    explicit = path or env.get("SELFHEAL_CONFIG")
    file = Path(explicit) if explicit else Path("selfheal.toml")
    if explicit and not file.is_file():
        raise ConfigError(f"config file not found: {file}")
    token = _SOURCES.set((file if file.is_file() else None, env))
    try:
        return Settings.model_validate(dict(_Loaded()))
    except ValidationError as err:
        first = err.errors()[0]
        where = ".".join(str(p) for p in first["loc"]) or "config"
        raise ConfigError(f"invalid config ({where}): {first['msg']}") from None
    except SettingsError as err:
        raise ConfigError(f"invalid config: {str(err).splitlines()[0]}") from None
    finally:
        _SOURCES.reset(token)
