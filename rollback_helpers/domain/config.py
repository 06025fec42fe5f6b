"""One configuration object, loaded once in a documented order.

1. defaults: the runbook's own ``renewa-one`` setup;
2. a TOML file: ``$ROLLBACK_RUNBOOK_CONFIG``, else ``./runbook.toml`` if present;
3. environment variables: ``ROLLBACK_<KEY>`` for top-level keys and
   ``ROLLBACK_<ENV>_<KEY>`` for one environment's keys
   (``ROLLBACK_STAGING_APP=my-app``);
4. explicit overrides (notebook parameters).

Each layer is validated by pydantic as it is applied (types, ranges, finiteness,
unknown keys), so an error names the key and the layer it came from: the file,
the variable, or the parameter. Every ``ROLLBACK_*`` variable must be one of these
keys or one of :data:`OTHER_VARIABLES`; anything else is an error naming it.
"""

from __future__ import annotations

import os
import tomllib
from collections.abc import Mapping
from dataclasses import asdict, field, fields, replace
from pathlib import Path
from typing import Annotated, Any

from pydantic import ConfigDict, Field, TypeAdapter, ValidationError, model_validator
from pydantic.dataclasses import dataclass

from rollback_helpers.domain.metrics_settings import MetricsSettings
from rollback_helpers.domain.validation import (
    ACCEPTED_NAME,
    GraceSeconds,
    HttpUrl,
    LeaseSeconds,
    PathName,
    PollSeconds,
    Repository,
    ShortSeconds,
    Text,
    WaitSeconds,
    bad_input,
)
from rollback_helpers.errors import ConfigError

ENVIRONMENTS = ("development", "staging", "production")
# ROLLBACK_* variables that are not configuration keys but are read elsewhere.
OTHER_VARIABLES = frozenset({
    "ROLLBACK_RUNBOOK_CONFIG",  # where the TOML file is
    "ROLLBACK_SANDBOX_DIR",     # `rollback-runbook lab`: the kernels' sandbox world
    "ROLLBACK_LAB_ROOT",        # `rollback-runbook lab`: the workspace, for links
    "ROLLBACK_OPERATOR",        # who decides, when no operator is given
    "ROLLBACK_VENV",            # ./rollback-runbook and ./run-tests: which virtualenv
    "ROLLBACK_STATE_DIR",       # where killed runs' working copies wait for `recover`
    "ROLLBACK_NOTIFY",          # notification URLs (secrets), read by run.notify only
})
# ROLLBACK_NOTIFY_<ENV>: one environment's notification URLs (secrets), read by run.notify only.
OTHER_PREFIXES = ("ROLLBACK_NOTIFY_",)
_STRICT = ConfigDict(extra="forbid")  # each field's type is strict itself (validation.py)
Name = Annotated[Text, Field(min_length=1)]
Labels = Annotated[tuple[Name, ...], Field(strict=False)]  # a TOML list; never a bare string
Count = Annotated[int, Field(ge=1, le=1000, strict=True)]
Approvals = Annotated[int, Field(ge=0, le=10, strict=True)]
MAX_HEALTH_PROBES = 10_000  # as clients.health: grace / interval above this is a typo


@dataclass(frozen=True, config=_STRICT)
class EnvConfig:
    """What the runbook needs to know about one environment."""

    name: PathName  # in lock refs, variable names and paths: a strict pattern
    app: PathName  # in flyctl's argv and URLs
    health_url: Text = ""  # default: https://<app>.fly.dev/api/health/ready
    infisical_env: Text = ""
    record_labels: Labels = ()  # default: deployment-record, env:<name>
    approvals: Approvals = 0  # people who must approve a live run, the operator included;
    #                           0: the default, 2 for production and 1 elsewhere
    github_environment: Text = ""  # the GitHub Environment the promote workflow deploys to
    metrics: MetricsSettings = field(default_factory=MetricsSettings)  # [environments.<name>.metrics]
    protected: Annotated[bool | None, Field(strict=True)] = None  # None: only production

    @property
    def is_protected(self) -> bool:
        """A live run needs ``--confirm <name>`` and, by default, two people. A setting
        (``protected = true``), never read from the name: ``prod`` is protected only if set."""
        return self.protected if self.protected is not None else self.name == "production"

    @property
    def required_approvals(self) -> int:
        return self.approvals or (2 if self.is_protected else 1)

    @property
    def deployment_environment(self) -> str:
        return self.github_environment or self.name

    def __post_init__(self) -> None:
        if not self.health_url:
            object.__setattr__(self, "health_url", f"https://{self.app}.fly.dev/api/health/ready")
        if not self.record_labels:
            object.__setattr__(self, "record_labels", ("deployment-record", f"env:{self.name}"))


