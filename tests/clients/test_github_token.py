"""The GitHub token: GITHUB_TOKEN, then GH_TOKEN, then `gh auth token` through the command seam."""

from __future__ import annotations

import stat
from pathlib import Path

import pytest

from rollback_helpers.clients.commands import SubprocessRunner
from rollback_helpers.clients.github_token import find_github_token
from rollback_helpers.run.backends import open_backends

GH_LOGIN = "gho_" + "f" * 36


def fake_gh(bin_dir: Path, *, token: str = GH_LOGIN, exit_code: int = 0) -> Path:
    """A `gh` on PATH that answers `gh auth token` as the GitHub CLI does, and logs its calls."""
    bin_dir.mkdir(exist_ok=True)
    gh = bin_dir / "gh"
    gh.write_text(f"""#!/bin/sh
echo "$@" >> "{bin_dir}/gh.calls"
if [ "$1 $2" = "auth token" ] && [ {exit_code} -eq 0 ]; then echo "{token}"; exit 0; fi
echo "no oauth token found for github.com" >&2
exit 1
""")
    gh.chmod(gh.stat().st_mode | stat.S_IXUSR)
    return bin_dir


def test_github_token_wins_over_gh_token_and_gh(tmp_path: Path) -> None:
    """GITHUB_TOKEN first; gh is not even asked."""
    path = str(fake_gh(tmp_path / "bin"))
    found = find_github_token({"GITHUB_TOKEN": "ghp_" + "a" * 36, "GH_TOKEN": "ghp_" + "b" * 36,
                               "PATH": path}, SubprocessRunner(allowed_programs=("gh",)))
    assert found is not None and found.source == "GITHUB_TOKEN"
    assert found.secret.reveal() == "ghp_" + "a" * 36
    assert not (tmp_path / "bin" / "gh.calls").exists()


def test_gh_token_is_second(tmp_path: Path) -> None:
    """Without GITHUB_TOKEN, GH_TOKEN is used."""
    found = find_github_token({"GITHUB_TOKEN": " ", "GH_TOKEN": "ghp_" + "b" * 36,
                               "PATH": str(tmp_path)}, SubprocessRunner(allowed_programs=("gh",)))
    assert found is not None and found.source == "GH_TOKEN"


def test_gh_auth_token_when_the_environment_has_none(tmp_path: Path) -> None:
    """Failing both variables, `gh auth token` from the gh on PATH gives the token (never shown)."""
    bin_dir = fake_gh(tmp_path / "bin")
    found = find_github_token({"PATH": str(bin_dir)}, SubprocessRunner(allowed_programs=("gh",)))
    assert found is not None and found.source == "gh auth token"
    assert found.secret.reveal() == GH_LOGIN
    assert GH_LOGIN not in f"{found!r} {found.secret} {found}"
    assert (bin_dir / "gh.calls").read_text().split() == ["auth", "token"]


@pytest.mark.parametrize("setup", ["no gh on PATH", "gh not logged in"])
def test_no_token_anywhere_is_none(tmp_path: Path, setup: str) -> None:
    """No variable and no usable gh login: no token (the GitHub step then says how to get one)."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    if setup == "gh not logged in":
        fake_gh(bin_dir, exit_code=1)
    assert find_github_token({"PATH": str(bin_dir)}, SubprocessRunner(allowed_programs=("gh",))) is None


def test_real_backend_takes_the_gh_login_and_does_not_demand_flyctl(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The real backend opens without flyctl on PATH; only asking for flyctl demands it."""
    from rollback_helpers.domain.config import RunbookConfig
    from rollback_helpers.errors import ConfigError

    bin_dir = fake_gh(tmp_path / "bin")
    monkeypatch.setenv("PATH", str(bin_dir))
    backends = open_backends("real", environ={"PATH": str(bin_dir)})
    try:
        assert backends.github_token is not None and backends.github_token.reveal() == GH_LOGIN
        assert backends.token_source == "gh auth token"
        backends.github(RunbookConfig())  # GitHub alone needs no flyctl
        with pytest.raises(ConfigError, match="flyctl` is not on PATH"):
            backends.fly(RunbookConfig())
    finally:
        backends.close()
