"""What every emulated flyctl command shares: argv parsing, Go-style JSON, results, ids.

flyctl's ``--json`` output is Go's ``encoding/json`` with a 4-space indent:
HTML characters escaped (``<`` → ``\\u003c``), raw UTF-8 otherwise, exactly one
trailing newline, struct fields in declaration order and map keys sorted
bytewise. :func:`go_json` reproduces that from dicts built in the right order
(use :func:`go_map` for what is a Go map). Errors are ``Error: <msg>\\n`` on
stderr with exit code 1.
"""

from __future__ import annotations

import hashlib
import json
import shlex
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlunsplit

from rollback_helpers.clients.commands import CommandResult, PopenProcess
from rollback_helpers.sandbox.core.processes import forget_process, record_process
from rollback_helpers.secrets import redact

FLYCTL_VERSION = "0.4.87"
FLYCTL_COMMIT = "ad0172face303b77584eea95b46fa3ddc61d5ddd"
CROCKFORD = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"
BASE36 = "0123456789abcdefghijklmnopqrstuvwxyz"
GLOBAL_VALUE_FLAGS = frozenset({"-t", "--access-token"})
GLOBAL_BOOL_FLAGS = frozenset({"--verbose", "--debug"})
_STDERR_GRACE = 0.5  # seconds a failed process's stderr reader gets to catch up


def go_json(value: Any) -> str:
    """``value`` as flyctl's ``render.JSON`` prints it."""
    text = json.dumps(value, indent=4, ensure_ascii=False)
    for raw, escaped in (("<", "\\u003c"), (">", "\\u003e"), ("&", "\\u0026"),
                         ("\u2028", "\\u2028"), ("\u2029", "\\u2029")):
        text = text.replace(raw, escaped)  # these occur only inside JSON strings
    return text + "\n"


def go_map(mapping: Mapping[str, Any]) -> dict[str, Any]:
    """A Go map: keys sorted bytewise."""
    return {key: mapping[key] for key in sorted(mapping, key=lambda k: k.encode())}


def digest_text(*parts: object) -> str:
    return hashlib.sha256(":".join(str(p) for p in parts).encode()).hexdigest()


def ulid_like(*parts: object) -> str:
    """A stable 26-character ULID-looking id (``01K…``) derived from ``parts``."""
    number = int(digest_text("ulid", *parts), 16)
    chars = [CROCKFORD[(number >> (5 * i)) & 31] for i in range(23)]
    return "01K" + "".join(chars)


