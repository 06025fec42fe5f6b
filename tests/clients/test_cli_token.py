"""A token from the environment, else from a tool's own login: the lookup GitHub's token and
Fly's share (each asks its own variables and program)."""

from __future__ import annotations

import pytest

from rollback_helpers.clients.cli_token import token_from_env_or_cli
from rollback_helpers.clients.commands import CommandResult
from rollback_helpers.errors import CommandTimeout
from rollback_helpers.testing import ScriptedRunner, fail, ok

VARIABLES = ("TOOL_TOKEN", "OTHER_TOKEN")
ARGV = ("/opt/bin/tool", "auth", "token")
LOGIN = "tok_" + "L0gin" * 6


def on_path(program: str, *, path: str | None = None) -> str | None:
    """``which`` for a PATH that holds the tool in /opt/bin only."""
    return f"/opt/bin/{program}" if program == "tool" and path == "/opt/bin" else None


def test_the_first_variable_set_wins_and_the_tool_is_not_asked() -> None:
    runner = ScriptedRunner({})  # any command would fail the test
    found = token_from_env_or_cli({"TOOL_TOKEN": " ", "OTHER_TOKEN": "tok_second", "PATH": "/opt/bin"},
                                  runner, VARIABLES, "tool", which=on_path)
    assert found is not None and (found.source, found.secret.reveal()) == ("OTHER_TOKEN", "tok_second")
    assert runner.argvs() == []


def test_else_the_tool_found_on_the_environments_path_gives_it() -> None:
    """The tool as found on ``environ``'s PATH (not the process's) is run; the token is a Secret."""
    runner = ScriptedRunner({ARGV: ok(f"{LOGIN}\n")})
    found = token_from_env_or_cli({"PATH": "/opt/bin"}, runner, VARIABLES, "tool", which=on_path)
    assert found is not None and found.source == "tool auth token"
    assert found.secret.reveal() == LOGIN and LOGIN not in f"{found!r} {found}"
    assert runner.argvs() == [ARGV]


@pytest.mark.parametrize(("why", "answer"), [
    ("not logged in", fail("not logged in")),
    ("prints nothing", ok("\n")),
    ("prints more than a token", ok("Error: no token found for github.com\n")),
    ("hangs", CommandTimeout("`tool auth token` timed out after 15s", "")),
])
def test_a_tool_that_gives_no_token_is_none(why: str, answer: CommandResult | Exception) -> None:
    runner = ScriptedRunner({ARGV: answer})
    assert token_from_env_or_cli({"PATH": "/opt/bin"}, runner, VARIABLES, "tool",
                                 which=on_path) is None, why


def test_no_variable_and_no_tool_on_path_is_none() -> None:
    runner = ScriptedRunner({})
    assert token_from_env_or_cli({"PATH": "/usr/bin"}, runner, VARIABLES, "tool", which=on_path) is None
    assert runner.argvs() == []
