"""The sandbox's ``flyctl auth whoami``: who flyctl is logged in as (``state["fly"]``).

``fly.logged_in = false`` answers as flyctl does without a token or login.
"""

from __future__ import annotations

from typing import Any

from rollback_helpers.clients.commands import CommandResult
from rollback_helpers.sandbox.core.world import World
from rollback_helpers.sandbox.fly.common import Invocation, error, go_json, ok

NOT_LOGGED_IN = "no access token available. Please login with 'flyctl auth login'"
DEFAULT_EMAIL = "oncall@renewa.example"


class AuthCommands:
    world: World

    def _auth_whoami(self, inv: Invocation) -> CommandResult:
        fly: dict[str, Any] = self.world.state["fly"]
        if not fly.get("logged_in", True):
            return error(inv.argv, NOT_LOGGED_IN)
        email = str(fly.get("email", DEFAULT_EMAIL))
        if inv.has("--json", "-j"):
            return ok(inv.argv, go_json({"email": email}))
        return ok(inv.argv, email + "\n")
