"""Where the GitHub token comes from: the environment, else the GitHub CLI's login.

``GITHUB_TOKEN``, then ``GH_TOKEN``; failing both, ``gh auth token`` when ``gh``
is on PATH, run through the command seam like any other command. The token is
wrapped in a :class:`~rollback_helpers.secrets.Secret` at once and never
printed; only where it came from (:attr:`FoundToken.source`) is shown.
"""

from __future__ import annotations

import shutil
from collections.abc import Callable, Mapping
from dataclasses import dataclass

from rollback_helpers.clients.commands import CommandRunner
from rollback_helpers.errors import RollbackError
from rollback_helpers.secrets import Secret, token_from_env

TOKEN_VARS = ("GITHUB_TOKEN", "GH_TOKEN")
GH_TIMEOUT = 15.0
GH_SOURCE = "gh auth token"


@dataclass(frozen=True)
class FoundToken:
    secret: Secret
    source: str  # "GITHUB_TOKEN", "GH_TOKEN" or "gh auth token": safe to show


def find_github_token(environ: Mapping[str, str], runner: CommandRunner, *,
                      which: Callable[..., str | None] = shutil.which) -> FoundToken | None:
    """The token from the environment, else from ``gh auth token``; None if neither has one."""
    for name in TOKEN_VARS:
        secret = token_from_env(dict(environ), name)
        if secret is not None:
            return FoundToken(secret, name)
    gh = which("gh", path=environ.get("PATH"))
    if gh is None:
        return None
    try:
        result = runner.run([gh, "auth", "token"], timeout=GH_TIMEOUT)
    except RollbackError:  # gh hung or could not start: as if it had no login
        return None
    value = result.stdout.strip()
    if not result.ok or not value or len(value.split()) != 1:
        return None
    return FoundToken(Secret(value), GH_SOURCE)
