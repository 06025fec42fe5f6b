"""`Fly.whoami`: `flyctl auth whoami --json`, read once into an e-mail, or an error with the next step."""

from __future__ import annotations

import pytest

from rollback_helpers.clients.fly import Fly
from rollback_helpers.errors import CommandFailed
from rollback_helpers.testing import ScriptedRunner, fail, ok

WHOAMI = ("flyctl", "auth", "whoami", "--json")


def test_whoami_reads_the_email() -> None:
    """The JSON's email is the answer; the command is exactly the allowed one."""
    runner = ScriptedRunner({WHOAMI: ok('{\n    "email": "ops@acme.example"\n}\n')})
    assert Fly(runner).whoami() == "ops@acme.example"
    assert [call.argv for call in runner.calls] == [WHOAMI]


def test_not_logged_in_says_to_log_in() -> None:
    """flyctl's own error is shown, and the next step is `flyctl auth login`."""
    runner = ScriptedRunner({WHOAMI: fail("Error: no access token available. Please login with "
                                          "'flyctl auth login'\n")})
    with pytest.raises(CommandFailed) as raised:
        Fly(runner).whoami()
    assert "no access token available" in raised.value.what
    assert "flyctl auth login" in raised.value.next_step


def test_unreadable_output_is_a_clear_error() -> None:
    """Output that is not {"email": …} is not guessed at."""
    runner = ScriptedRunner({WHOAMI: ok("ops@acme.example\n")})
    with pytest.raises(CommandFailed, match="cannot read"):
        Fly(runner).whoami()
