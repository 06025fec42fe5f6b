"""One configuration object, loaded once in a documented order.

1. defaults: the runbook's own ``renewa-one`` setup;
2. a TOML file: ``$ROLLBACK_RUNBOOK_CONFIG``, else ``./runbook.toml`` if present;
3. environment variables: ``ROLLBACK_<KEY>`` for top-level keys and
   ``ROLLBACK_<ENV>_<KEY>`` for one environment's keys
   (``ROLLBACK_STAGING_APP=my-app``);
4. explicit overrides (notebook parameters).

Unknown keys and wrong types are errors that name the key and where it came from.
"""

from __future__ import annotations

import dataclasses
import os
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from typing import Any

from rollback_helpers.errors import ConfigError

ENVIRONMENTS = ("development", "staging", "production")


@dataclass(frozen=True)
class EnvConfig:
    """What the runbook needs to know about one environment."""

    name: str
    app: str
    health_url: str = ""  # default: https://<app>.fly.dev/api/health/ready
    infisical_env: str = ""
    record_labels: tuple[str, ...] = ()  # default: deployment-record, env:<name>

    def __post_init__(self) -> None:
        if not self.health_url:
            object.__setattr__(self, "health_url", f"https://{self.app}.fly.dev/api/health/ready")
        if not self.record_labels:
            object.__setattr__(self, "record_labels", ("deployment-record", f"env:{self.name}"))


@dataclass(frozen=True)
class RunbookConfig:
    github_repo: str = "renewa/renewa-one"
    github_api_url: str = "https://api.github.com"
    workflow: str = "promote-image.yml"
    workflow_ref: str = "main"
    workflow_env_input: str = "env"
    workflow_image_input: str = "image"
    rolled_back_label: str = "rolled-back"
    fly_org: str = "renewa"
    flyctl: str = "flyctl"
    infisical_project: str = "renewa-one"
    cluster_map_path: str = "scripts/lib/mpg-clusters.sh"
    cluster_map_file: str = ""  # a local checkout's copy; default: read it from GitHub
    app_user: str = "app-user"
    migration_user: str = "migration-user"
    database_url_var: str = "DATABASE_URL"
    migration_url_var: str = "DATABASE_URL_MIGRATION"
    incidents_dir: str = "incidents"
    poll_interval: float = 3.0
    workflow_timeout: float = 1800.0
    rollout_timeout: float = 300.0
    health_grace: float = 60.0
    ready_timeout: float = 900.0
    command_timeout: float = 120.0
    lock_ttl: float = 600.0  # the environment lock's lease: renewed while a live run waits
    verify_tables: tuple[str, ...] = ()  # row counts compared in Path B; empty: the public tables
    environments: Mapping[str, EnvConfig] = field(default_factory=lambda: {
        "development": EnvConfig("development", "renewa-one-development", infisical_env="dev"),
        "staging": EnvConfig("staging", "renewa-one-staging", infisical_env="staging"),
        "production": EnvConfig("production", "renewa-one", infisical_env="prod"),
    })

    def env(self, name: str | None) -> EnvConfig:
        """The named environment, or a ConfigError listing the known ones."""
        known = ", ".join(sorted(self.environments))
        if not name:
            raise ConfigError("No environment given.", f"Set the `env` parameter to one of: {known}.")
        if name not in self.environments:
            raise ConfigError(f"Unknown environment {name!r}.",
                              f"Use one of: {known} (or add it to runbook.toml).")
        return self.environments[name]

    @property
    def repo_owner(self) -> str:
        return self.github_repo.split("/", 1)[0]

    @property
    def repo_name(self) -> str:
        return self.github_repo.split("/", 1)[1]


_TOP_KEYS = {f.name: f for f in fields(RunbookConfig) if f.name != "environments"}
_ENV_KEYS = {f.name: f for f in fields(EnvConfig) if f.name != "name"}


def _coerce(value: Any, type_name: str, key: str, where: str) -> Any:
    try:
        if type_name == "float":
            if isinstance(value, bool):
                raise ValueError
            return float(value)
        if type_name.startswith("tuple"):
            items = value.split(",") if isinstance(value, str) else list(value)
            return tuple(str(item).strip() for item in items if str(item).strip())
        if not isinstance(value, str):
            raise ValueError
        return value
    except (TypeError, ValueError):
        raise ConfigError(f"Config key {key!r} from {where} has the wrong type ({value!r}).",
                          f"Give {key!r} a {type_name.split('[')[0]} value.") from None


