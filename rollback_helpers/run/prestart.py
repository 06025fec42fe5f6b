"""A headless run's kernel, started while the command line is still getting ready.

A kernel's own start (a Python, ipykernel's modules, then the step module the notebook
imports first) takes about a third of a second. It used to begin only once the command
line had checked every input, imported papermill and, for a drill, built its world. Now:

* :func:`start` spawns :mod:`~rollback_helpers.run.kernel_launcher` in its waiting mode as
  soon as the run's inputs make sense. It imports all that, then waits on its stdin.
* When papermill's kernel manager launches the kernel, its provisioner
  (:class:`~rollback_helpers.run.headless.PrestartedProvisioner`) hands the waiting
  process the launch a new process would have been given: its arguments (the connection
  file among them), its environment as of that moment and its working folder. From there
  on (the connection file, the handshake, interrupts, shutdown) everything is
  jupyter_client's, as before.
* A command that ends without launching it (bad input, Ctrl-C, a failed check) kills the
  waiting process (:func:`discard`). A launch with nothing waiting, or of another
  command (another kernel spec), spawns its kernel as before.

The waiting process is spawned as jupyter_client spawns a kernel: stdin a pipe, in a new
session (Ctrl-C in the terminal reaches the command line, which interrupts the kernel).
If the command line dies without a word, the waiting process reads the end of its input
and exits, having started nothing.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys

from rollback_helpers.run import kernel_launcher  # imports ipykernel only when it runs
from rollback_helpers.run.kernel_launcher import WAIT

LAUNCHER = kernel_launcher.__name__

_waiting: subprocess.Popen[bytes] | None = None
_handed: int | None = None


def launcher_command() -> list[str]:
    """How a headless run's kernel is started, before its arguments."""
    return [sys.executable, "-m", LAUNCHER]


def start(*modules: str) -> subprocess.Popen[bytes] | None:
    """Spawn a kernel that imports ``modules`` and waits for its launch (one at a time; on
    POSIX, where jupyter_client starts a kernel in a session of its own)."""
    global _waiting
    discard()
    if os.name != "posix":
        return None
    # ipykernel reads JPY_PARENT_PID as it is imported (whether to watch its parent, and keep
    # quiet about how to connect to it): set before, to what the launch sets it to
    env = {**os.environ, "JPY_PARENT_PID": str(os.getpid())}
    _waiting = subprocess.Popen([*launcher_command(), WAIT, *modules], stdin=subprocess.PIPE,
                                env=env, start_new_session=True)
    return _waiting


def handed() -> int | None:
    """The pid of the last kernel handed a launch: the run's kernel, though started earlier."""
    return _handed


def discard() -> None:
    """Kill a kernel that is still waiting: this command line will not launch it."""
    global _waiting
    process, _waiting = _waiting, None
    if process is not None:
        _kill(process)


def take(cmd: list[str], env: dict[str, str], cwd: str) -> subprocess.Popen[bytes] | None:
    """The waiting kernel, handed ``cmd``'s launch; None if there is none to hand it to
    (nothing waits, it waits for another command, or it died waiting)."""
    global _waiting, _handed
    process, _waiting = _waiting, None
    prefix = launcher_command()
    if process is None:
        return None
    if cmd[:len(prefix)] != prefix or process.poll() is not None or process.stdin is None:
        _kill(process)
        return None
    launch = {"args": cmd[len(prefix):], "env": env, "cwd": cwd}
    try:
        process.stdin.write(json.dumps(launch).encode() + b"\n")
        process.stdin.flush()  # and kept open, as jupyter_client keeps a kernel's stdin
    except OSError:
        _kill(process)
        return None
    _handed = process.pid
    return process


def _kill(process: subprocess.Popen[bytes]) -> None:
    process.kill()
    process.wait()
    if process.stdin:
        process.stdin.close()
