"""Putting a finished run's notebook into the records store, once, with its SHA-256.

Papermill writes the executed notebook to a private working copy while the run
goes on; when the run ends, :func:`keep_record` writes it to the store (write-once),
with the ``rollback_runbook`` metadata naming the location it was stored at, and
returns the SHA-256 of exactly the bytes stored. That digest is what the run's
record comment publishes and what ``verify-record`` recomputes.
"""

from __future__ import annotations

import hashlib
import json
import shutil
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import nbformat

from rollback_helpers.errors import ConfigError, RollbackError
from rollback_helpers.records.state_dir import private_folder
from rollback_helpers.records.store import GitHubFactory, RecordStore, open_store
from rollback_helpers.ui.display import METADATA_KEY

DRILLS = "drills"
UNARCHIVED_PREFIX = "unarchived-"  # <state>/unarchived-XXXX/<record>: a record the store refused


@dataclass(frozen=True)
class ArchivedRecord:
    """A record as stored: where, under which name, and the SHA-256 of its bytes."""

    location: str
    name: str
    sha256: str
    size: int


def sha256_hex(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def incidents_location(configured: str, *, explicit: str = "", drill: bool = False) -> str:
    """Where a run's record goes: the configured store (``drills/`` under it for a drill);
    an explicit ``--incidents-dir`` is used as given."""
    if explicit:
        return explicit
    return f"{configured.rstrip('/')}/{DRILLS}" if drill else configured


def writable_store(location: str, github: GitHubFactory | None) -> RecordStore:
    """The store at ``location``, checked writable before anything runs (else exit 2)."""
    store = open_store(location, github=github)
    store.check_writable()
    return store


def located(notebook: bytes, location: str) -> bytes:
    """The notebook's bytes with its metadata block naming ``location`` as its archive."""
    nb = nbformat.reads(notebook.decode("utf-8"), as_version=4)  # type: ignore[no-untyped-call]
    nb.metadata.setdefault(METADATA_KEY, {})["archive"] = location
    return (nbformat.writes(nb) + "\n").encode("utf-8")  # type: ignore[no-untyped-call,no-any-return]


def keep_record(store: RecordStore, name: str, working: Path) -> ArchivedRecord:
    """Write the working copy to the store as a new record; raises RecordStoreError."""
    original = working.read_bytes()
    stored, data = store.put_new(name, lambda location: located(original, location))
    return ArchivedRecord(stored.location, stored.name, sha256_hex(data), len(data))


def keep_or_explain(store: RecordStore, name: str, working: Path,
                    rescue: Callable[[Path], Path]) -> tuple[ArchivedRecord | None, str]:
    """:func:`keep_record`, or (None, what went wrong and where the notebook was kept)."""
    try:
        return keep_record(store, name, working), ""
    except RollbackError as exc:
        kept = rescue(working)
        return None, (f"NOT ARCHIVED: {exc.what}\nThe executed notebook is kept at {kept}; "
                      f"copy it to {store.location} once the store is reachable. "
                      f"{exc.next_step}".rstrip())


def rescue_copy(working: Path) -> Path:
    """Keep a working copy that could not be stored, outside the folder that is removed: in
    the user's state folder (``unarchived-XXXX/``), which survives a reboot."""
    keep = private_folder(UNARCHIVED_PREFIX) / working.name
    shutil.copyfile(working, keep)
    keep.chmod(0o600)
    return keep


def record_metadata(data: bytes) -> dict[str, object]:
    """The ``rollback_runbook`` block of a record's bytes ({} if it has none)."""
    try:
        nb = json.loads(data.decode("utf-8"))
    except (UnicodeDecodeError, ValueError):
        return {}
    block = nb.get("metadata", {}).get(METADATA_KEY, {}) if isinstance(nb, dict) else {}
    return dict(block) if isinstance(block, dict) else {}


def ensure_notebook(location: str, data: bytes) -> None:
    """A ConfigError (exit 2) naming ``location`` unless its bytes are a JSON notebook."""
    try:
        nb = json.loads(data.decode("utf-8"))
    except (UnicodeDecodeError, ValueError) as exc:
        problem = f"not JSON ({type(exc).__name__} at byte {getattr(exc, 'pos', getattr(exc, 'start', 0))})"
    else:
        if isinstance(nb, dict) and isinstance(nb.get("cells"), list):
            return
        problem = "JSON, but without a notebook's cells"
    raise ConfigError(f"{location} is not a notebook: {problem}.",
                      "Give a record the runbook archived (`rollback-runbook history` lists them).")