def _type_name(f: dataclasses.Field[Any]) -> str:
    return f.type if isinstance(f.type, str) else getattr(f.type, "__name__", str(f.type))


def _apply(cfg: RunbookConfig, data: Mapping[str, Any], where: str) -> RunbookConfig:
    top: dict[str, Any] = {}
    envs = dict(cfg.environments)
    for key, value in data.items():
        if key == "environments":
            if not isinstance(value, Mapping):
                raise ConfigError(f"'environments' in {where} must be a table of environments.")
            for env_name, env_data in value.items():
                envs[env_name] = _apply_env(envs.get(env_name), env_name, env_data, where)
        elif key in _TOP_KEYS:
            top[key] = _coerce(value, _type_name(_TOP_KEYS[key]), key, where)
        else:
            raise ConfigError(f"Unknown config key {key!r} in {where}.",
                              f"Known keys: {', '.join(sorted(_TOP_KEYS))}, environments.")
    return replace(cfg, environments=envs, **top)


def _apply_env(base: EnvConfig | None, name: str, data: Any, where: str) -> EnvConfig:
    if not isinstance(data, Mapping):
        raise ConfigError(f"environments.{name} in {where} must be a table.")
    values: dict[str, Any] = {}
    for key, value in data.items():
        if key not in _ENV_KEYS:
            raise ConfigError(f"Unknown key {key!r} for environment {name!r} in {where}.",
                              f"Known keys: {', '.join(sorted(_ENV_KEYS))}.")
        values[key] = _coerce(value, _type_name(_ENV_KEYS[key]), f"environments.{name}.{key}", where)
    if base is None:
        if "app" not in values:
            raise ConfigError(f"New environment {name!r} in {where} has no 'app'.",
                              f"Add `app = \"...\"` under [environments.{name}].")
        return EnvConfig(name=name, **values)
    if "app" in values and "health_url" not in values:
        values["health_url"] = ""  # re-derive from the new app name
    return EnvConfig(**{**dataclasses.asdict(base), **values, "name": name})


def _from_environ(cfg: RunbookConfig, environ: Mapping[str, str]) -> RunbookConfig:
    data: dict[str, Any] = {}
    env_data: dict[str, dict[str, str]] = {}
    for var, value in environ.items():
        if not var.startswith("ROLLBACK_") or var == "ROLLBACK_RUNBOOK_CONFIG":
            continue
        rest = var.removeprefix("ROLLBACK_").lower()
        if rest in _TOP_KEYS:
            data[rest] = value
            continue
        for env_name in cfg.environments:
            prefix = env_name.lower() + "_"
            if rest.startswith(prefix) and rest.removeprefix(prefix) in _ENV_KEYS:
                env_data.setdefault(env_name, {})[rest.removeprefix(prefix)] = value
    if env_data:
        data["environments"] = env_data
    return _apply(cfg, data, "environment variables")


def load_config(overrides: Mapping[str, Any] | None = None, *,
                environ: Mapping[str, str] | None = None,
                config_file: str | Path | None = None) -> RunbookConfig:
    """Defaults → TOML file → environment variables → overrides, validated once."""
    environ = os.environ if environ is None else environ
    cfg = RunbookConfig()
    path = Path(config_file or environ.get("ROLLBACK_RUNBOOK_CONFIG") or "runbook.toml")
    if path.is_file():
        try:
            cfg = _apply(cfg, tomllib.loads(path.read_text()), str(path))
        except tomllib.TOMLDecodeError as exc:
            raise ConfigError(f"{path} is not valid TOML: {exc}", f"Fix the syntax in {path}.") from exc
    elif config_file or environ.get("ROLLBACK_RUNBOOK_CONFIG"):
        raise ConfigError(f"Config file {path} does not exist.", "Check the path.")
    cfg = _from_environ(cfg, environ)
    if overrides:
        cfg = _apply(cfg, {k: v for k, v in overrides.items() if v is not None}, "parameters")
    if cfg.github_repo.count("/") != 1 or not all(cfg.github_repo.split("/")):
        raise ConfigError(f"github_repo {cfg.github_repo!r} is not of the form owner/name.",
                          "Set github_repo = \"owner/name\".")
    return cfg