def base36_id(length: int, *parts: object) -> str:
    """A stable lowercase alphanumeric id, like MPG cluster ids."""
    number = int(digest_text("id", *parts), 16)
    return "".join(BASE36[(number // 36 ** i) % 36] for i in range(length))


def direct_ip_for(cluster_id: str) -> str:
    """A stable 6PN-looking address for an MPG cluster (``fdaa:12:a3f1:0:1::…``)."""
    suffix = digest_text("ip", cluster_id)[:3].lstrip("0") or "1"
    return f"fdaa:12:a3f1:0:1::{suffix}"


def numeric_id(*parts: object, digits: int = 7) -> int:
    span = 9 * 10 ** (digits - 1)
    return int(10 ** (digits - 1) + int(digest_text("num", *parts), 16) % span)


def ok(argv: Sequence[str], stdout: str = "", stderr: str = "") -> CommandResult:
    return CommandResult(tuple(argv), 0, stdout, stderr)


def error(argv: Sequence[str], message: str, stdout: str = "", code: int = 1) -> CommandResult:
    """flyctl's error printer: ``Error: <msg>`` and a newline on stderr, exit 1."""
    return CommandResult(tuple(argv), code, stdout, f"Error: {message}\n")


def not_emulated(argv: Sequence[str], what: str) -> CommandResult:
    return error(argv, f"the sandbox does not emulate `flyctl {what}`; it emulates the commands "
                       "the runbook runs (see rollback_helpers/sandbox/fly/flyctl.py)")


def logged_form(argv: Sequence[str]) -> str:
    """The command as it goes into the call log: no binary, access token masked."""
    words = list(argv[1:])
    tokens = [words[i + 1] for i, word in enumerate(words[:-1]) if word in GLOBAL_VALUE_FLAGS]
    tokens += [word.partition("=")[2] for word in words if word.startswith("--access-token=")]
    text = shlex.join(words)
    for token in filter(None, tokens):
        text = text.replace(shlex.quote(token), "****").replace(token, "****")
    return redact(text)


@dataclass
class Invocation:
    """One parsed flyctl call: the canonical command path, its arguments and flags."""

    argv: tuple[str, ...]
    path: tuple[str, ...]
    args: tuple[str, ...]
    flags: dict[str, str] = field(default_factory=dict)  # last value wins, as in pflag
    bools: set[str] = field(default_factory=set)

    def flag(self, *names: str, default: str = "") -> str:
        for name in names:
            if name in self.flags:
                return self.flags[name]
        return default

    def has(self, *names: str) -> bool:
        return any(name in self.bools for name in names)


class UnknownFlag(Exception):
    pass


class RestoreRefused(Exception):
    """A restore the sandbox cannot carry out; flyctl says ``failed to restore cluster: …``."""


def parse_invocation(argv: Sequence[str], path: tuple[str, ...], value_flags: frozenset[str],
                     bool_flags: frozenset[str], positionals: Sequence[str]) -> Invocation:
    """Flags and arguments of a command whose path is already known (cobra's pflag rules)."""
    inv = Invocation(tuple(argv), path, tuple(positionals[len(path):]))
    values = value_flags | GLOBAL_VALUE_FLAGS
    words = list(argv[1:])
    i = 0
    while i < len(words):
        word = words[i]
        if word.startswith("-") and word != "-" and word != "--":
            name, eq, value = word.partition("=")
            if name in values:
                if not eq:
                    i += 1
                    value = words[i] if i < len(words) else ""
                inv.flags[name] = value
            elif name in bool_flags | GLOBAL_BOOL_FLAGS:
                inv.bools.add(name)
            else:
                raise UnknownFlag(name)
        i += 1
    return inv


def split_positionals(argv: Sequence[str], value_flags: frozenset[str]) -> list[str]:
    """The non-flag words of ``argv`` (binary excluded), skipping flag values."""
    words, found, i = list(argv[1:]), [], 0
    while i < len(words):
        word = words[i]
        if word == "--":
            found.extend(words[i + 1:])
            break
        if word.startswith("-") and word != "-":
            if "=" not in word and word in value_flags | GLOBAL_VALUE_FLAGS:
                i += 1
        else:
            found.append(word)
        i += 1
    return found


@dataclass
class FinishedProcess:
    """A started command that has already exited: the answer of ``start`` for a quick command."""

    argv: tuple[str, ...]
    returncode: int
    lines: list[str]
    stderr: str

    @classmethod
    def of(cls, result: CommandResult) -> FinishedProcess:
        return cls(result.argv, result.returncode, result.stdout.splitlines(), result.stderr)

    def read_line(self, timeout: float) -> str | None:
        return self.lines.pop(0) if self.lines else None

    def poll(self) -> int | None:
        return self.returncode

    def stderr_text(self) -> str:
        return redact(self.stderr)

    def stop(self, timeout: float = 5.0) -> int:
        return self.returncode


class RecordedProcess:
    """A sandbox background process whose pid is on file until it is stopped.

    The pid file lets :func:`rollback_helpers.sandbox.shutdown` end a tunnel the
    runbook left running (a crashed kernel); stopping it here removes the file, so
    shutdown never signals a pid that has since been reused.
    """

    def __init__(self, process: PopenProcess, argv: tuple[str, ...], state_dir: Path,
                 name: str) -> None:
        self._process = process
        self.argv = argv  # the flyctl command, as the runbook ran it
        self._state_dir = state_dir
        self._name = name
        record_process(self._state_dir, name, process.pid)

    @property
    def pid(self) -> int:
        return self._process.pid

    def read_line(self, timeout: float) -> str | None:
        return self._process.read_line(timeout)

    def poll(self) -> int | None:
        code = self._process.poll()
        if code:  # let the stderr reader catch up with a process that failed at once
            deadline = time.monotonic() + _STDERR_GRACE
            while not self._process.stderr_text() and time.monotonic() < deadline:
                time.sleep(0.01)
        return code

    def stderr_text(self) -> str:
        return self._process.stderr_text()

    def stop(self, timeout: float = 5.0) -> int:
        try:
            return self._process.stop(timeout)
        finally:
            forget_process(self._state_dir, self._name)


def flympg_url(user: str, password: str, kind: str, cluster_id: str, dbname: str) -> str:
    """A Managed Postgres connection string as Fly builds it (``kind``: pgbouncer or direct)."""
    netloc = f"{user}:{password}@{kind}.{cluster_id}.flympg.net"
    return urlunsplit(("postgresql", netloc, f"/{dbname}", "", ""))
