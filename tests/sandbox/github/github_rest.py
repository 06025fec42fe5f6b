"""The sandbox's GitHub as the tests of its endpoints talk to it: a REST client of a world,
and GitHub's published schemas (githubkit's models) to check its answers against."""

from __future__ import annotations

from typing import Any

import httpx

from rollback_helpers.sandbox.core.world import World
from rollback_helpers.sandbox.github.api import GitHubSandbox

API = "https://api.github.com"
REPO = "/repos/renewa/renewa-one"
WORLD_TOKEN = "the world's own"


def client_for(world: World, token: str | None = WORLD_TOKEN) -> httpx.Client:
    """GitHub's REST API of ``world`` with GitHub's headers; the world's token unless another
    is given (None: no Authorization header)."""
    token = world.state["github"]["token"] if token == WORLD_TOKEN else token
    headers = {"Accept": "application/vnd.github+json", "X-GitHub-Api-Version": "2022-11-28"}
    if token:
        headers["Authorization"] = f"Bearer {token}"
    return httpx.Client(transport=httpx.MockTransport(GitHubSandbox(world).handle),
                        base_url=API, headers=headers)


def validate(model: Any, data: Any) -> Any:
    """``data`` read as GitHub's schema ``model``; a pydantic ValidationError if it is not one."""
    from pydantic import TypeAdapter

    return TypeAdapter(model).validate_python(data)
