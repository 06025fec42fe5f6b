"""Where the GitHub token comes from: the environment, else the GitHub CLI's login.

``GITHUB_TOKEN``, then ``GH_TOKEN``; failing both, ``gh auth token`` when ``gh``
is on PATH (:func:`~rollback_helpers.clients.cli_token.token_from_env_or_cli`,
which Fly's token shares). Only where it came from (:attr:`FoundToken.source`)
is ever shown.
"""

from __future__ import annotations

import shutil
from collections.abc import Callable, Mapping

from rollback_helpers.clients.cli_token import FoundToken, token_from_env_or_cli
from rollback_helpers.clients.commands import CommandRunner

__all__ = ["TOKEN_VARS", "FoundToken", "find_github_token"]
TOKEN_VARS = ("GITHUB_TOKEN", "GH_TOKEN")


def find_github_token(environ: Mapping[str, str], runner: CommandRunner, *,
                      which: Callable[..., str | None] = shutil.which) -> FoundToken | None:
    """The token from the environment, else from ``gh auth token``; None if neither has one."""
    return token_from_env_or_cli(environ, runner, TOKEN_VARS, "gh", which=which)