def _default_environments() -> dict[str, EnvConfig]:
    return {"development": EnvConfig("development", "renewa-one-development", infisical_env="dev"),
            "staging": EnvConfig("staging", "renewa-one-staging", infisical_env="staging"),
            "production": EnvConfig("production", "renewa-one", infisical_env="prod")}


@dataclass(frozen=True, config=_STRICT)
class RunbookConfig:
    github_repo: Repository = "renewa/renewa-one"
    github_api_url: HttpUrl = "https://api.github.com"
    workflow: PathName = "promote-image.yml"
    workflow_ref: Name = "main"
    workflow_env_input: Name = "env"
    workflow_image_input: Name = "image"
    rolled_back_label: Name = "rolled-back"
    fly_org: Name = "renewa"
    flyctl: Name = "flyctl"
    infisical_project: Text = "renewa-one"
    cluster_map_path: Text = "scripts/lib/mpg-clusters.sh"
    cluster_map_file: Text = ""  # a local checkout's copy; default: read it from GitHub
    app_user: Name = "app-user"
    migration_user: Name = "migration-user"
    database_url_var: Name = "DATABASE_URL"
    migration_url_var: Name = "DATABASE_URL_MIGRATION"
    incidents_dir: Name = "incidents"
    poll_interval: PollSeconds = 3.0
    workflow_timeout: WaitSeconds = 1800.0
    rollout_timeout: GraceSeconds = 300.0
    health_grace: GraceSeconds = 60.0
    health_interval: PollSeconds = 5.0  # seconds between health probes
    health_consecutive: Count = 3  # 200s in a row that make "healthy"
    ready_timeout: WaitSeconds = 900.0
    command_timeout: WaitSeconds = 120.0
    lock_ttl: LeaseSeconds = 600.0  # the environment lock's lease: renewed while a live run waits
    notify_timeout: ShortSeconds = 5.0  # the longest a run waits for its notifications, all together
    approval_timeout: WaitSeconds = 1800.0  # how long a live run waits for its approvals
    approval_poll_interval: PollSeconds = 10.0  # seconds between looks for approvals on GitHub
    verify_tables: Labels = ()  # row counts compared in Path B; empty: the public tables
    # false: the built-in environments exist only where a layer gives them an app
    builtin_environments: Annotated[bool, Field(strict=True)] = True
    environments: Mapping[str, EnvConfig] = field(default_factory=_default_environments)

    @model_validator(mode="after")
    def _passable_health_check(self) -> RunbookConfig:
        """Checked at load, not at verification: the rollback must not start on a check that
        can never pass (or never end)."""
        needed = (self.health_consecutive - 1) * self.health_interval
        if needed > self.health_grace:
            raise ValueError(f"health_grace {self.health_grace:g}s cannot hold "
                             f"{self.health_consecutive} consecutive 200s {self.health_interval:g}s "
                             f"apart (health_consecutive, health_interval): it needs at least "
                             f"{needed:g}s")
        if self.health_grace / self.health_interval > MAX_HEALTH_PROBES:
            raise ValueError(f"health_grace {self.health_grace:g}s / health_interval "
                             f"{self.health_interval:g}s would probe more than "
                             f"{MAX_HEALTH_PROBES} times")
        return self

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


TOP_KEYS = tuple(f.name for f in fields(RunbookConfig) if f.name != "environments")
ENV_KEYS = tuple(f.name for f in fields(EnvConfig) if f.name != "name")
LIST_KEYS = ("verify_tables", "record_labels")
FLOAT_KEYS = ("poll_interval", "workflow_timeout", "rollout_timeout", "health_grace",
              "health_interval", "ready_timeout", "command_timeout", "lock_ttl", "notify_timeout",
              "approval_timeout", "approval_poll_interval")
