"""`rollback-runbook init`: a commented runbook.toml from flags or answers, validated by load_config."""

from __future__ import annotations

import argparse
import os
import pty
import select
import subprocess
import sys
import time
import tomllib
from pathlib import Path

import pytest

from rollback_helpers.cli import init_config
from rollback_helpers.cli import main as cli
from rollback_helpers.domain.config import load_config

FLAGS = ["--repo", "acme/shop", "--app", "staging=shop-staging", "--app", "production=shop",
         "--workflow", "promote.yml", "--env-input", "environment", "--image-input", "digest",
         "--record-labels", "deploy,env/{env}", "--fly-org", "acme-inc",
         "--cluster-map", "ops/clusters.sh", "--incidents-dir", "records/incidents"]


def args(*argv: str) -> argparse.Namespace:
    return cli.build_parser().parse_args(["init", *argv])


def test_flags_write_a_commented_file_that_loads(tmp_path: Path,
                                                 capsys: pytest.CaptureFixture[str]) -> None:
    """Every answer lands in the file, with comments, and load_config reads it back."""
    target = tmp_path / "runbook.toml"
    assert cli.main(["init", *FLAGS, "--output", str(target)]) == 0
    text = target.read_text()
    assert text.count("\n# ") >= 8  # commented, key by key
    cfg = load_config(config_file=target, environ={})
    assert cfg.github_repo == "acme/shop" and cfg.workflow == "promote.yml"
    assert (cfg.workflow_env_input, cfg.workflow_image_input) == ("environment", "digest")
    assert cfg.fly_org == "acme-inc" and cfg.cluster_map_path == "ops/clusters.sh"
    assert cfg.incidents_dir == "records/incidents"
    assert cfg.env("staging").app == "shop-staging"
    assert cfg.env("staging").record_labels == ("deploy", "env/staging")
    assert cfg.env("production").app == "shop"
    assert cfg.env("staging").health_url == "https://shop-staging.fly.dev/api/health/ready"
    assert set(cfg.environments) == {"staging", "production"}  # not the built-in development
    out = capsys.readouterr().out
    assert "rollback-runbook check --backend real" in out
    assert not list(tmp_path.glob(".*draft"))


