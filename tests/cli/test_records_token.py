"""The records commands on a ``github://`` store find their token through the one door
(``run/backends.py``): GITHUB_TOKEN, GH_TOKEN, then ``gh auth token``. Here the only source
is a fake ``gh`` on PATH, and the GitHub that answers is the sandbox's."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import httpx
import nbformat
import pytest

from rollback_helpers.cli import main as cli
from rollback_helpers.clients.github import GitHubClient
from rollback_helpers.clock import VirtualClock
from rollback_helpers.errors import GitHubAuthError
from rollback_helpers.records.store import GitHubStore
from rollback_helpers.sandbox.core.world import World
from rollback_helpers.sandbox.http import sandbox_transport
from rollback_helpers.sandbox.scenarios import create_world
from rollback_helpers.secrets import Secret
from rollback_helpers.ui.display import METADATA_KEY

STORE = "github://renewa/renewa-one@main/incident-records"


@pytest.fixture
def world(tmp_path: Path) -> World:
    """A sandbox world whose repository holds one archived record."""
    world = create_world("default", tmp_path / "world")
    http = httpx.Client(transport=sandbox_transport(world))
    token = Secret(world.state["github"]["token"])
    store = GitHubStore(STORE, lambda repo: GitHubClient(http, repo, token, clock=VirtualClock(0.0),
                                                         mutation_spacing=0))
    nb = nbformat.v4.new_notebook()
    nb.metadata[METADATA_KEY] = {"path": "path-a", "env": "staging", "outcome": "success",
                                 "exit_code": 0, "mode": "headless"}
    store.put_new("staging-path-a.ipynb", lambda _location: nbformat.writes(nb).encode())
    return world


@pytest.fixture
def only_gh(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, world: World) -> Path:
    """No token in the environment; PATH holds only a `gh` that prints the world's token and
    notes that it was asked. The real backend's client reaches the sandbox's GitHub."""
    bin_dir, asked = tmp_path / "bin", tmp_path / "gh-asked"
    bin_dir.mkdir()
    gh = bin_dir / "gh"
    gh.write_text(f"#!/bin/sh\necho \"$@\" >> {asked}\necho {world.state['github']['token']}\n")
    gh.chmod(0o755)
    for name in ("GITHUB_TOKEN", "GH_TOKEN"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("PATH", str(bin_dir))
    monkeypatch.chdir(tmp_path)
    real = httpx.Client

    def to_the_sandbox(**options: Any) -> httpx.Client:
        return real(transport=sandbox_transport(world), **options)

    monkeypatch.setattr(httpx, "Client", to_the_sandbox)
    return asked


def test_history_on_a_github_store_uses_gh_auth_token(
        only_gh: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """`history` lists the store's record with `gh auth token` as its only token source."""
    capsys.readouterr()
    assert cli.main(["history", "--format", "json", "--no-verify", "--incidents-dir", STORE]) == 0
    rows = json.loads(capsys.readouterr().out)
    assert [(r["record"], r["env"], r["outcome"]) for r in rows] == [
        (f"{STORE}/staging-path-a.ipynb", "staging", "success")]
    assert only_gh.read_text().split() == ["auth", "token"]


def test_without_gh_history_says_how_to_set_a_token(
        only_gh: Path, monkeypatch: pytest.MonkeyPatch, tmp_path: Path,
        capsys: pytest.CaptureFixture[str]) -> None:
    """The same command with no `gh` on PATH fails as a missing token, saying how to set one."""
    monkeypatch.setenv("PATH", str(tmp_path / "nothing"))
    code = cli.main(["history", "--format", "json", "--no-verify", "--incidents-dir", STORE])
    assert code == GitHubAuthError.exit_code
    err = capsys.readouterr().err
    assert "No GitHub token" in err and "gh auth login" in err and "Traceback" not in err
    assert not only_gh.exists()


def test_a_token_in_the_environment_comes_before_gh(
        only_gh: Path, monkeypatch: pytest.MonkeyPatch, world: World,
        capsys: pytest.CaptureFixture[str]) -> None:
    """GITHUB_TOKEN set: it is used and `gh` is never asked."""
    monkeypatch.setenv("GITHUB_TOKEN", world.state["github"]["token"])
    assert cli.main(["history", "--format", "json", "--no-verify", "--incidents-dir", STORE]) == 0
    assert len(json.loads(capsys.readouterr().out)) == 1
    assert not only_gh.exists()