INT_KEYS = ("health_consecutive", "approvals")
BOOL_WORDS = {"true": True, "1": True, "yes": True, "false": False, "0": False, "no": False}
ACCEPTED = {
    "github_repo": '"owner/name"',
    "github_api_url": "an http(s):// URL, e.g. https://api.github.com",
    "workflow": "the workflow's file name, e.g. promote-image.yml",
    "name": ACCEPTED_NAME,
    "app": "the Fly app's name: " + ACCEPTED_NAME,
    "poll_interval": "a finite number of seconds from 0.01 to 3600",
    "approval_poll_interval": "a finite number of seconds from 0.01 to 3600",
    "workflow_timeout": "a finite number of seconds from 1 to 604800 (a week)",
    "ready_timeout": "a finite number of seconds from 1 to 604800 (a week)",
    "command_timeout": "a finite number of seconds from 1 to 604800 (a week)",
    "approval_timeout": "a finite number of seconds from 1 to 604800 (a week)",
    "lock_ttl": "a finite number of seconds from 10 to 86400 (a day)",
    "notify_timeout": "a finite number of seconds > 0 and up to 600",
    "rollout_timeout": "a finite number of seconds from 0 to 86400 (a day)",
    "health_grace": "a finite number of seconds from 0 to 86400 (a day)",
    "health_interval": "a finite number of seconds from 0.01 to 3600",
    "health_consecutive": "a whole number from 1 to 1000",
    "approvals": "a whole number of people from 0 (the default: 2 for a protected environment, "
                 "1 elsewhere) to 10",
    "protected": "true or false (the default: true for production only)",
    "builtin_environments": "true or false",
    "verify_tables": 'a list of table names, e.g. ["customers", "invoices"]',
    "record_labels": 'a list of labels, e.g. ["deployment-record", "env:qa"]',
    "environments": "a table of environments: [environments.<name>] with at least app",
    "*": f"the keys are {', '.join(TOP_KEYS)}, environments; an environment's keys are "
         f"{', '.join(ENV_KEYS)}",
}
_VALIDATOR = TypeAdapter(RunbookConfig)


def load_config(overrides: Mapping[str, Any] | None = None, *,
                environ: Mapping[str, str] | None = None,
                config_file: str | Path | None = None) -> RunbookConfig:
    """Defaults → TOML file → environment variables → overrides, each layer validated."""
    environ = os.environ if environ is None else environ
    cfg = RunbookConfig()
    data = asdict(cfg)
    apps: set[str] = set()  # environments some layer gave an app
    named = config_file or environ.get("ROLLBACK_RUNBOOK_CONFIG")
    path = Path(named or "runbook.toml")
    if path.is_file():
        table = read_toml(path, what="config file")
        apps |= _apps_given(table)
        data, cfg = _apply(data, table, str(path))
    elif named:
        raise ConfigError(f"Config file {path} does not exist (named by "
                          f"{'config_file' if config_file else 'ROLLBACK_RUNBOOK_CONFIG'}).",
                          "Check the path, or unset ROLLBACK_RUNBOOK_CONFIG to use ./runbook.toml.")
    layer, origin = _environ_layer(cfg, environ)
    if layer:
        apps |= _apps_given(layer)
        data, cfg = _apply(data, layer, "the environment variables",
                           name=lambda key: f"{origin.get(key, key)} (key {key!r})")
    if overrides:
        given = {key: value for key, value in overrides.items() if value is not None}
        apps |= _apps_given(given)
        data, cfg = _apply(data, given, "the notebook parameters (config)")
    return cfg if cfg.builtin_environments else _only_given(cfg, apps)


def _apps_given(layer: Mapping[str, Any]) -> set[str]:
    envs = layer.get("environments")
    if not isinstance(envs, Mapping):
        return set()
    return {str(name) for name, data in envs.items() if isinstance(data, Mapping) and "app" in data}


def _only_given(cfg: RunbookConfig, apps: set[str]) -> RunbookConfig:
    """``builtin_environments = false``: drop the built-in environments no layer gave an app."""
    kept = {name: env for name, env in cfg.environments.items()
            if name not in ENVIRONMENTS or name in apps}
    if not kept:
        raise ConfigError("builtin_environments is false and no environment has an app.",
                          "Add [environments.<name>] with app = \"…\" to runbook.toml.")
    return replace(cfg, environments=kept)


def read_toml(path: Path, *, what: str) -> dict[str, Any]:
    """A TOML file's tables, or a ConfigError naming the file, the line and the problem."""
    try:
        return tomllib.loads(path.read_text(encoding="utf-8"))
    except RecursionError:
        raise ConfigError(f"The {what} {path} nests arrays or tables too deeply to read.",
                          f"Flatten the nesting in {path}: no runbook key is nested.") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"The {what} {path} is not valid TOML: {exc}.",
                          f"Fix the syntax at that line of {path} (https://toml.io).") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"The {what} {path} cannot be read: {exc}.",
                          "Check the path and its permissions.") from None


def _apply(data: dict[str, Any], layer: Mapping[str, Any], source: str,
           name: Any = repr) -> tuple[dict[str, Any], RunbookConfig]:
    try:
        merged = _merge(data, layer)
    except ConfigError as exc:  # a table's shape: say which layer holds it
        raise ConfigError(f"Bad input in {source}: {exc.what}", exc.next_step) from None
    try:
        cfg = _VALIDATOR.validate_python(merged)
    except ValidationError as exc:
        raise bad_input(exc, source=source, name=name, accepted=ACCEPTED,
                        next_step=f"Fix it in {source}; see docs/configuration.md for every key.") \
            from None
    return asdict(cfg), cfg


