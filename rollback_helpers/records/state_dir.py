"""Where a run keeps what must outlive its process: this user's state folder.

A headless run executes its notebook into a private working copy
(``rollback-run-XXXX/`` with ``owner.json``), and a record the store refused is
kept aside (``unarchived-XXXX/``). Both are what ``rollback-runbook recover``
looks for after a run was killed outright, so they live in a per-user folder
that survives a reboot and does not depend on ``$TMPDIR``:
``platformdirs.user_state_dir("rollback-runbook")`` (``~/.local/state/rollback-runbook``
on Linux, ``~/Library/Application Support/rollback-runbook`` on macOS), or
``$ROLLBACK_STATE_DIR`` when set. A tmpfs ``/tmp`` emptied by a reboot, or a
``recover`` started from a shell with another ``TMPDIR``, loses nothing.

The folder is 0700 and what is written in it 0600: a record holds no secret (they are
redacted before any output), but it is an incident's story, for this user only.
Scratch files that must keep a short path (a kernel's Unix sockets) stay in the
temp folder (:mod:`rollback_helpers.run.headless`).
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Mapping
from pathlib import Path

import platformdirs

from rollback_helpers.errors import ConfigError

APP = "rollback-runbook"
STATE_VAR = "ROLLBACK_STATE_DIR"
PRIVATE_FILE = 0o600
PRIVATE_DIR = 0o700


def state_root(environ: Mapping[str, str] | None = None) -> Path:
    """The state folder (``$ROLLBACK_STATE_DIR``, else the platform's), without creating it."""
    environ = os.environ if environ is None else environ
    named = environ.get(STATE_VAR, "").strip()
    return Path(named).expanduser() if named else Path(platformdirs.user_state_dir(APP))


def state_dir(environ: Mapping[str, str] | None = None) -> Path:
    """The state folder, created 0700 if missing and proven writable; a ConfigError (exit 2)
    naming it and ``ROLLBACK_STATE_DIR`` otherwise."""
    root = state_root(environ)
    try:
        created = not root.exists()
        root.mkdir(mode=PRIVATE_DIR, parents=True, exist_ok=True)
        if created:
            root.chmod(PRIVATE_DIR)  # mkdir's mode is filtered by the umask
        with tempfile.NamedTemporaryFile(dir=root, prefix=".writable-"):
            pass
    except OSError as exc:
        raise ConfigError(
            f"The runbook's state folder {root} cannot be created or written "
            f"({exc.strerror or type(exc).__name__}); a run killed outright could not be "
            "recovered from it.",
            f"Set {STATE_VAR} to a folder of yours that survives a reboot, then re-run. "
            "Nothing was started.") from None
    return root


def private_folder(prefix: str, environ: Mapping[str, str] | None = None) -> Path:
    """A new folder of this process's own in the state folder (0700)."""
    return Path(tempfile.mkdtemp(prefix=prefix, dir=state_dir(environ)))


def private_file(path: Path) -> Path:
    """``path`` created empty with mode 0600 if missing (a later write keeps the mode)."""
    os.close(os.open(path, os.O_WRONLY | os.O_CREAT, PRIVATE_FILE))
    return path


def write_private(path: Path, text: str) -> Path:
    """``text`` into ``path`` at once (a partial file renamed over it), mode 0600."""
    partial = path.with_name(f".{path.name}.partial")
    fd = os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, PRIVATE_FILE)
    with os.fdopen(fd, "w", encoding="utf-8") as handle:
        handle.write(text)
    partial.replace(path)
    return path
