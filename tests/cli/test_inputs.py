"""The command line's own checks: number types, the production confirmation, flag names."""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
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
            "confirm": "", "incidents_dir": "", "reason": "v42 crashes on start"}
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


def test_a_live_run_needs_a_reason_and_a_dry_run_does_not() -> None:
    with pytest.raises(ConfigError, match="needs a reason") as refused:
        inputs.check_command(args(env="staging", reason="  "), {"env": "staging", "dry_run": False})
    assert '--reason "<what is rolled back and why>"' in refused.value.next_step
    inputs.check_command(args(env="staging", reason="", dry_run=True), {"env": "staging"})
    inputs.check_command(args(env="staging", reason="", path="verify-flip"), {"env": "staging"})


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


@pytest.mark.parametrize("argv, flag", [
    (["run", "path-b", "--target-digest", "sha256:" + "a" * 64], "--target-digest"),
    (["drill", "path-b", "--watch-in-flight"], "--watch-in-flight"),
    (["run", "path-a", "--backup-id", "backup_1"], "--backup-id"),
    (["run", "path-a", "--old-cluster", "w3k8p1x9m2q7v4zr"], "--old-cluster"),
    (["run", "verify-flip", "--break-lock", "the laptop died"], "--break-lock"),
    (["run", "verify-flip", "--confirm", "production"], "--confirm"),
], ids=lambda v: v if isinstance(v, str) else " ".join(v[:2]))
def test_another_paths_option_is_bad_input_naming_the_flag(
        capsys: pytest.CaptureFixture[str], tmp_path: Path, argv: list[str], flag: str) -> None:
    """An option the path does not take is refused by its flag before anything starts, not
    silently dropped: no world, no kernel, no archive."""
    from rollback_helpers.cli import main as cli

    incidents = tmp_path / "incidents"
    code = cli.main([*argv[:2], "--env", "staging", "--incidents-dir", str(incidents), *argv[2:]])
    err = capsys.readouterr().err
    assert code == 2, err
    assert f"{flag} is not one {argv[1]} takes" in err and "Leave it out" in err
    assert list(incidents.glob("**/*.ipynb")) == []


def test_a_paths_own_options_become_its_parameters() -> None:
    """The flags a path takes reach its notebook; verify-flip, which only reads, gets no dry_run."""
    from rollback_helpers.cli import main as cli

    parsed = cli.build_parser().parse_args(["run", "path-b", "--env", "staging", "--backup-id",
                                            "backup_1", "--ready-timeout", "30"])
    parsed.run_id = "r1"
    params = cli.parameters(parsed, backend="real", archive_to="-", sandbox_dir=None)
    assert (params["backup_id"], params["ready_timeout"], params["dry_run"]) == ("backup_1", 30.0,
                                                                                 True)
    assert "target_digest" not in params and "new_cluster" not in params
    parsed = cli.build_parser().parse_args(["run", "verify-flip", "--env", "staging",
                                            "--new-cluster", "c1"])
    parsed.run_id = "r2"
    params = cli.parameters(parsed, backend="real", archive_to="-", sandbox_dir=None)
    assert params["new_cluster"] == "c1" and "dry_run" not in params and "confirm" not in params


LEAK = "S3cr3tPw1234"


def run_cli(tmp_path: Path, *argv: str, **env: str) -> subprocess.CompletedProcess[str]:
    """The command line in a process of its own, its working folder, home and temp in tmp_path."""
    home, temp = tmp_path / "home", tmp_path / "tmp"
    home.mkdir(exist_ok=True)
    temp.mkdir(exist_ok=True)
    clean = {k: v for k, v in os.environ.items() if not k.startswith("ROLLBACK_")}
    return subprocess.run([sys.executable, "-m", "rollback_helpers", *argv], cwd=tmp_path,
                          capture_output=True, text=True, timeout=120,
                          env={**clean, "HOME": str(home), "TMPDIR": str(temp), **env})


def written(tmp_path: Path) -> list[Path]:
    return [p for p in tmp_path.rglob("*") if p.is_file()]


@pytest.mark.parametrize("argv, env", [
    (["drill", "path-a", "--env", "staging", "--reason",
      f"login failed for postgresql://app-user:{LEAK}@pgbouncer.x.flympg.net."], {}),
    (["run", "path-a", "--env", "staging", "--live", "--reason", f"password {LEAK}"], {}),
    (["drill", "path-a", "--env", "staging", "--break-lock", f"pw: {LEAK}"], {}),
    (["drill", "path-b", "--env", "staging", "--incidents-dir", f"/srv/x/pwd={LEAK}"], {}),
    (["drill", "path-a", "--env", "staging"], {"ROLLBACK_OPERATOR": f"password={LEAK}"}),
], ids=["reason-url", "reason-prose", "break-lock", "incidents-dir", "ROLLBACK_OPERATOR"])
def test_a_credential_in_free_text_is_refused_before_anything_starts(
        tmp_path: Path, argv: list[str], env: dict[str, str]) -> None:
    """Exit 2, one message naming the source, no traceback, the value never echoed, no file
    written (no archive, no sandbox world, no kernel folder)."""
    done = run_cli(tmp_path, *argv, **env)
    assert done.returncode == 2, done.stdout + done.stderr
    assert "Traceback" not in done.stderr and "looks like a credential" in done.stderr
    assert LEAK not in done.stdout + done.stderr
    assert written(tmp_path) == []


def test_an_unknown_password_flag_is_a_usage_error_that_does_not_echo_it(tmp_path: Path) -> None:
    done = run_cli(tmp_path, "drill", "path-a", "--env", "staging", f"--password={LEAK}")
    assert done.returncode == 2 and "unrecognized arguments: --password=****" in done.stderr
    assert LEAK not in done.stderr and "Traceback" not in done.stderr


def test_the_operators_name_from_the_environment_is_guarded_where_the_kernel_reads_it(
        monkeypatch: pytest.MonkeyPatch) -> None:
    from rollback_helpers.errors import BadInput
    from rollback_helpers.ui.decisions import default_operator

    monkeypatch.setenv("ROLLBACK_OPERATOR", "alice")
    assert default_operator() == "alice"
    monkeypatch.setenv("ROLLBACK_OPERATOR", f"alice password={LEAK}")
    with pytest.raises(BadInput, match="ROLLBACK_OPERATOR") as refused:
        default_operator()
    assert LEAK not in str(refused.value)


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


def test_a_drills_latency_names_seams_and_seconds() -> None:
    assert inputs.latency("github=0.25,flyctl=1.5") == {"github": 0.25, "flyctl": 1.5}
    assert latency_seams() == inputs.LATENCY_SEAMS  # the sandbox's own list
    for bad in ("gitlab=1", "github", "github=-1", "flyctl=nan"):
        with pytest.raises(argparse.ArgumentTypeError, match="SEAM=SECONDS|seconds"):
            inputs.latency(bad)


def latency_seams() -> tuple[str, ...]:
    from rollback_helpers.sandbox.core.latency import SEAMS

    return SEAMS


def test_a_bad_latency_flag_is_a_usage_error_before_anything_starts(
        capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    from rollback_helpers.cli import main as cli

    with pytest.raises(SystemExit) as exited:
        cli.main(["drill", "path-a", "--env", "staging", "--latency", "github=slow",
                  "--incidents-dir", str(tmp_path / "incidents")])
    err = capsys.readouterr().err
    assert exited.value.code == 2 and "--latency" in err and "github=slow" in err
    assert "Traceback" not in err and not (tmp_path / "incidents").exists()
