"""Which flyctl commands the runbook may run itself: an allow-list, checked before any process.

The runbook runs only read-only commands and its own non-destructive actions
(``mpg restore`` creates a *new* cluster; ``mpg proxy`` opens a local tunnel).
Everything else — and in particular every destructive command — is a human step:
it is printed in the incident checklist for a person to review and run, never
run from a notebook. Unknown commands, unknown flags, extra arguments and
``ssh console`` with anything but ``-C 'printenv VAR'`` are refused too: the
list says what is allowed, not what is forbidden.

Arguments are read the way flyctl (cobra and pflag) reads them:

- Flags may stand anywhere after the command (cobra intersperses them), and the
  global ones (``-t``, ``--verbose``, ``--debug``) before it too: ``flyctl -t X
  mpg destroy`` is ``mpg destroy``. Any other flag before the end of the command
  is refused: while cobra looks for the command it cannot know that flag yet, so
  it reads the next word as the flag's value — to flyctl ``mpg -j status destroy``
  is ``mpg destroy``. Such a command is also checked as cobra would read it.
- ``--`` ends the flags: every word after it is an argument, never a flag or a
  command (``mpg status -- destroy`` asks for a cluster called ``destroy``). The
  runbook never needs it, so it is refused rather than interpreted.
- A flag's value is the next word even when it is empty or starts with ``-``;
  an empty or dash-led value (``-a ""``, ``-a=``, ``--app ""``) is refused.
- App-scoped commands need ``-a/--app``, naming the runbook's app when the policy
  is told it (``app=``); ``mpg proxy`` may bind loopback only (``-b/--bind-addr``
  ``127.0.0.1``, ``::1`` or ``localhost``).

Aliases are resolved as flyctl does (``managed-postgres`` → ``mpg``,
``machines``/``m`` → ``machine``, ``ls`` → ``list``). Every refusal names the
command and the reason.
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
GLOBAL_VALUE_FLAGS = frozenset({"-t", "--access-token"})
GLOBAL_FLAGS = GLOBAL_VALUE_FLAGS | {"--verbose", "--debug"}
# The root's boolean flags: the only ones cobra's command search knows take no value.
_ROOT_BOOLEANS = frozenset({"--verbose", "--debug", "--version", "-v"})
_JSON = frozenset({"-j", "--json"})
APP_FLAGS = frozenset({"-a", "--app"})
BIND_FLAGS = frozenset({"-b", "--bind-addr"})
LOOPBACK = frozenset({"127.0.0.1", "::1", "localhost"})

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
    needs_app: bool = False  # app-scoped: -a/--app must say which app (never fly.toml's guess)


ALLOWED: tuple[AllowedCommand, ...] = (
    AllowedCommand(("version",), 0, _JSON),
    AllowedCommand(("auth", "whoami"), 0, _JSON),  # read-only: who flyctl is logged in as
    AllowedCommand(("status",), 0, frozenset({"-a", "--app", "-c", "--config"}) | _JSON, True),
    AllowedCommand(("releases",), 0, frozenset({"-a", "--app", "-c", "--config",
                                               "--image"}) | _JSON, True),
    AllowedCommand(("machine", "list"), 0, frozenset({"-a", "--app", "-c", "--config", "-q",
                                                     "--quiet"}) | _JSON, True),
    AllowedCommand(("ssh", "console"), 0, frozenset({"-a", "--app", "-c", "--config", "--machine",
                                                    "-q", "--quiet", "-C", "--command", "-r",
                                                    "--region", "-o", "--org"}), True),
    # -o/--org: a flag of `mpg list` (and of the `mpg` parent, which no subcommand inherits):
    # `mpg status|restore|proxy … --org` is "unknown flag" in flyctl (its `fly mpg *` docs).
    AllowedCommand(("mpg", "status"), 1, _JSON),
    AllowedCommand(("mpg", "list"), 0, frozenset({"-o", "--org"}) | _JSON),
    AllowedCommand(("mpg", "backup", "list"), 1, frozenset({"--all"}) | _JSON),
    AllowedCommand(("mpg", "restore"), 1, frozenset({"--backup-id", "--pitr-time", "-n",
                                                    "--name"})),
    AllowedCommand(("mpg", "proxy"), 1, frozenset({"-p", "--local-port", "-b", "--bind-addr"})),
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

    positionals: tuple[str, ...]  # before any `--`: the command path and its arguments
    flags: dict[str, list[str]]
    after_dashes: tuple[str, ...] = ()  # after `--`: arguments only, never flags or commands
    dashes: bool = False  # whether a `--` ended the flags
    flag_positions: tuple[tuple[str, int], ...] = ()  # (flag, positional words before it)


def parse_args(args: Sequence[str]) -> ParsedArgs:
    """Split ``args`` (without the binary) the way pflag would, as far as the policy needs."""
    positionals: list[str] = []
    flags: dict[str, list[str]] = {}
    positions: list[tuple[str, int]] = []
    i = 0
    while i < len(args):
        word = args[i]
        if word == "--":
            return ParsedArgs(tuple(positionals), flags, tuple(args[i + 1:]), True,
                              tuple(positions))
        if word.startswith("-") and word != "-":
            name, eq, value = word.partition("=")
            if not eq and name in VALUE_FLAGS:
                i += 1  # pflag takes the next word as the value, whatever it looks like
                value = args[i] if i < len(args) else ""
            flags.setdefault(name, []).append(value)
            positions.append((name, len(positionals)))
        else:
            positionals.append(word)
        i += 1
    return ParsedArgs(tuple(positionals), flags, flag_positions=tuple(positions))


def cobra_command_words(args: Sequence[str]) -> tuple[str, ...]:
    """The words cobra's command search takes as the command path (its ``stripFlags``).

    While it searches, cobra knows only the flags of the commands above the one it
    looks for, so any other flag without ``=`` is taken to swallow the next word:
    ``mpg -j status destroy`` searches ``mpg destroy``. ``--`` ends the search.
    """
    words: list[str] = []
    i = 0
    while i < len(args):
        word = args[i]
        if word == "--":
            break
        if word.startswith("-"):
            takes_value = "=" not in word and word not in _ROOT_BOOLEANS and (
                word.startswith("--") or len(word) == 2)
            i += 2 if takes_value else 1
            continue
        if word:
            words.append(word)
        i += 1
    return tuple(words)


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


def refusal_reason(args: Sequence[str], *, app: str | None = None) -> str | None:
    """Why ``args`` (without the binary) may not run, or None if the runbook may run it.

    ``app``: the app the runbook is configured for; app-scoped commands must name
    it. None accepts any non-empty app name.
    """
    parsed = parse_args(args)
    path = canonical_path(parsed.positionals)
    for words in (path, canonical_path(cobra_command_words(args))):
        if (why := _destructive_reason(words)) is not None:
            return why
    spec = next((c for c in ALLOWED if path[:len(c.path)] == c.path), None)
    if spec is None:
        shown = " ".join(path[:2]) or "(no command)"
        return f"`{shown}` is not on the runbook's allow-list of flyctl commands"
    return _shape_reason(parsed, path, spec) or _value_reason(parsed, spec, app)


def _destructive_reason(path: tuple[str, ...]) -> str | None:
    for known, why in DESTRUCTIVE.items():
        if path[:len(known)] == known:
            return f"`{' '.join(known)}` is destructive: {why}"
    return None


def _shape_reason(parsed: ParsedArgs, path: tuple[str, ...], spec: AllowedCommand) -> str | None:
    """Refusals for how the command is written: `--`, flag order, arguments, unknown flags."""
    command = " ".join(spec.path)
    if parsed.dashes:
        return (f"`--` ends flyctl's flags, so every word after it is an argument to `{command}` "
                f"(here {list(parsed.after_dashes)}), never a flag or a command; the runbook "
                "never needs it")
    early = [name for name, seen in parsed.flag_positions
             if seen < len(spec.path) and name not in GLOBAL_FLAGS]
    if early:
        return (f"flag {early[0]} stands before the end of the command `{command}`: while flyctl "
                f"looks for the command it reads the word after {early[0]} as its value "
                "(`mpg -j status destroy` is `mpg destroy` to flyctl); flags go after the command")
    arguments = path[len(spec.path):]
    if "" in arguments:
        return f"`{command}` got an empty argument"
    if len(arguments) != spec.positionals:
        want = "one argument" if spec.positionals == 1 else "no arguments"
        return f"`{command}` takes {want} here, got {list(arguments)}"
    unknown = sorted(set(parsed.flags) - spec.flags - GLOBAL_FLAGS)
    if unknown:
        return f"flag(s) {', '.join(unknown)} are not allowed with `{command}`"
    return None


def _value_reason(parsed: ParsedArgs, spec: AllowedCommand, app: str | None) -> str | None:
    """Refusals for flag values: empty or dash-led ones, the wrong app, a non-loopback bind."""
    command = " ".join(spec.path)
    for name, values in parsed.flags.items():
        if name not in VALUE_FLAGS:
            continue
        if any(not value.strip() for value in values):
            return f"flag {name} of `{command}` has an empty value"
        if any(value.startswith("-") for value in values):
            return f"flag {name} of `{command}` has a value that starts with '-' (a flag?)"
    apps = [v for name in sorted(APP_FLAGS) for v in parsed.flags.get(name, [])]
    if spec.needs_app and not apps:
        return f"`{command}` must name its app with -a (flyctl would guess it from fly.toml)"
    if app is not None and any(value != app for value in apps):
        return f"`{command}` names app {sorted(set(apps) - {app})}, not the runbook's app {app!r}"
    binds = [v for name in sorted(BIND_FLAGS) for v in parsed.flags.get(name, [])]
    if any(value.lower() not in LOOPBACK for value in binds):
        return (f"`{command}` may bind only a loopback address ({', '.join(sorted(LOOPBACK))}), "
                f"not {[v for v in binds if v.lower() not in LOOPBACK]}: anything else exposes "
                "the database to the network")
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


def check_allowed(argv: Sequence[str], *, flyctl: str = "flyctl", app: str | None = None) -> None:
    """Raise CommandRefused unless the runbook may run ``argv`` itself (binary optional).

    ``app``: the app the runbook is configured for (app-scoped commands must name
    it); None accepts any non-empty app name.
    """
    args = strip_binary(argv, flyctl)
    reason = refusal_reason(args, app=app)
    if reason is None:
        return
    shown = describe([flyctl, *args])
    raise CommandRefused(
        f"`{shown}` {HUMAN_STEP} ({reason}).",
        "Copy the command into the incident checklist; a person reviews it and runs it by hand "
        "if it is really needed. The runbook never runs it.")