def _merge(base: dict[str, Any], layer: Mapping[str, Any]) -> dict[str, Any]:
    layer = _approvals_table(layer)
    merged = {**base, **{key: value for key, value in layer.items() if key != "environments"}}
    given = layer.get("environments")
    if isinstance(given, Mapping):
        envs = dict(base["environments"])
        for env_name, env_data in given.items():
            envs[env_name] = _merge_env(envs.get(env_name), str(env_name), env_data)
        merged["environments"] = envs
    elif "environments" in layer:
        merged["environments"] = given  # not a table: validation names it
    return merged


def _approvals_table(layer: Mapping[str, Any]) -> Mapping[str, Any]:
    """``[approvals] production = 2`` is shorthand for ``[environments.production] approvals = 2``."""
    table = layer.get("approvals")
    if table is None:
        return layer
    if not isinstance(table, Mapping):
        raise ConfigError("'approvals' must be a table of environment = number of people.",
                          "Write [approvals] then e.g. production = 2.")
    envs = {name: dict(data) if isinstance(data, Mapping) else data
            for name, data in dict(layer.get("environments") or {}).items()}
    for env_name, number in table.items():
        entry = envs.setdefault(env_name, {})
        if isinstance(entry, dict):
            entry["approvals"] = number
    return {**{k: v for k, v in layer.items() if k != "approvals"}, "environments": envs}


def _merge_env(base: dict[str, Any] | None, name: str, data: Any) -> Any:
    if not isinstance(data, Mapping):
        return data
    if "name" in data:  # the table's name is the environment's name
        raise ConfigError(f"'environments.{name}.name' is not a known key.",
                          f"Remove it: the table's name ({name!r}) is the environment's name.")
    if base is None:
        return {**data, "name": name}
    merged = {**base, **data}
    if "app" in data and "health_url" not in data:
        merged["health_url"] = ""  # re-derive from the new app name
    return merged


def _environ_layer(cfg: RunbookConfig, environ: Mapping[str, str]
                   ) -> tuple[dict[str, Any], dict[str, str]]:
    """The ROLLBACK_* variables as a layer, and which variable set which dotted key."""
    layer: dict[str, Any] = {}
    origin: dict[str, str] = {}
    for var, value in sorted(environ.items()):
        if not var.startswith("ROLLBACK_") or var in OTHER_VARIABLES \
                or (var.startswith(OTHER_PREFIXES) and not _is_key(var)):
            continue
        key, env_name = _variable_key(var, cfg)
        if env_name:
            layer.setdefault("environments", {}).setdefault(env_name, {})[key] = \
                _from_string(key, value)
            origin[f"environments.{env_name}.{key}"] = var
        else:
            layer[key] = _from_string(key, value)
            origin[key] = var
    return layer, origin


def _is_key(var: str) -> bool:
    """``ROLLBACK_NOTIFY_TIMEOUT`` is the key ``notify_timeout``, not the destinations of an
    environment named ``timeout``: a configuration key wins over the ``ROLLBACK_NOTIFY_`` prefix."""
    return var.removeprefix("ROLLBACK_").lower() in TOP_KEYS


def _variable_key(var: str, cfg: RunbookConfig) -> tuple[str, str]:
    rest = var.removeprefix("ROLLBACK_").lower()
    if rest in TOP_KEYS:
        return rest, ""
    for env_name in sorted(cfg.environments, key=len, reverse=True):
        prefix = env_name.lower() + "_"
        if rest.startswith(prefix) and rest.removeprefix(prefix) in ENV_KEYS:
            return rest.removeprefix(prefix), env_name
    raise ConfigError(
        f"Unknown variable {var} in the environment: it is neither a configuration key nor "
        "one the runbook reads.",
        f"Unset it (`unset {var}`), or fix its name: ROLLBACK_<KEY> with KEY one of "
        f"{', '.join(k.upper() for k in TOP_KEYS)}; or ROLLBACK_<ENV>_<KEY> with ENV one of "
        f"{', '.join(e.upper() for e in cfg.environments)} and KEY one of "
        f"{', '.join(k.upper() for k in ENV_KEYS)}; or one of {', '.join(sorted(OTHER_VARIABLES))}.")


def _from_string(key: str, value: str) -> Any:
    """A variable's text as the key's type; what does not convert is left for validation to name."""
    if key in LIST_KEYS:
        return tuple(item.strip() for item in value.split(",") if item.strip())
    if key in ("builtin_environments", "protected"):
        return BOOL_WORDS.get(value.strip().lower(), value)
    try:
        if key in FLOAT_KEYS:
            return float(value)
        if key in INT_KEYS:
            return int(value)
    except ValueError:
        pass
    return value
