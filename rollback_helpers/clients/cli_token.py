"""A token from the environment, else from a command-line tool's own login.

The shape GitHub's token and Fly's share: the first non-empty variable of a
list (``GITHUB_TOKEN``, ``GH_TOKEN``; ``FLY_API_TOKEN``), failing that
``<program> auth token`` when the program is on the environment's ``PATH``, run
through the command seam like any other command. A program that hangs, fails,
cannot start or prints anything but one word gives no token. The token is wrapped
in a :class:`~rollback_helpers.secrets.Secret` at once and never printed; only
where it came from (:attr:`FoundToken.source`) is shown.

Only the lookups built on it (``github_token.find_github_token``,
``metrics.find_fly_token``) call it, and only ``run/backends.py`` calls those
(``tests/test_one_door.py``).
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

from rollback_helpers.clients.commands import CommandRunner
from rollback_helpers.errors import RollbackError
from rollback_helpers.secrets import Secret, token_from_env

AUTH_TOKEN_TIMEOUT = 15.0  # seconds `<program> auth token` may take


@dataclass(frozen=True)
class FoundToken:
    secret: Secret
    source: str  # the variable's name or the command ("gh auth token"): safe to show


def token_from_env_or_cli(environ: Mapping[str, str], runner: CommandRunner,
                          variables: Sequence[str], program: str, *,
                          which: Callable[..., str | None] = shutil.which,
                          timeout: float = AUTH_TOKEN_TIMEOUT) -> FoundToken | None:
    """The first of ``variables`` set in ``environ``, else ``program auth token`` (the program
    as found on ``environ``'s PATH); None if neither gives one."""
    for name in variables:
        secret = token_from_env(dict(environ), name)
        if secret is not None:
            return FoundToken(secret, name)
    found = which(program, path=environ.get("PATH"))
    if found is None:
        return None
    try:
        result = runner.run([found, "auth", "token"], timeout=timeout)
    except RollbackError:  # it hung or could not start: as if it had no login
        return None
    value = result.stdout.strip()
    if not result.ok or not value or len(value.split()) != 1:
        return None
    return FoundToken(Secret(value), f"{os.path.basename(program)} auth token")
