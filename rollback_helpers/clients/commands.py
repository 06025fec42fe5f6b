"""The one subprocess seam.

Every external command the runbook runs goes through a :class:`CommandRunner`:
an argv list (never a shell string), a timeout, an optional environment. The
real runner is :class:`SubprocessRunner`; the sandbox's flyctl emulator and the
public :class:`rollback_helpers.testing.ScriptedRunner` implement the same
protocol, so drills and tests exercise the same calling code as incidents.
"""

from __future__ import annotations

import contextlib
import os
import queue
import shlex
import signal
import subprocess
import threading
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import IO, Protocol

from rollback_helpers.errors import CommandFailed, CommandTimeout
from rollback_helpers.secrets import redact


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
    """The command as a human would type it, secrets masked."""
    return redact(shlex.join(argv))


class SubprocessRunner:
    """Runs real processes: no shell, captured output, a hard timeout."""

    def __init__(self, base_env: Mapping[str, str] | None = None) -> None:
        self._base_env = dict(os.environ if base_env is None else base_env)

    def _env(self, env: Mapping[str, str] | None) -> dict[str, str]:
        merged = dict(self._base_env)
        merged.update(env or {})
        return merged

    def run(self, argv: Sequence[str], *, timeout: float,
            env: Mapping[str, str] | None = None) -> CommandResult:
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
