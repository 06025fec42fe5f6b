"""The one subprocess seam.

Every external command the runbook runs goes through a :class:`CommandRunner`:
an argv list (never a shell string), a timeout, an optional environment. The
real runner is :class:`SubprocessRunner`; the sandbox's flyctl emulator and the
public :class:`rollback_helpers.testing.ScriptedRunner` implement the same
protocol, so drills and tests exercise the same calling code as incidents.

:class:`SubprocessRunner` runs only programs on its allow-list — ``flyctl`` and
``fly`` by default, plus the configured flyctl path and whatever its builder
passes explicitly — and refuses anything else before a process starts.
"""

from __future__ import annotations

import contextlib
import os
import queue
import shlex
import signal
import subprocess
import threading
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import IO, Protocol

from rollback_helpers.errors import CommandFailed, CommandRefused, CommandTimeout
from rollback_helpers.secrets import MASK, redact

DEFAULT_PROGRAMS = ("flyctl", "fly")
_TOKEN_FLAGS = frozenset({"-t", "--access-token"})  # flyctl's token flag: its value is masked


@dataclass(frozen=True)
class CommandResult:
    argv: tuple[str, ...]
    returncode: int
    stdout: str
    stderr: str

    @property
    def ok(self) -> bool:
        return self.returncode == 0

    def stderr_tail(self, lines: int = 5) -> str:
        return redact("\n".join(self.stderr.strip().splitlines()[-lines:]))


class BackgroundProcess(Protocol):
    """A long-running command (``flyctl mpg proxy``) that the runbook must stop."""

    argv: tuple[str, ...]

    def read_line(self, timeout: float) -> str | None:
        """The next stdout line, or None if none came within ``timeout`` or it exited."""

    def poll(self) -> int | None:
        """The exit code once exited, else None."""

    def stderr_text(self) -> str: ...

    def stop(self, timeout: float = 5.0) -> int:
        """Interrupt (SIGINT, then SIGKILL) and return the exit code. Idempotent."""


class CommandRunner(Protocol):
    def run(self, argv: Sequence[str], *, timeout: float,
            env: Mapping[str, str] | None = None) -> CommandResult: ...

    def start(self, argv: Sequence[str], *, env: Mapping[str, str] | None = None
              ) -> BackgroundProcess: ...


def describe(argv: Sequence[str]) -> str:
    """The command as a human would type it, secrets masked (the value after ``-t`` too)."""
    words = [MASK if i and argv[i - 1] in _TOKEN_FLAGS else shlex.quote(word)
             for i, word in enumerate(argv)]
    return redact(" ".join(words))


def program_allowed(program: str, allowed: Iterable[str]) -> bool:
    """Whether ``program`` (argv[0]) is on ``allowed``.

    An entry with a ``/`` is a path and must match exactly; a bare name matches
    the program's base name, wherever it lives (``flyctl`` allows
    ``/usr/local/bin/flyctl``).
    """
    if not program:
        return False
    base = os.path.basename(program)
    return any(os.path.normpath(program) == os.path.normpath(entry) if "/" in entry
               else base == entry for entry in allowed if entry)


class SubprocessRunner:
    """Runs real processes: no shell, captured output, a hard timeout, allowed programs only.

    ``flyctl``: the configured flyctl (a name or a path), allowed besides the
    default ``flyctl`` and ``fly``. ``allowed_programs``: any other program this
    runner may start (names match by base name, paths exactly); nothing else is
    ever started.
    """

    def __init__(self, base_env: Mapping[str, str] | None = None, *, flyctl: str = "flyctl",
                 allowed_programs: Iterable[str] = ()) -> None:
        self._base_env = dict(os.environ if base_env is None else base_env)
        self.allowed_programs = (*DEFAULT_PROGRAMS, flyctl, *allowed_programs)

    def check_program(self, argv: Sequence[str]) -> None:
        """Raise CommandRefused unless ``argv[0]`` is on this runner's allow-list."""
        program = argv[0] if argv else ""
        if program_allowed(program, self.allowed_programs):
            return
        allowed = ", ".join(dict.fromkeys(self.allowed_programs))
        raise CommandRefused(
            f"`{program or '(no program)'}` is not on the command runner's allow-list "
            f"({allowed}): `{describe(argv)}` was refused before starting.",
            "The runbook runs only flyctl through this runner. If this program is really needed, "
            "add it to allowed_programs where the runner is built, in a reviewed change.")

    def _env(self, env: Mapping[str, str] | None) -> dict[str, str]:
        merged = dict(self._base_env)
        merged.update(env or {})
        return merged

    def run(self, argv: Sequence[str], *, timeout: float,
            env: Mapping[str, str] | None = None) -> CommandResult:
        self.check_program(argv)
        try:
            done = subprocess.run(list(argv), capture_output=True, text=True, timeout=timeout,
                                  env=self._env(env), stdin=subprocess.DEVNULL, check=False)
        except subprocess.TimeoutExpired as exc:
            raise CommandTimeout(
                f"`{describe(argv)}` did not finish within {timeout:g}s",
                "Check connectivity to Fly (`flyctl doctor`), then re-run this step.",
            ) from exc
        except FileNotFoundError as exc:
            raise CommandFailed(
                f"`{argv[0]}` is not installed or not on PATH (needed for `{describe(argv)}`)",
                "Install flyctl (https://fly.io/docs/flyctl/install/) or use the sandbox backend.",
            ) from exc
        except PermissionError as exc:
            raise CommandFailed(
                f"`{argv[0]}` cannot be executed (permission denied) for `{describe(argv)}`",
                f"Check the file's execute permission: ls -l $(command -v {argv[0]}).",
            ) from exc
        return CommandResult(tuple(argv), done.returncode, done.stdout, done.stderr)

    def start(self, argv: Sequence[str], *, env: Mapping[str, str] | None = None
              ) -> PopenProcess:
        self.check_program(argv)
        return PopenProcess(argv, self._env(env))


class PopenProcess:
    """A background process whose stdout lines are read by a pump thread."""

    def __init__(self, argv: Sequence[str], env: Mapping[str, str]) -> None:
        self.argv = tuple(argv)
        self._proc = subprocess.Popen(list(argv), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                      stdin=subprocess.DEVNULL, text=True, env=dict(env),
                                      start_new_session=True)
        self._lines: queue.Queue[str | None] = queue.Queue()
        self._stderr: list[str] = []
        threading.Thread(target=self._pump_stdout, args=(self._proc.stdout,), daemon=True).start()
        threading.Thread(target=self._pump_stderr, args=(self._proc.stderr,), daemon=True).start()

    def _pump_stdout(self, stream: IO[str] | None) -> None:
        assert stream is not None
        for line in stream:
            self._lines.put(line.rstrip("\n"))
        self._lines.put(None)  # end of output

    def _pump_stderr(self, stream: IO[str] | None) -> None:
        assert stream is not None
        for line in stream:
            self._stderr.append(line.rstrip("\n"))

    @property
    def pid(self) -> int:
        return self._proc.pid

    def read_line(self, timeout: float) -> str | None:
        try:
            return self._lines.get(timeout=timeout)
        except queue.Empty:
            return None

    def poll(self) -> int | None:
        return self._proc.poll()

    def stderr_text(self) -> str:
        return redact("\n".join(self._stderr))

    def stop(self, timeout: float = 5.0) -> int:
        if self._proc.poll() is None:
            try:
                os.killpg(self._proc.pid, signal.SIGINT)
                return self._proc.wait(timeout=timeout)
            except (subprocess.TimeoutExpired, ProcessLookupError):
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(self._proc.pid, signal.SIGKILL)
        return self._proc.wait()
