"""Configuration: renewa-one defaults, the documented load order, errors naming key and source."""

from __future__ import annotations

from pathlib import Path

import pytest

from rollback_helpers.domain.config import ENVIRONMENTS, EnvConfig, RunbookConfig, load_config
from rollback_helpers.errors import BadInput, ConfigError


@pytest.fixture(autouse=True)
def _no_stray_runbook_toml(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Run every test in an empty directory, so a ./runbook.toml elsewhere cannot leak in."""
    work = tmp_path / "cwd"
    work.mkdir()
    monkeypatch.chdir(work)


def write_toml(tmp_path: Path, text: str, name: str = "runbook.toml") -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


def refusal(tmp_path: Path, text: str) -> str:
    """What loading a runbook.toml holding ``text`` is refused with: bad input naming the file."""
    path = write_toml(tmp_path, text)
    with pytest.raises(ConfigError) as caught:
        load_config(environ={}, config_file=path)
    assert caught.value.exit_code == 2
    assert str(path) in str(caught.value)
    return str(caught.value)


# -- defaults -----------------------------------------------------------------------------------
def test_defaults_describe_the_three_renewa_one_environments() -> None:
    """With no file, variables or overrides, the config is renewa-one's three environments."""
    cfg = load_config(environ={})
    assert tuple(cfg.environments) == ENVIRONMENTS == ("development", "staging", "production")
    assert cfg.github_repo == "renewa/renewa-one"
    assert (cfg.repo_owner, cfg.repo_name) == ("renewa", "renewa-one")
    assert {name: env.app for name, env in cfg.environments.items()} == {
        "development": "renewa-one-development",
        "staging": "renewa-one-staging",
        "production": "renewa-one",
    }
    assert {name: env.infisical_env for name, env in cfg.environments.items()} == {
        "development": "dev", "staging": "staging", "production": "prod",
    }


@pytest.mark.parametrize("name", ENVIRONMENTS)
def test_default_health_url_and_labels_derive_from_app_and_env(name: str) -> None:
    """Each default environment's health URL comes from its app, its labels from its name."""
    env = load_config(environ={}).env(name)
    assert env.name == name
    assert env.health_url == f"https://{env.app}.fly.dev/api/health/ready"
    assert env.record_labels == ("deployment-record", f"env:{name}")


def test_env_config_derives_url_and_labels_only_when_not_given() -> None:
    """An explicit health URL and labels are kept; blank ones are derived."""
    given = EnvConfig("qa", "qa-app", health_url="https://qa.example/health", record_labels=("x",))
    assert (given.health_url, given.record_labels) == ("https://qa.example/health", ("x",))
    derived = EnvConfig("qa", "qa-app")
    assert derived.health_url == "https://qa-app.fly.dev/api/health/ready"
    assert derived.record_labels == ("deployment-record", "env:qa")


# -- environment lookup -------------------------------------------------------------------------
def test_unknown_environment_error_lists_the_known_ones() -> None:
    """Asking for an environment that does not exist names it and lists every known one."""
    with pytest.raises(ConfigError) as caught:
        RunbookConfig().env("prod")
    message = str(caught.value)
    assert "'prod'" in message
    assert "development, production, staging" in message


@pytest.mark.parametrize("name", [None, ""])
def test_missing_environment_is_a_config_error_listing_choices(name: str | None) -> None:
    """No environment at all is a ConfigError that tells the operator the choices."""
    with pytest.raises(ConfigError, match="development, production, staging"):
        RunbookConfig().env(name)


def test_config_error_is_bad_input_with_exit_code_2() -> None:
    """Config errors are the operator's input being wrong: exit code 2."""
    with pytest.raises(BadInput) as caught:
        RunbookConfig().env("nope")
    assert caught.value.exit_code == 2


# -- load order ---------------------------------------------------------------------------------
def test_each_layer_overrides_the_one_before(tmp_path: Path) -> None:
    """Defaults < TOML file < ROLLBACK_* variables < overrides, key by key."""
    path = write_toml(tmp_path, 'workflow = "from-file.yml"\nfly_org = "file-org"\n'
                                'workflow_ref = "file-ref"\n')
    environ = {"ROLLBACK_WORKFLOW_REF": "env-ref", "ROLLBACK_FLY_ORG": "env-org"}
    cfg = load_config({"fly_org": "param-org"}, environ=environ, config_file=path)
    assert cfg.workflow == "from-file.yml"      # file beats default
    assert cfg.workflow_ref == "env-ref"        # environment beats file
    assert cfg.fly_org == "param-org"           # override beats environment
    assert cfg.flyctl == "flyctl"               # untouched default


def test_config_file_is_found_through_rollback_runbook_config(tmp_path: Path) -> None:
    """ROLLBACK_RUNBOOK_CONFIG points at the TOML file when no explicit path is given."""
    path = write_toml(tmp_path, 'github_repo = "acme/shop"\n', name="elsewhere.toml")
    cfg = load_config(environ={"ROLLBACK_RUNBOOK_CONFIG": str(path)})
    assert cfg.github_repo == "acme/shop"


def test_runbook_toml_in_the_working_directory_is_read() -> None:
    """Without a variable or explicit path, ./runbook.toml is read if present."""
    Path("runbook.toml").write_text('fly_org = "cwd-org"\n')
    assert load_config(environ={}).fly_org == "cwd-org"


def test_explicit_config_file_wins_over_the_variable(tmp_path: Path) -> None:
    """An explicit config_file is used even when ROLLBACK_RUNBOOK_CONFIG names another file."""
    explicit = write_toml(tmp_path, 'fly_org = "explicit"\n', name="a.toml")
    other = write_toml(tmp_path, 'fly_org = "variable"\n', name="b.toml")
    cfg = load_config(environ={"ROLLBACK_RUNBOOK_CONFIG": str(other)}, config_file=explicit)
    assert cfg.fly_org == "explicit"


def test_per_environment_variables_set_one_environments_keys() -> None:
    """ROLLBACK_<ENV>_<KEY> changes that environment only."""
    cfg = load_config(environ={"ROLLBACK_STAGING_INFISICAL_ENV": "stg",
                               "ROLLBACK_PRODUCTION_RECORD_LABELS": "deploy, env:prod"})
    assert cfg.env("staging").infisical_env == "stg"
    assert cfg.env("production").record_labels == ("deploy", "env:prod")
    assert cfg.env("development") == RunbookConfig().env("development")


def test_float_keys_from_variables_are_numbers() -> None:
    """Numeric keys given as variable strings become floats."""
    cfg = load_config(environ={"ROLLBACK_POLL_INTERVAL": "0.5", "ROLLBACK_HEALTH_GRACE": "90"})
    assert (cfg.poll_interval, cfg.health_grace) == (0.5, 90.0)


def test_variables_without_the_prefix_are_ignored() -> None:
    """Only ROLLBACK_* variables take part; unrelated ones change nothing."""
    assert load_config(environ={"WORKFLOW": "x.yml", "HOME": "/root"}) == load_config(environ={})


def test_none_overrides_leave_the_value_alone() -> None:
    """A notebook parameter left as None does not override what the earlier layers set."""
    cfg = load_config({"fly_org": None}, environ={"ROLLBACK_FLY_ORG": "env-org"})
    assert cfg.fly_org == "env-org"


def test_toml_adds_a_new_environment_with_derived_defaults(tmp_path: Path) -> None:
    """A new [environments.<name>] table with an app becomes a fourth environment."""
    path = write_toml(tmp_path, '[environments.qa]\napp = "renewa-one-qa"\n')
    cfg = load_config(environ={}, config_file=path)
    assert set(cfg.environments) == {*ENVIRONMENTS, "qa"}
    qa = cfg.env("qa")
    assert qa.health_url == "https://renewa-one-qa.fly.dev/api/health/ready"
    assert qa.record_labels == ("deployment-record", "env:qa")


def test_without_builtin_environments_only_those_given_an_app_exist(tmp_path: Path) -> None:
    """builtin_environments = false: the file's environments, and a built-in one only where
    some layer gives it an app (here production, from a variable)."""
    path = write_toml(tmp_path, 'builtin_environments = false\n[environments.staging]\n'
                                'app = "shop-staging"\n[environments.qa]\napp = "shop-qa"\n')
    cfg = load_config(environ={}, config_file=path)
    assert set(cfg.environments) == {"staging", "qa"}
    assert cfg.env("staging").infisical_env == "staging"  # the built-in's other defaults stay
    with pytest.raises(ConfigError, match="Unknown environment 'development'"):
        cfg.env("development")
    cfg = load_config(environ={"ROLLBACK_PRODUCTION_APP": "shop"}, config_file=path)
    assert set(cfg.environments) == {"staging", "qa", "production"}
    assert load_config(environ={"ROLLBACK_BUILTIN_ENVIRONMENTS": "yes"},
                       config_file=path).environments.keys() == {*ENVIRONMENTS, "qa"}


def test_without_builtin_environments_and_no_app_is_an_error(tmp_path: Path) -> None:
    path = write_toml(tmp_path, "builtin_environments = false\n")
    with pytest.raises(ConfigError, match="no environment has an app") as caught:
        load_config(environ={}, config_file=path)
    assert "[environments.<name>]" in caught.value.next_step


@pytest.mark.parametrize("value", ['"no"', "0"])
def test_builtin_environments_is_a_boolean_in_toml(tmp_path: Path, value: str) -> None:
    path = write_toml(tmp_path, f"builtin_environments = {value}\n")
    with pytest.raises(ConfigError, match="builtin_environments.*true or false"):
        load_config(environ={}, config_file=path)


# -- re-deriving the health URL -----------------------------------------------------------------
def test_changing_an_apps_name_rederives_its_health_url(tmp_path: Path) -> None:
    """A new app name for an existing environment moves its health URL with it."""
    path = write_toml(tmp_path, '[environments.staging]\napp = "new-staging"\n')
    staging = load_config(environ={}, config_file=path).env("staging")
    assert staging.app == "new-staging"
    assert staging.health_url == "https://new-staging.fly.dev/api/health/ready"
    assert staging.infisical_env == "staging"  # the rest of the environment is kept


def test_changing_an_apps_name_keeps_an_explicit_health_url(tmp_path: Path) -> None:
    """A health URL given together with the new app name is kept as given."""
    path = write_toml(tmp_path, '[environments.staging]\napp = "new-staging"\n'
                                'health_url = "https://status.example/ready"\n')
    staging = load_config(environ={}, config_file=path).env("staging")
    assert staging.health_url == "https://status.example/ready"


def test_app_override_from_a_variable_rederives_the_health_url() -> None:
    """ROLLBACK_STAGING_APP re-derives the staging health URL too."""
    staging = load_config(environ={"ROLLBACK_STAGING_APP": "my-app"}).env("staging")
    assert staging.health_url == "https://my-app.fly.dev/api/health/ready"


def test_overrides_can_change_an_environments_app() -> None:
    """Notebook parameters may reshape an environment, with the same re-derivation."""
    cfg = load_config({"environments": {"production": {"app": "renewa-prod"}}}, environ={})
    assert cfg.env("production").health_url == "https://renewa-prod.fly.dev/api/health/ready"


# -- errors name the key and the source ---------------------------------------------------------
def test_unknown_top_level_key_in_the_file_names_key_and_file(tmp_path: Path) -> None:
    """A typo in runbook.toml is refused, naming the key and the file."""
    assert "'pol_interval'" in refusal(tmp_path, 'pol_interval = 3\n')


def test_unknown_environment_key_names_key_environment_and_file(tmp_path: Path) -> None:
    """An unknown key inside an environment table names the key, environment and file."""
    message = refusal(tmp_path, '[environments.staging]\nhealth = "x"\n')
    assert "'environments.staging.health'" in message and "is not a known key" in message
    assert "health_url" in message  # the accepted keys are listed


def test_unknown_override_key_names_the_parameters_as_source() -> None:
    """An unknown notebook parameter is refused, naming the key and 'parameters'."""
    with pytest.raises(ConfigError) as caught:
        load_config({"dryrun": True}, environ={})
    assert "'dryrun'" in str(caught.value) and "parameters" in str(caught.value)


@pytest.mark.parametrize("toml_text, key", [
    ('poll_interval = "fast"\n', "poll_interval"),
    ('poll_interval = true\n', "poll_interval"),
    ('github_repo = 42\n', "github_repo"),
    ('[environments.staging]\napp = 7\n', "environments.staging.app"),
    ('[environments.staging]\nrecord_labels = 5\n', "environments.staging.record_labels"),
])
def test_wrong_type_in_the_file_names_key_and_file(tmp_path: Path, toml_text: str,
                                                   key: str) -> None:
    """A value of the wrong type is refused, naming the dotted key and the file."""
    message = refusal(tmp_path, toml_text)
    assert f"'{key}'" in message and "wrong type" in message


def test_wrong_type_from_a_variable_names_key_and_source() -> None:
    """A non-numeric ROLLBACK_POLL_INTERVAL names the key and 'environment variables'."""
    with pytest.raises(ConfigError) as caught:
        load_config(environ={"ROLLBACK_POLL_INTERVAL": "soon"})
    assert "'poll_interval'" in str(caught.value)
    assert "environment variables" in str(caught.value)


@pytest.mark.parametrize("toml_text", ['environments = 3\n', 'environments = { staging = 3 }\n'])
def test_environments_must_be_tables(tmp_path: Path, toml_text: str) -> None:
    """'environments' and each environment in it must be TOML tables."""
    path = write_toml(tmp_path, toml_text)
    with pytest.raises(ConfigError, match="(?s)'environments.*wrong type.*table"):
        load_config(environ={}, config_file=path)


def test_bad_toml_names_the_file(tmp_path: Path) -> None:
    """A file that is not TOML is a ConfigError naming the file, not a raw parser error."""
    assert "not valid TOML" in refusal(tmp_path, 'workflow = "unterminated\n')


def test_missing_explicit_file_is_an_error(tmp_path: Path) -> None:
    """An explicit config file that does not exist is refused rather than silently skipped."""
    with pytest.raises(ConfigError, match="does not exist"):
        load_config(environ={}, config_file=tmp_path / "missing.toml")


def test_missing_file_named_by_the_variable_is_an_error(tmp_path: Path) -> None:
    """ROLLBACK_RUNBOOK_CONFIG naming a missing file is refused, naming the path."""
    missing = tmp_path / "nope.toml"
    with pytest.raises(ConfigError) as caught:
        load_config(environ={"ROLLBACK_RUNBOOK_CONFIG": str(missing)})
    assert str(missing) in str(caught.value)


def test_new_environment_without_an_app_is_an_error(tmp_path: Path) -> None:
    """A new environment must name its app; the error names the environment and the file."""
    message = refusal(tmp_path, '[environments.qa]\ninfisical_env = "qa"\n')
    assert "'environments.qa.app': is required" in message


@pytest.mark.parametrize("repo", ["renewa", "a/b/c", "/renewa-one", "renewa/"])
def test_github_repo_must_be_owner_slash_name(repo: str) -> None:
    """github_repo that is not owner/name is refused after all layers are applied."""
    with pytest.raises(ConfigError, match="owner/name"):
        load_config({"github_repo": repo}, environ={})


# -- ranges, finiteness, lists and unknown variables ----------------------------------------------
@pytest.mark.parametrize("key, value, problem", [
    ("poll_interval", 0, "greater than or equal to 0.01"),
    ("poll_interval", -1.5, "greater than or equal to 0.01"),
    ("poll_interval", 1e308, "less than or equal to 3600"),
    ("lock_ttl", 1e-9, "greater than or equal to 10"),
    ("workflow_timeout", -60, "greater than or equal to 1"),
    ("workflow_timeout", 1e-300, "greater than or equal to 1"),
    ("ready_timeout", 0.0, "greater than or equal to 1"),
    ("command_timeout", float("inf"), "finite"),
    ("health_grace", float("nan"), "finite"),
    ("rollout_timeout", -1, "greater than or equal to 0"),
    ("health_grace", "60", "wrong type"),
])
def test_numbers_are_finite_and_in_range(key: str, value: object, problem: str) -> None:
    """Every interval and timeout is checked when loaded, so no loop can run away on it."""
    with pytest.raises(ConfigError) as caught:
        load_config({key: value}, environ={})
    assert f"'{key}'" in str(caught.value) and problem in str(caught.value)
    assert "seconds" in str(caught.value)  # the accepted form


def test_zero_grace_and_rollout_timeout_are_allowed() -> None:
    """A grace of 0 with one 200 required means one probe, not an error."""
    cfg = load_config({"health_grace": 0, "rollout_timeout": 0, "health_consecutive": 1},
                      environ={})
    assert (cfg.health_grace, cfg.rollout_timeout) == (0.0, 0.0)


@pytest.mark.parametrize("overrides, named", [
    ({"health_grace": 0}, "cannot hold 3 consecutive 200s"),
    ({"health_consecutive": 20, "health_interval": 5}, "cannot hold 20 consecutive 200s"),
    ({"health_interval": 0.01, "health_grace": 3600}, "more than 10000 times"),
    ({"health_consecutive": 0}, "'health_consecutive'"),
    ({"health_consecutive": 2.5}, "'health_consecutive'"),
])
def test_a_health_check_that_cannot_pass_or_end_is_refused_at_load(
        overrides: dict[str, object], named: str) -> None:
    """Grace, interval and the consecutive count are checked together before the run starts,
    not at verification after the rollback was dispatched."""
    with pytest.raises(ConfigError, match=named):
        load_config(overrides, environ={})


@pytest.mark.parametrize("var, value", [("ROLLBACK_POLL_INTERVAL", "0"),
                                        ("ROLLBACK_HEALTH_GRACE", "nan"),
                                        ("ROLLBACK_READY_TIMEOUT", "-inf")])
def test_bad_numbers_from_variables_name_the_variable(var: str, value: str) -> None:
    """A variable's bad number is reported with the variable's own name."""
    with pytest.raises(ConfigError) as caught:
        load_config(environ={var: value})
    assert var in str(caught.value) and "the environment variables" in str(caught.value)


@pytest.mark.parametrize("toml_text, key", [
    ('verify_tables = "customers"\n', "verify_tables"),
    ('[environments.staging]\nrecord_labels = "deployment-record"\n',
     "environments.staging.record_labels"),
])
def test_a_list_key_given_as_a_string_is_bad_input(tmp_path: Path, toml_text: str, key: str) -> None:
    """A string where a list belongs is refused (exit 2), never split or taken as one item."""
    message = refusal(tmp_path, toml_text)
    assert f"'{key}'" in message and "a list of" in message


@pytest.mark.parametrize("var", ["ROLLBACK_POLL_INTERVALS", "ROLLBACK_STAGING_HEALTH",
                                 "ROLLBACK_QA_APP", "ROLLBACK_DRY_RUN"])
def test_unknown_rollback_variables_are_errors(var: str) -> None:
    """A misspelt ROLLBACK_* variable is named, with the accepted forms, instead of ignored."""
    with pytest.raises(ConfigError) as caught:
        load_config(environ={var: "1"})
    assert var in str(caught.value) and "POLL_INTERVAL" in str(caught.value)


def test_variables_the_runbook_reads_elsewhere_are_not_config_errors() -> None:
    """ROLLBACK_OPERATOR, ROLLBACK_SANDBOX_DIR … are known, and change no configuration key."""
    environ = {"ROLLBACK_OPERATOR": "ana", "ROLLBACK_SANDBOX_DIR": "/tmp/x", "ROLLBACK_VENV": "v",
               "ROLLBACK_LAB_ROOT": "/tmp/lab", "ROLLBACK_STATE_DIR": "/tmp/state"}
    assert load_config(environ=environ) == load_config(environ={})


def test_the_name_of_an_environment_table_cannot_be_overridden(tmp_path: Path) -> None:
    """`name` inside [environments.x] is refused: the table's name is the environment's."""
    path = write_toml(tmp_path, '[environments.staging]\nname = "prod"\n')
    with pytest.raises(ConfigError, match="environments.staging.name"):
        load_config(environ={}, config_file=path)


def test_approvals_default_to_two_for_production_and_one_elsewhere() -> None:
    cfg = load_config(environ={}, config_file=None)
    assert cfg.env("production").required_approvals == 2
    assert cfg.env("staging").required_approvals == 1
    assert cfg.env("production").deployment_environment == "production"


def test_approvals_per_environment_from_a_table_a_key_or_a_variable(tmp_path: Path) -> None:
    path = write_toml(tmp_path, '[approvals]\nproduction = 3\nstaging = 2\n\n'
                      '[environments.development]\napprovals = 2\ngithub_environment = "dev"\n')
    cfg = load_config(environ={}, config_file=path)
    assert [cfg.env(e).required_approvals for e in ("production", "staging", "development")] == [
        3, 2, 2]
    assert cfg.env("development").deployment_environment == "dev"
    from_env = load_config(environ={"ROLLBACK_STAGING_APPROVALS": "2",
                                    "ROLLBACK_APPROVAL_TIMEOUT": "60"}, config_file=path)
    assert from_env.env("staging").required_approvals == 2 and from_env.approval_timeout == 60.0


@pytest.mark.parametrize("value", ['"two"', "1.5", "-1", "true"])
def test_approvals_must_be_a_whole_number(tmp_path: Path, value: str) -> None:
    assert "approvals" in refusal(tmp_path, f"[environments.production]\napprovals = {value}\n")


def test_notification_urls_are_never_config_keys(tmp_path: Path) -> None:
    """ROLLBACK_NOTIFY* are read by the notifier only; a config file cannot hold them."""
    cfg = load_config(environ={"ROLLBACK_NOTIFY": "json://x/y", "ROLLBACK_NOTIFY_PRODUCTION": "json://z"})
    assert "json://" not in repr(cfg)
    assert "'notify'" in refusal(tmp_path, 'notify = "json://x/y"\n')


@pytest.mark.parametrize(("text", "problem"), [
    ('[environments.qa]\nname = "qa"\napp = "x"\n', "'environments.qa.name' is not a known key"),
    ('approvals = 2\n', "'approvals' must be a table")], ids=["name-key", "approvals-not-a-table"])
def test_a_table_of_the_wrong_shape_names_the_file(tmp_path: Path, text: str, problem: str) -> None:
    assert problem in refusal(tmp_path, text)


def test_protected_defaults_to_production_only_and_is_strict(tmp_path: Path) -> None:
    from rollback_helpers.domain.config import load_config

    cfg = load_config()
    assert cfg.env("production").is_protected and not cfg.env("staging").is_protected
    path = write_toml(tmp_path, '[environments.staging]\napp = "a"\nprotected = "yes"\n')
    with pytest.raises(ConfigError, match="protected"):
        load_config(config_file=path)