def test_bad_answers_are_bad_input_and_nothing_is_written(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """Each wrong answer is named; exit 2; no file."""
    target = tmp_path / "runbook.toml"
    code = cli.main(["init", "--repo", "acme", "--app", "staging=Shop_Staging", "--workflow",
                     "promote", "--env-input", "x", "--image-input", "x", "--output", str(target)])
    err = capsys.readouterr().err
    assert code == 2 and not target.exists()
    for words in ("'acme' is not owner/name", "'Shop_Staging' for staging", "'promote'",
                  "the env and image inputs must differ"):
        assert words in err
    assert "Traceback" not in err


@pytest.mark.parametrize(("argv", "named"), [
    (["--app", "staging=shop-staging"], "--repo owner/name"),
    (["--repo", "acme/shop"], "--app staging=shop-staging"),
    (["--repo", "acme/shop", "--app", "staging"], "--app 'staging' is not ENV=APP")],
    ids=["no repo", "no app", "app without =APP"])
def test_without_a_terminal_missing_answers_are_bad_input(
        tmp_path: Path, capsys: pytest.CaptureFixture[str], argv: list[str], named: str) -> None:
    """Not in a terminal, nothing is asked: a missing or malformed flag is exit 2, named."""
    assert cli.main(["init", *argv, "--output", str(tmp_path / "r.toml")]) == 2
    assert named in capsys.readouterr().err
    assert not (tmp_path / "r.toml").exists()


def test_an_existing_file_is_kept_unless_forced(tmp_path: Path) -> None:
    """init never overwrites a team's file by accident."""
    target = tmp_path / "runbook.toml"
    target.write_text("# ours\n")
    assert cli.main(["init", *FLAGS, "--output", str(target)]) == 2
    assert target.read_text() == "# ours\n"
    assert cli.main(["init", *FLAGS, "--output", str(target), "--force"]) == 0
    assert "acme/shop" in target.read_text()


def test_questions_are_asked_for_what_no_flag_answered(tmp_path: Path,
                                                       capsys: pytest.CaptureFixture[str]) -> None:
    """Asked in order, with defaults; an empty answer takes the default; flags are not asked."""
    asked: list[tuple[str, str]] = []
    answers = {"GitHub repository (owner/name)": "acme/shop",
               "Environments (comma-separated)": "staging, qa",
               "Fly app for qa": "shop-qa-1", "Its input that takes the image": "ref",
               "Protected environments (a live run needs --confirm and two people)": "qa"}

    def ask(question: str, default: str) -> str:
        asked.append((question, default))
        return answers.get(question, default)

    target = tmp_path / "runbook.toml"
    assert init_config.run(args("--workflow", "ship.yml", "--output", str(target)), ask=ask) == 0
    questions = dict(asked)
    assert "Workflow that promotes an image (file name)" not in questions  # the flag answered
    assert questions["Fly app for staging"] == "shop-staging"  # default from the repo's name
    assert questions["Fly organization"] == "acme"
    cfg = load_config(config_file=target, environ={})
    assert cfg.env("staging").app == "shop-staging" and cfg.env("qa").app == "shop-qa-1"
    assert cfg.workflow == "ship.yml" and cfg.workflow_image_input == "ref"
    assert cfg.env("qa").is_protected and not cfg.env("staging").is_protected  # asked, no name
    assert questions["Protected environments (a live run needs --confirm and two people)"] == ""
    assert tomllib.loads(target.read_text())["environments"]["qa"]["record_labels"] == [
        "deployment-record", "env:qa"]


def _read_until(fd: int, marker: bytes, seen: bytearray, deadline: float) -> None:
    while marker not in seen:
        assert time.monotonic() < deadline, seen.decode(errors="replace")
        ready, _, _ = select.select([fd], [], [], 0.5)
        if ready:
            try:
                chunk = os.read(fd, 4096)
            except OSError:
                break
            seen.extend(chunk)


def test_in_a_terminal_it_asks(tmp_path: Path) -> None:
    """Run in a pseudo-terminal, init prompts; typed answers and Enter for defaults make the file."""
    controller, terminal = pty.openpty()
    target = tmp_path / "runbook.toml"
    proc = subprocess.Popen([sys.executable, "-m", "rollback_helpers", "init", "--output",
                             str(target)], stdin=terminal, stdout=terminal, stderr=terminal,
                            cwd=tmp_path, close_fds=True)
    os.close(terminal)
    seen, deadline = bytearray(), time.monotonic() + 60
    script = [(b"GitHub repository", b"acme/shop\n"), (b"Environments", b"staging\n"),
              (b"Fly app for staging", b"\n"), (b"Workflow that promotes", b"promote.yml\n")]
    try:
        for prompt, reply in script:
            _read_until(controller, prompt, seen, deadline)
            os.write(controller, reply)
        while proc.poll() is None:  # Enter for every remaining question
            ready, _, _ = select.select([controller], [], [], 0.5)
            if ready:
                try:
                    seen.extend(os.read(controller, 4096))
                except OSError:  # the child closed the terminal: it is done
                    break
                if seen.rstrip().endswith(b"]:"):
                    os.write(controller, b"\n")
            assert time.monotonic() < deadline, seen.decode(errors="replace")
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.wait()
        os.close(controller)
    assert proc.returncode == 0, seen.decode(errors="replace")
    assert b"[shop-staging]" in seen  # the default offered for the app
    cfg = load_config(config_file=target, environ={})
    assert cfg.env("staging").app == "shop-staging" and cfg.workflow == "promote.yml"


def test_a_file_from_init_passes_check_on_the_matching_sandbox(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    """init for the sandbox's repository and apps, then check with it: every row passes."""
    target = tmp_path / "runbook.toml"
    assert cli.main(["init", "--repo", "renewa/renewa-one", "--fly-org", "renewa",
                     "--app", "development=renewa-one-development",
                     "--app", "staging=renewa-one-staging", "--app", "production=renewa-one",
                     "--output", str(target)]) == 0
    monkeypatch.setenv("ROLLBACK_RUNBOOK_CONFIG", str(target))
    assert cli.main(["check", "--sandbox-dir", str(tmp_path / "world")]) == 0, \
        capsys.readouterr().out


def test_a_file_from_init_holds_only_its_environments_and_check_sees_only_them(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    """The built-in environments are someone else's apps: a team's file names its own, and
    check (without --env) checks exactly those."""
    target = tmp_path / "runbook.toml"
    assert cli.main(["init", "--repo", "renewa/renewa-one", "--fly-org", "renewa",
                     "--app", "staging=renewa-one-staging", "--output", str(target)]) == 0
    assert set(load_config(config_file=target, environ={}).environments) == {"staging"}
    monkeypatch.setenv("ROLLBACK_RUNBOOK_CONFIG", str(target))
    capsys.readouterr()
    assert cli.main(["check", "--sandbox-dir", str(tmp_path / "world")]) == 0
    out = capsys.readouterr().out
    assert "staging" in out and "production" not in out and "development" not in out


def test_init_for_acme_writes_only_acmes_settings(tmp_path: Path) -> None:
    """No value of the runbook's own sandbox team: the Infisical project and approvals are
    the team's own (asked, or flags, or derived from their repository)."""
    target = tmp_path / "runbook.toml"
    assert cli.main(["init", "--repo", "acme/shop", "--app", "staging=shop-staging",
                     "--app", "production=shop", "--no-input", "--output", str(target)]) == 0
    assert "renewa" not in target.read_text().lower()
    cfg = load_config(config_file=target, environ={})
    assert cfg.infisical_project == "shop" and cfg.fly_org == "acme"
    assert cfg.env("production").required_approvals == 2
    assert cli.main(["init", "--repo", "acme/shop", "--app", "production=shop",
                     "--infisical-project", "acme-secrets", "--production-approvals", "3",
                     "--output", str(target), "--force"]) == 0
    cfg = load_config(config_file=target, environ={})
    assert cfg.infisical_project == "acme-secrets"
    assert cfg.env("production").required_approvals == 3


def test_the_repository_comes_from_the_checkouts_origin_without_running_git(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    checkout = tmp_path / "shop"
    (checkout / ".git").mkdir(parents=True)
    (checkout / ".git" / "config").write_text(
        '[core]\n\tbare = false\n[remote "upstream"]\n\turl = git@github.com:other/fork.git\n'
        '[remote "origin"]\n\turl = git@github.com:acme/shop.git\n\tfetch = +refs/heads/*\n')
    (checkout / "ops").mkdir()
    monkeypatch.chdir(checkout / "ops")
    monkeypatch.setenv("PATH", str(tmp_path / "no-bin"))  # no git to run, on purpose
    assert init_config.guess_repo() == "acme/shop"
    target = tmp_path / "runbook.toml"
    assert cli.main(["init", "--app", "staging=shop-staging", "--no-input",
                     "--output", str(target)]) == 0
    assert load_config(config_file=target, environ={}).github_repo == "acme/shop"
