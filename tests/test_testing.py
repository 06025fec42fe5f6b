"""The public test tools: a sandbox world wired to both seams (``sandbox_backends``)."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest

from rollback_helpers.clock import VirtualClock
from rollback_helpers.errors import CommandRefused
from rollback_helpers.testing import (
    Handler,
    SandboxBackends,
    sandbox_backends,
    seed_repository_files,
)


@pytest.fixture
def sandbox(tmp_path: Path) -> SandboxBackends:
    return sandbox_backends("default", tmp_path / "world")


def test_the_github_client_writes_into_the_world_with_its_own_token(sandbox: SandboxBackends) -> None:
    """A comment sent through the helper's client lands on the world's issue and in its call log."""
    sandbox.github().comments.add_comment(1001, "note from a test")
    assert sandbox.world.state["github"]["comments"]["1001"][-1]["body"] == "note from a test"
    last = sandbox.world.calls()[-1]
    assert (last["call"], last["status"]) == ("POST /repos/renewa/renewa-one/issues/1001/comments", 201)
    assert sandbox.token.reveal() == sandbox.world.state["github"]["token"]


def test_flyctl_and_the_health_endpoint_answer_from_the_same_world(sandbox: SandboxBackends) -> None:
    """flyctl status and the app's readiness endpoint both report the image the machines run:
    production's healthy v41 answers 200 with its digest, staging's broken v42 answers 503."""
    running = {m.image_digest for m in sandbox.fly().status("renewa-one").started()}
    healthy = sandbox.http.get("https://renewa-one.fly.dev/api/health/ready")
    assert (healthy.status_code, running) == (200, {healthy.json()["image"]})
    broken = sandbox.http.get("https://renewa-one-staging.fly.dev/api/health/ready")
    assert broken.status_code == 503 and "v42" in broken.text


def test_an_app_bound_fly_refuses_another_apps_command(sandbox: SandboxBackends) -> None:
    """``fly(app)`` is the runbook's app guard: another app's command never reaches the world."""
    before = len(sandbox.world.calls())
    with pytest.raises(CommandRefused):
        sandbox.fly("renewa-one-staging").status("renewa-one")
    assert len(sandbox.world.calls()) == before


def test_a_wrapped_handler_sees_every_request(tmp_path: Path) -> None:
    """``wrap`` sits between the client and the world: a test can record or lose answers."""
    seen: list[str] = []

    def recording(handle: Handler) -> Handler:
        def record(request: httpx.Request) -> httpx.Response:
            seen.append(f"{request.method} {request.url.path}")
            return handle(request)
        return record

    sandbox = sandbox_backends("default", tmp_path / "world", wrap=recording)
    sandbox.github().comments.add_comment(1001, "recorded")
    assert seen[-1] == "POST /repos/renewa/renewa-one/issues/1001/comments"


def test_the_clients_clock_moves_the_world_forward(tmp_path: Path) -> None:
    """A wait on the given clock lets the world's scheduled events come due at the next request."""
    sandbox = sandbox_backends("default", tmp_path / "world", clock=VirtualClock(0.0))
    start = sandbox.world.now
    sandbox.clock.sleep(start + 3600 - sandbox.clock.now())
    sandbox.github().comments.add_comment(1001, "an hour later")
    assert sandbox.world.now == start + 3600



def test_seeded_files_are_in_the_repository_without_a_call(sandbox: SandboxBackends) -> None:
    """One write of the world's state: the files read back through the contents API (text and
    binary alike), another process sees them, and the call log shows no request."""
    from rollback_helpers.clients.github_contents import GitHubContents
    from rollback_helpers.sandbox.core.world import World

    before = sandbox.world.calls()
    seed_repository_files(sandbox.world, {"records/a.ipynb": b"{}", "/records/b.bin": b"\xff\x00"})
    assert sandbox.world.calls() == before
    contents = GitHubContents(sandbox.github().session, "main")
    assert sorted(f.name for f in contents.list_folder("records")) == ["a.ipynb", "b.bin"]
    assert contents.read_file("records/b.bin") == b"\xff\x00"
    assert World.load(sandbox.world.state_dir).state["github"]["files"]["records/a.ipynb"] == "{}"
