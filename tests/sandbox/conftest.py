"""A default sandbox world and a client of its GitHub, for the tests of the sandbox's GitHub."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest

from rollback_helpers.sandbox.github_api import GitHubSandbox
from rollback_helpers.sandbox.scenarios import create_world
from rollback_helpers.sandbox.world import World

API = "https://api.github.com"


@pytest.fixture
def world(tmp_path: Path) -> World:
    return create_world("default", tmp_path)


@pytest.fixture
def api(world: World) -> httpx.Client:
    """GitHub's REST API of ``world``, with GitHub's headers and the world's own token."""
    headers = {"Accept": "application/vnd.github+json", "X-GitHub-Api-Version": "2022-11-28",
               "Authorization": f"Bearer {world.state['github']['token']}"}
    return httpx.Client(transport=httpx.MockTransport(GitHubSandbox(world).handle),
                        base_url=API, headers=headers)
