"""The command line's order: every input it can check, and a real run's prerequisites, before a
world, a kernel or a record exists. A typo in a write-once store would stay forever."""

from __future__ import annotations

import tempfile
from pathlib import Path

import pytest

from rollback_helpers.cli import main as cli


@pytest.fixture
def quiet_tmp(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Temp files (a drill's world, a run's working copy) go here, so "no file" is checkable."""
    temp = tmp_path / "tmp"
    temp.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(temp))
    monkeypatch.setenv("TMPDIR", str(temp))
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path / "state"))
    return temp


def nothing_left(tmp_path: Path, quiet_tmp: Path) -> None:
    assert not (tmp_path / "incidents").exists()
    assert list(quiet_tmp.iterdir()) == []


@pytest.mark.parametrize(("argv", "named"), [
    (["drill", "path-a", "--env", "staging", "--target-digest", "sha256:nothex"], "target_digest"),
    (["drill", "path-a", "--env", "staging", "--scenario", "no-such-scenario"], "no-such-scenario"),
    (["drill", "path-b", "--env", "nowhere"], "nowhere"),
    (["run", "path-a", "--env", "staging", "--target-digest", "sha256:nothex"], "target_digest"),
])
def test_a_malformed_value_leaves_no_file_anywhere(
        argv: list[str], named: str, tmp_path: Path, quiet_tmp: Path,
        capsys: pytest.CaptureFixture[str]) -> None:
    code = cli.main([*argv, "--incidents-dir", str(tmp_path / "incidents")])
    err = capsys.readouterr().err
    assert code == 2 and named in err and "Traceback" not in err
    nothing_left(tmp_path, quiet_tmp)


def test_a_real_run_without_a_token_fails_its_preflight_before_any_record(
        tmp_path: Path, quiet_tmp: Path, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    for name in ("GITHUB_TOKEN", "GH_TOKEN"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("PATH", str(tmp_path / "empty-bin"))  # no `gh` to ask either
    code = cli.main(["run", "path-a", "--env", "staging", "--incidents-dir",
                     str(tmp_path / "incidents")])
    err = capsys.readouterr().err
    assert code == 4 and "No GitHub token found" in err and "gh auth login" in err
    nothing_left(tmp_path, quiet_tmp)


def test_a_real_run_without_flyctl_fails_its_preflight_before_any_record(
        tmp_path: Path, quiet_tmp: Path, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setenv("GITHUB_TOKEN", "ghp_" + "x" * 36)
    monkeypatch.setenv("PATH", str(tmp_path / "empty-bin"))
    code = cli.main(["run", "path-b", "--env", "staging", "--incidents-dir",
                     str(tmp_path / "incidents")])
    err = capsys.readouterr().err
    assert code == 2 and "`flyctl` is not on PATH" in err and "Install flyctl" in err
    nothing_left(tmp_path, quiet_tmp)
