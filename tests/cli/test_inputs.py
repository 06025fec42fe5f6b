"""The command line's own checks: number types, the production confirmation, flag names."""

from __future__ import annotations

import argparse
from pathlib import Path

import pytest

from rollback_helpers.cli import inputs
from rollback_helpers.errors import ConfigError, ConfirmationRequired


@pytest.fixture(autouse=True)
def _empty_cwd(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("ROLLBACK_RUNBOOK_CONFIG", raising=False)


def args(**given: object) -> argparse.Namespace:
    base = {"command": "run", "path": "path-a", "env": "production", "dry_run": False,
            "confirm": "", "incidents_dir": ""}
    return argparse.Namespace(**{**base, **given})


@pytest.mark.parametrize("text, kind", [("0", inputs.seconds), ("2.5", inputs.seconds),
                                        ("0.1", inputs.positive_seconds), ("3", inputs.positive_int),
                                        ("0", inputs.port), ("65535", inputs.port)])
def test_good_numbers_pass(text: str, kind: object) -> None:
    assert kind(text) == float(text)  # type: ignore[operator]


@pytest.mark.parametrize("text, kind", [
    ("nan", inputs.seconds), ("inf", inputs.seconds), ("-0.5", inputs.seconds),
    ("0", inputs.positive_seconds), ("-inf", inputs.positive_seconds), ("x", inputs.positive_seconds),
    ("0", inputs.positive_int), ("1.5", inputs.positive_int), ("65536", inputs.port),
    ("-1", inputs.port)])
def test_bad_numbers_are_argparse_errors_quoting_the_value(text: str, kind: object) -> None:
    with pytest.raises(argparse.ArgumentTypeError, match=repr(text).replace("'", ".")):
        kind(text)  # type: ignore[operator]


def test_live_production_needs_confirm_for_run_and_drill() -> None:
    for command in ("run", "drill"):
        with pytest.raises(ConfirmationRequired, match="--confirm production"):
            inputs.check_command(args(command=command), {"env": "production", "dry_run": False})
    inputs.check_command(args(confirm="production"), {"env": "production", "dry_run": False})


def test_verify_flip_only_reads_so_needs_no_confirmation() -> None:
    """verify-flip runs with dry_run False (nothing to dry-run) yet never changes anything."""
    inputs.check_command(args(path="verify-flip"), {"env": "production"})


def test_a_bad_parameter_is_named_by_its_flag() -> None:
    with pytest.raises(ConfigError, match="--record-number"):
        inputs.check_command(args(dry_run=True), {"env": "production", "record_number": 0})


def test_an_overflowing_number_is_not_a_speed() -> None:
    """1e999 parses as infinity: refused like inf."""
    with pytest.raises(argparse.ArgumentTypeError):
        inputs.seconds("1e999")


def test_protection_is_a_setting_not_the_name_production(tmp_path: Path) -> None:
    """Attack 9: an environment named ``prod`` on the production app. Protected by the setting,
    it needs --confirm prod (and two people); unprotected ``production`` needs neither. On main
    ``protected`` was an unknown key and ``prod`` got no confirmation."""
    from rollback_helpers.domain.config import load_config

    Path("runbook.toml").write_text(
        '[environments.prod]\napp = "renewa-one"\nprotected = true\n\n'
        '[environments.production]\napp = "renewa-one"\nprotected = false\n')
    with pytest.raises(ConfirmationRequired, match="--confirm prod"):
        inputs.check_command(args(env="prod"), {"env": "prod", "dry_run": False})
    inputs.check_command(args(env="prod", confirm="prod"), {"env": "prod", "dry_run": False})
    inputs.check_command(args(), {"env": "production", "dry_run": False})
    cfg = load_config()
    assert cfg.env("prod").is_protected and cfg.env("prod").required_approvals == 2
    assert not cfg.env("production").is_protected and cfg.env("production").required_approvals == 1
    assert cfg.env("staging").required_approvals == 1
