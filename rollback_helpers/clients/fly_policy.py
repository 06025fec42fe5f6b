"""Which flyctl commands the runbook may run itself: an allow-list, checked before any process.

The runbook runs only read-only commands and its own non-destructive actions
(``mpg restore`` creates a *new* cluster; ``mpg proxy`` opens a local tunnel).
Everything else — and in particular every destructive command — is a human step:
it is printed in the incident checklist for a person to review and run, never
run from a notebook. Unknown commands, unknown flags, extra arguments and
``ssh console`` with anything but ``-C 'printenv VAR'`` are refused too: the
list says what is allowed, not what is forbidden.

Flags may stand anywhere (cobra intersperses them): ``flyctl -t X mpg destroy``
is parsed as ``mpg destroy``. Aliases are resolved as flyctl does
(``managed-postgres`` → ``mpg``, ``machines``/``m`` → ``machine``, ``ls`` → ``list``).
"""

from __future__ import annotations

import re
import shlex
from collections.abc import Sequence
from dataclasses import dataclass

from rollback_helpers.clients.commands import describe
from rollback_helpers.errors import CommandRefused

HUMAN_STEP = "is a human step: print it in the checklist, never run it"
ENV_VAR = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")

# Flags that take a value, so the word after them is not part of the command path. Every
# flag an allowed command accepts is either here or a true boolean (--json, -q, --all,
# releases' --image), so a value can never hide a command word from the check.
VALUE_FLAGS = frozenset({
    "-t", "--access-token", "-a", "--app", "-c", "--config", "-o", "--org", "-C", "--command",
    "--machine", "-r", "--region", "-u", "--user", "-p", "--local-port", "-b", "--bind-addr",
    "--backup-id", "-n", "--name", "--pitr-time", "-A", "--address", "--container",
    "--process-group",
})
GLOBAL_FLAGS = frozenset({"-t", "--access-token", "--verbose", "--debug"})
_JSON = frozenset({"-j", "--json"})

# alias → canonical word, per position in the command path (flyctl's cobra aliases).
_TOP_ALIASES = {"managed-postgres": "mpg", "machines": "machine", "m": "machine",
                "app": "apps", "secret": "secrets", "pg": "postgres"}
_SUB_ALIASES = {
    "mpg": {"ls": "list", "backups": "backup", "delete": "destroy", "remove": "destroy",
            "rm": "destroy"},
    "machine": {"ls": "list", "remove": "destroy", "rm": "destroy"},
    "apps": {"ls": "list", "delete": "destroy", "remove": "destroy", "rm": "destroy"},
    "secrets": {"ls": "list"},
    "postgres": {"delete": "destroy", "remove": "destroy", "rm": "destroy"},
}


@dataclass(frozen=True)
class AllowedCommand:
    path: tuple[str, ...]
    positionals: int  # arguments after the path (a cluster id)
    flags: frozenset[str]


ALLOWED: tuple[AllowedCommand, ...] = (
    AllowedCommand(("version",), 0, _JSON),
    AllowedCommand(("auth", "whoami"), 0, _JSON),  # read-only: who flyctl is logged in as
    AllowedCommand(("status",), 0, frozenset({"-a", "--app", "-c", "--config"}) | _JSON),
    AllowedCommand(("releases",), 0, frozenset({"-a", "--app", "-c", "--config",
                                               "--image"}) | _JSON),
    AllowedCommand(("machine", "list"), 0, frozenset({"-a", "--app", "-c", "--config", "-q",
                                                     "--quiet"}) | _JSON),
    AllowedCommand(("ssh", "console"), 0, frozenset({"-a", "--app", "-c", "--config", "--machine",
                                                    "-q", "--quiet", "-C", "--command", "-r",
                                                    "--region", "-o", "--org"})),
    AllowedCommand(("mpg", "status"), 1, frozenset({"-o", "--org"}) | _JSON),
    AllowedCommand(("mpg", "list"), 0, frozenset({"-o", "--org"}) | _JSON),
    AllowedCommand(("mpg", "backup", "list"), 1, frozenset({"--all"}) | _JSON),
    AllowedCommand(("mpg", "restore"), 1, frozenset({"--backup-id", "--pitr-time", "-n", "--name",
                                                    "-o", "--org"})),
    AllowedCommand(("mpg", "proxy"), 1, frozenset({"-p", "--local-port", "-b", "--bind-addr",
                                                  "-o", "--org"})),
)

