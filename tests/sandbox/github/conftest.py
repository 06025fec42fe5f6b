"""A default sandbox world and a client of its GitHub, for the tests of the sandbox's GitHub."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest
from github_rest import client_for

from rollback_helpers.sandbox.core.world import World
from rollback_helpers.sandbox.scenarios import create_world


@pytest.fixture
def world(tmp_path: Path) -> World:
    return create_world("default", tmp_path)


@pytest.fixture
def api(world: World) -> httpx.Client:
    """GitHub's REST API of ``world``, with GitHub's headers and the world's own token."""
    return client_for(world)
