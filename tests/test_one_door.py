"""One door to the real world: only ``run/backends.py`` builds an httpx client, a real backend,
a command runner or looks up a GitHub or Fly token (the lab's loopback client to its own JupyterLab
aside). An AST scan of the package, so a second door cannot come back unnoticed."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "rollback_helpers"
DOOR = "run/backends.py"
# name called → the modules besides the door that may call it, and why
BUILDERS: dict[str, dict[str, str]] = {
    "Client": {"cli/lab.py": "the lab's loopback client to its own JupyterLab",
               "testing.py": "a test's client on a sandbox world's transport, never the network"},
    "AsyncClient": {},
    "SubprocessRunner": {},
    "find_github_token": {},
    "find_fly_token": {},
    "token_from_env_or_cli": {"clients/github_token.py": "the GitHub token lookup itself",
                              "clients/metrics.py": "the Fly token lookup itself"},
    "token_from_env": {"clients/cli_token.py": "the shared env-else-login lookup itself"},
    "Backends": {},
}


def called_name(call: ast.Call) -> str:
    func = call.func
    if isinstance(func, ast.Attribute):
        return func.attr
    return func.id if isinstance(func, ast.Name) else ""


def doors(source: str) -> list[tuple[int, str]]:
    """(line, name) of every call in ``source`` that builds a client, runner, backend or token."""
    return [(node.lineno, name) for node in ast.walk(ast.parse(source))
            if isinstance(node, ast.Call) and (name := called_name(node)) in BUILDERS]


def test_only_run_backends_builds_clients_backends_and_tokens() -> None:
    """Outside run/backends.py nothing constructs httpx.Client/AsyncClient, a SubprocessRunner,
    a Backends, or looks up a GitHub or Fly token."""
    found = []
    for path in sorted(PACKAGE.rglob("*.py")):
        module = path.relative_to(PACKAGE).as_posix()
        if module == DOOR or module.startswith("sandbox/"):
            continue  # the sandbox answers requests (httpx.Response), it builds no client
        found += [f"{module}:{line} {name}(…)" for line, name in doors(path.read_text())
                  if module not in BUILDERS[name]]
    assert found == []


def test_the_door_itself_is_found_by_the_scan() -> None:
    """The scan sees what it looks for: run/backends.py builds all of it."""
    names = {name for _, name in doors((PACKAGE / DOOR).read_text())}
    assert {"Client", "SubprocessRunner", "find_github_token", "find_fly_token", "Backends"} <= names


@pytest.mark.parametrize("line", [
    "http = httpx.Client(timeout=5)",
    "from httpx import AsyncClient\nclient = AsyncClient()",
    "seam = Backends('real', http, runner, clock, None)",
    "found = find_github_token(os.environ, runner)",
    "found = find_fly_token(os.environ, runner)",
    "found = token_from_env_or_cli(os.environ, runner, ('X_TOKEN',), 'x')",
    "runner = SubprocessRunner()",
])
def test_a_second_door_is_caught(line: str) -> None:
    """Each way of opening a second door is seen in a module's source."""
    assert doors(line) != []