# Known destructive command paths (canonical), with why the runbook leaves them to a human.
DESTRUCTIVE: dict[tuple[str, ...], str] = {
    ("mpg", "destroy"): "it deletes a Managed Postgres cluster and all its data",
    ("mpg", "detach"): "it detaches a cluster from an app (DATABASE_URL stays set)",
    ("mpg", "attach"): "it attaches a cluster and sets DATABASE_URL on the app",
    ("mpg", "users", "delete"): "it deletes a database user",
    ("mpg", "users", "create"): "it changes the cluster's users",
    ("mpg", "users", "set-role"): "it changes the cluster's users",
    ("postgres", "destroy"): "it deletes a Postgres app and its data",
    ("apps", "destroy"): "it deletes the app",
    ("destroy",): "it deletes the app",
    ("machine", "destroy"): "it deletes a machine",
    ("machine", "kill"): "it kills a machine",
    ("machine", "stop"): "it stops a machine",
    ("machine", "update"): "it changes a machine's image or config",
    ("secrets", "set"): "it changes app secrets (and the Infisical sync would overwrite them)",
    ("secrets", "unset"): "it removes app secrets (and the Infisical sync would overwrite them)",
    ("secrets", "import"): "it changes app secrets (and the Infisical sync would overwrite them)",
    ("deploy",): "the rollback stays on the CI path (re-promote a pinned image)",
    ("releases", "rollback"): "flyctl has no rollback command; the runbook re-promotes through CI",
    ("scale",): "it changes the app's machines",
}


@dataclass(frozen=True)
class ParsedArgs:
    """A flyctl argv split into flags (name → values) and positional words."""

    positionals: tuple[str, ...]
    flags: dict[str, list[str]]


def parse_args(args: Sequence[str]) -> ParsedArgs:
    """Split ``args`` (without the binary) the way cobra would, as far as the policy needs."""
    positionals: list[str] = []
    flags: dict[str, list[str]] = {}
    i = 0
    while i < len(args):
        word = args[i]
        if word == "--":
            positionals.extend(args[i + 1:])
            break
        if word.startswith("-") and word != "-":
            name, eq, value = word.partition("=")
            if not eq and name in VALUE_FLAGS:
                i += 1
                value = args[i] if i < len(args) else ""
            flags.setdefault(name, []).append(value)
        else:
            positionals.append(word)
        i += 1
    return ParsedArgs(tuple(positionals), flags)


def canonical_path(positionals: Sequence[str]) -> tuple[str, ...]:
    """Positional words with flyctl's aliases resolved (``managed-postgres ls`` → ``mpg list``)."""
    if not positionals:
        return ()
    top = _TOP_ALIASES.get(positionals[0], positionals[0])
    subs = _SUB_ALIASES.get(top, {})
    rest = list(positionals[1:])
    if rest:
        rest[0] = subs.get(rest[0], rest[0])
    if top == "mpg" and rest[:1] == ["backup"] and len(rest) > 1:
        rest[1] = {"ls": "list"}.get(rest[1], rest[1])
    return (top, *rest)


def strip_binary(argv: Sequence[str], flyctl: str = "flyctl") -> tuple[str, ...]:
    """``argv`` without its first word when that word is the flyctl binary."""
    names = {"flyctl", "fly", flyctl, flyctl.rsplit("/", 1)[-1]}
    if argv and (argv[0] in names or argv[0].rsplit("/", 1)[-1] in names):
        return tuple(argv[1:])
    return tuple(argv)


def refusal_reason(args: Sequence[str]) -> str | None:
    """Why ``args`` (without the binary) may not run, or None if the runbook may run it."""
    parsed = parse_args(args)
    path = canonical_path(parsed.positionals)
    for known, why in DESTRUCTIVE.items():
        if path[:len(known)] == known:
            return f"`{' '.join(known)}` is destructive: {why}"
    spec = next((c for c in ALLOWED if path[:len(c.path)] == c.path), None)
    if spec is None:
        shown = " ".join(path[:2]) or "(no command)"
        return f"`{shown}` is not on the runbook's allow-list of flyctl commands"
    if len(path) - len(spec.path) != spec.positionals:
        want = "one argument" if spec.positionals == 1 else "no arguments"
        return f"`{' '.join(spec.path)}` takes {want} here, got {list(path[len(spec.path):])}"
    unknown = sorted(set(parsed.flags) - spec.flags - GLOBAL_FLAGS)
    if unknown:
        return f"flag(s) {', '.join(unknown)} are not allowed with `{' '.join(spec.path)}`"
    if spec.path == ("ssh", "console"):
        return _ssh_reason(parsed.flags)
    return None


def _ssh_reason(flags: dict[str, list[str]]) -> str | None:
    commands = flags.get("-C", []) + flags.get("--command", [])
    if len(commands) != 1:
        return "`ssh console` may only run `-C 'printenv VAR'` (no interactive shell)"
    try:
        words = shlex.split(commands[0])
    except ValueError:
        words = []
    if len(words) != 2 or words[0] != "printenv" or not ENV_VAR.fullmatch(words[1]):
        return "`ssh console` may only run `-C 'printenv VAR'`"
    return None


def check_allowed(argv: Sequence[str], *, flyctl: str = "flyctl") -> None:
    """Raise CommandRefused unless the runbook may run ``argv`` itself (binary optional)."""
    args = strip_binary(argv, flyctl)
    reason = refusal_reason(args)
    if reason is None:
        return
    shown = describe([flyctl, *args])
    raise CommandRefused(
        f"`{shown}` {HUMAN_STEP} ({reason}).",
        "Copy the command into the incident checklist; a person reviews it and runs it by hand "
        "if it is really needed. The runbook never runs it.")
