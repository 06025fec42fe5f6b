"""Every bad input the command line, the environment, runbook.toml and scenario files can give:
exit 2 with one message, no traceback, and not one file written anywhere (no world, no kernel,
no record)."""

from __future__ import annotations

import os
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from rollback_helpers.cli import main as cli
from rollback_helpers.domain.config import OTHER_VARIABLES

DIGEST = "sha256:" + "a" * 64


@dataclass(frozen=True)
class Case:
    """One bad input: the command line, and what the environment or files around it hold."""

    name: str
    argv: tuple[str, ...]
    named: str  # what the message must name
    environ: dict[str, str] = field(default_factory=dict)
    config: str = ""  # runbook.toml's text, if any
    scenario: str = ""  # a scenario file's text, if any (given with --scenario)


def drill(*extra: str, path: str = "path-a") -> tuple[str, ...]:
    return ("drill", path, "--env", "staging", *extra)


NESTED = "x = " + "[" * 5000 + "]" * 5000 + "\n"
CASES = [
    Case("env-slash", ("drill", "path-a", "--env", "a/b"), "a/b",
         config='[environments."a/b"]\napp = "x"\n'),
    Case("env-space", ("drill", "path-a", "--env", "my env"), "my env",
         config='[environments."my env"]\napp = "x"\n'),
    Case("env-dots", ("drill", "path-a", "--env", "a..b"), "a..b",
         config='[environments."a..b"]\napp = "x"\n'),
    Case("env-umlaut", ("drill", "path-a", "--env", "stäging"), "st",
         config='[environments."stäging"]\napp = "x"\n'),
    Case("nested-toml", drill(), "runbook.toml", config=NESTED),
    Case("nested-scenario", drill(), "nested", scenario=NESTED),
    Case("ftp-incidents", drill("--incidents-dir", "ftp://x/y"), "ftp://x/y"),
    Case("sandbox-dir-file", drill("--sandbox-dir", "/etc/hostname"), "/etc/hostname"),
    Case("sandbox-dir-proc", drill("--sandbox-dir", "/proc/forbidden"), "/proc/forbidden"),
    Case("no-deploys", drill(), "deploys",
         scenario='[environments.staging]\napp = "renewa-one-staging"\ndeploys = []\n'),
    Case("empty-target", drill("--target-digest", ""), "--target-digest"),
    Case("empty-scenario", drill("--scenario", ""), "--scenario"),
    Case("empty-backup", drill("--backup-id", "", path="path-b"), "--backup-id"),
    Case("empty-incidents", drill("--incidents-dir", ""), "--incidents-dir"),
    Case("empty-source", drill("--source-cluster", "", path="path-b"), "--source-cluster"),
    Case("api-url", drill(), "github_api_url", config='github_api_url = "not a url"\n'),
    Case("repo-dots", drill(), "github_repo", config='github_repo = "../.."\n'),
    Case("workflow-dots", drill(), "workflow", config='workflow = "../../x"\n'),
    Case("empty-label", drill(), "record_labels",
         config='[environments.staging]\nrecord_labels = [""]\n'),
    Case("poll-huge", drill(), "poll_interval", config="poll_interval = 1e308\n"),
    Case("lock-tiny", drill(), "lock_ttl", config="lock_ttl = 1e-9\n"),
    Case("workflow-tiny", drill(), "workflow_timeout", config="workflow_timeout = 1e-300\n"),
    Case("reason-100k", drill("--reason", "x" * 100_000), "--reason"),
    Case("cluster-100k", drill("--new-cluster-name", "c" * 100_000, path="path-b"),
         "--new-cluster-name"),
    Case("notify-timeout", drill(), "ROLLBACK_NOTIFY_TIMEOUT",
         environ={"ROLLBACK_NOTIFY_TIMEOUT": "soon"}),
    Case("history-unknown-env", ("history", "--env", "qa"), "qa"),
    Case("backup-shell", drill("--backup-id", "x; rm -rf /", path="path-b"), "--backup-id"),
    Case("digest-malformed", drill("--target-digest", "sha256:xyz"), "target_digest"),
    Case("app-flag", drill(), "app", config='[environments.staging]\napp = "--org=evil"\n'),
    Case("source-cluster", drill("--source-cluster", "a b", path="path-b"), "--source-cluster"),
    Case("state-dir-file", drill(), "ROLLBACK_STATE_DIR",
         environ={"ROLLBACK_STATE_DIR": "/etc/hostname/state"}),
]


@pytest.fixture(autouse=True)
def _empty_world(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    work = tmp_path / "cwd"
    work.mkdir()
    monkeypatch.chdir(work)
    temp = tmp_path / "tmp"
    temp.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(temp))
    for var in list(os.environ):
        if var.startswith("ROLLBACK_") and var not in OTHER_VARIABLES:
            monkeypatch.delenv(var)
    monkeypatch.delenv("ROLLBACK_RUNBOOK_CONFIG", raising=False)


def files_under(root: Path) -> set[Path]:
    return {p for p in root.rglob("*")}


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_bad_input_exits_2_with_one_message_and_writes_nothing(
        case: Case, tmp_path: Path, capsys: pytest.CaptureFixture[str],
        monkeypatch: pytest.MonkeyPatch) -> None:
    argv = list(case.argv)
    if case.config:
        (tmp_path / "cwd" / "runbook.toml").write_text(case.config, encoding="utf-8")
    if case.scenario:
        scenario = tmp_path / "nested.toml"
        scenario.write_text(case.scenario, encoding="utf-8")
        argv += ["--scenario", str(scenario)]
    for name, value in case.environ.items():
        monkeypatch.setenv(name, value)
    before = files_under(tmp_path)
    try:
        code = cli.main(argv)
    except SystemExit as exc:  # argparse: a bad flag
        code = int(exc.code or 0)
    captured = capsys.readouterr()
    text = captured.out + captured.err
    assert code == 2, text[:2000]
    assert "Traceback" not in text and 'File "' not in text, text[:2000]
    assert case.named in text, text[:2000]
    assert "Next:" in text or "--help" in text, text[:2000]
    assert len(text) < 3000, "one message, not the value echoed whole"
    assert files_under(tmp_path) == before, "a bad input wrote a file"
