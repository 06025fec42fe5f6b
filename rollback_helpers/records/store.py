"""Where incident records go: a local folder, an object store, or a GitHub repository.

``incidents_dir`` (config, ``ROLLBACK_INCIDENTS_DIR`` or ``--incidents-dir``) is one of

- a local path (the default, ``incidents``);
- an fsspec URL: ``s3://bucket/prefix``, ``gs://bucket/prefix``, … — the handler
  (``s3fs``, ``gcsfs``) reads its credentials from the environment as usual
  (``AWS_ACCESS_KEY_ID``, ``AWS_SECRET_ACCESS_KEY``, ``AWS_ENDPOINT_URL`` for an
  S3-compatible endpoint that is not AWS, …);
- ``github://OWNER/REPO[@BRANCH][/FOLDER]``: a folder of a repository, written with
  GitHub's contents API through a GitHub client it is given (the command line's comes
  from ``rollback_helpers.run.backends``: ``GITHUB_TOKEN``, ``GH_TOKEN``, then
  ``gh auth token``).

Every store is write-once: a record is created, never overwritten, and a name
that is taken gets a ``-2``, ``-3``, … suffix (a local folder's write is atomic, with or
without hard links: :mod:`rollback_helpers.records.local_write`). :meth:`RecordStore.check_writable`
runs before a run starts, so a location that cannot be written (unknown scheme,
missing handler, no credentials, no bucket or repository) is a bad input (exit 2)
rather than a record silently kept somewhere else.
"""

from __future__ import annotations

import os
import re
from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from rollback_helpers.clients.github import GitHubClient
from rollback_helpers.clients.github_contents import GitHubContents
from rollback_helpers.errors import ConfigError, RecordMissing, RecordStoreError, RollbackError
from rollback_helpers.records.local_write import create_local
from rollback_helpers.secrets import redact, remember

GITHUB_SCHEME = "github://"
SCHEME = re.compile(r"^(?P<scheme>[A-Za-z][A-Za-z0-9+.-]*):(?P<slashes>/*)")
HANDLERS = {"s3": "s3fs", "s3a": "s3fs", "gs": "gcsfs", "gcs": "gcsfs", "az": "adlfs",
            "abfs": "adlfs", "abfss": "adlfs"}
MAX_SUFFIX = 1000
# Credentials a store's handler reads from the environment: masked wherever redact() runs.
CREDENTIAL_VARS = ("AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "GOOGLE_OAUTH_ACCESS_TOKEN",
                   "AZURE_STORAGE_KEY", "AZURE_STORAGE_SAS_TOKEN", "AZURE_CLIENT_SECRET")
GitHubFactory = Callable[[str], GitHubClient]  # repository "owner/name" → a client for it


@dataclass(frozen=True)
class StoredRecord:
    """One record in a store: its file name and the location that reads it back."""

    name: str
    location: str
    size: int = 0


class RecordStore(ABC):
    """A write-once folder of records."""

    location: str

    @abstractmethod
    def check_writable(self) -> None:
        """Raise :class:`ConfigError` naming the location if records cannot be written there."""

    @abstractmethod
    def _create(self, name: str, data: bytes) -> bool:
        """Create ``name``; False if it exists (never overwrite)."""

    @abstractmethod
    def list_records(self) -> list[StoredRecord]:
        """The records (``*.ipynb``) directly in this folder, in name order."""

    @abstractmethod
    def read(self, name: str) -> bytes:
        """A record's exact bytes; :class:`RecordMissing` if there is none."""

    @abstractmethod
    def child(self, folder: str) -> RecordStore:
        """The store in a sub-folder (drills go to ``drills/``)."""

    def _seen_taken(self) -> set[str]:
        """Names known to be taken when that costs no round trip (a local folder); the
        write itself still refuses a name taken since."""
        return set()

    def location_of(self, name: str) -> str:
        return f"{self.location.rstrip('/')}/{name}"

    def put_new(self, name: str, render: Callable[[str], bytes]) -> tuple[StoredRecord, bytes]:
        """Write a new record under ``name`` (or ``name-2``, … if taken) and never overwrite.

        ``render(location)`` gives the bytes for a candidate location, so a record
        that names its own location stays true when the name moves on.
        """
        stem, suffix = os.path.splitext(name)
        taken = self._seen_taken()
        for n in range(1, MAX_SUFFIX):
            candidate = name if n == 1 else f"{stem}-{n}{suffix}"
            if candidate in taken:
                continue  # rendering a record costs more than a name it cannot have
            data = render(self.location_of(candidate))
            if self._create(candidate, data):
                return StoredRecord(candidate, self.location_of(candidate), len(data)), data
        raise RecordStoreError(f"{self.location} already holds {MAX_SUFFIX} records named {stem}*.",
                               "Choose another incidents_dir.")


# -- fsspec: local folders and object stores ----------------------------------------------
class FsspecStore(RecordStore):
    """A local folder or an fsspec URL (``s3://``, ``gs://``, …)."""

    def __init__(self, location: str, *, parent: FsspecStore | None = None) -> None:
        import fsspec

        self.location = location.rstrip("/") or location
        for name in CREDENTIAL_VARS:
            remember(os.environ.get(name, ""))
        self.root: str
        self.fs: Any
        if parent is not None:  # a sub-folder: the same connection (an S3 client is costly)
            self.fs, self.root = parent.fs, f"{parent.root.rstrip('/')}/{location.rsplit('/', 1)[-1]}"
        else:
            try:
                self.fs, self.root = fsspec.core.url_to_fs(location, skip_instance_cache=True)
            except (ImportError, ValueError) as exc:
                raise _handler_error(location, exc) from exc
            except Exception as exc:  # noqa: BLE001  (a handler that connects: ftp://, sftp://)
                raise ConfigError(f"Records cannot be written to {location}: {_reason(exc)}.",
                                  _store_help(location)) from None
        self.local = "file" in _protocols(self.fs)

    def check_writable(self) -> None:
        try:
            if self.local:
                self.fs.makedirs(self.root, exist_ok=True)
                if not os.access(self.root, os.W_OK):
                    raise PermissionError(f"{self.root} is not writable")
            else:
                self.fs.ls(self.root.split("/", 1)[0])  # the bucket: exists, and we may read it
        except RollbackError:
            raise
        except Exception as exc:  # noqa: BLE001  (every handler has its own errors)
            raise ConfigError(f"Records cannot be written to {self.location}: {_reason(exc)}.",
                              _store_help(self.location)) from None

    def _path(self, name: str) -> str:
        return f"{self.root.rstrip('/')}/{name}"

    def _seen_taken(self) -> set[str]:
        if not self.local:
            return set()
        try:
            return set(os.listdir(self.root))
        except OSError:
            return set()

    def _create(self, name: str, data: bytes) -> bool:
        try:
            if self.local:
                return create_local(Path(self._path(name)), data)
            try:
                with self.fs.open(self._path(name), "xb") as out:
                    out.write(data)
            except FileExistsError:
                raise
            except Exception:
                _forget(self.fs, self._path(name))  # no partial object under the record's name
                raise
        except FileExistsError:
            return False
        except Exception as exc:  # noqa: BLE001
            raise RecordStoreError(f"Could not write {self.location_of(name)}: {_reason(exc)}.",
                                   _store_help(self.location)) from None
        return True

    def list_records(self) -> list[StoredRecord]:
        try:
            entries = self.fs.ls(self.root, detail=True)
        except FileNotFoundError:
            return []
        except Exception as exc:  # noqa: BLE001
            raise RecordStoreError(f"Could not list {self.location}: {_reason(exc)}.",
                                   _store_help(self.location)) from None
        found = [StoredRecord(name, self.location_of(name), int(e.get("size") or 0))
                 for e in entries if e.get("type") == "file"
                 and (name := str(e["name"]).rstrip("/").rsplit("/", 1)[-1]).endswith(".ipynb")]
        return sorted(found, key=lambda r: r.name)

    def read(self, name: str) -> bytes:
        try:
            return bytes(self.fs.cat_file(self._path(name)))
        except FileNotFoundError:
            raise RecordMissing(f"No record at {self.location_of(name)}.",
                                "Check the location (history lists the records of a store).") \
                from None
        except Exception as exc:  # noqa: BLE001
            raise RecordStoreError(f"Could not read {self.location_of(name)}: {_reason(exc)}.",
                                   _store_help(self.location)) from None

    def read_many(self, names: list[str]) -> dict[str, bytes]:
        """Several records at once (concurrently on object stores)."""
        paths = {self._path(name): name for name in names}
        if not paths:
            return {}
        try:
            found = self.fs.cat(list(paths), on_error="omit")
        except Exception as exc:  # noqa: BLE001
            raise RecordStoreError(f"Could not read records from {self.location}: "
                                   f"{_reason(exc)}.", _store_help(self.location)) from None
        by_path = {str(k).removeprefix("file://"): v for k, v in dict(found).items()}
        return {name: bytes(by_path[path]) for path, name in paths.items() if path in by_path}

    def child(self, folder: str) -> FsspecStore:
        return FsspecStore(self.location_of(folder), parent=self)


def _forget(fs: Any, path: str) -> None:
    try:
        if fs.exists(path):
            fs.rm(path)
    except Exception:  # noqa: BLE001,S110  (the write's own error is the one to report)
        pass


def _protocols(fs: Any) -> set[str]:
    protocol = fs.protocol
    return {protocol} if isinstance(protocol, str) else set(protocol)


# -- a GitHub repository ------------------------------------------------------------------------
class GitHubStore(RecordStore):
    """``github://OWNER/REPO[@BRANCH][/FOLDER]``, through the contents API."""

    def __init__(self, location: str, github: GitHubFactory) -> None:
        self.repo, self.branch, self.folder = parse_github_location(location)
        self.location = location.rstrip("/")
        self._github = github
        self._contents: GitHubContents | None = None

    @property
    def contents(self) -> GitHubContents:
        if self._contents is None:
            self._contents = GitHubContents(self._github(self.repo).session, self.branch)
        return self._contents

    def check_writable(self) -> None:
        try:
            self.contents.writable()
        except RollbackError as exc:
            raise ConfigError(f"Records cannot be written to {self.location}: {exc.what}",
                              exc.next_step or _store_help(self.location)) from None

    def _path(self, name: str) -> str:
        return f"{self.folder}/{name}" if self.folder else name

    def _create(self, name: str, data: bytes) -> bool:
        try:
            made = self.contents.create_file(self._path(name), data, f"Incident record {name}")
        except RollbackError as exc:
            raise RecordStoreError(f"Could not write {self.location_of(name)}: {exc.what}",
                                   exc.next_step) from None
        return made is not None

    def list_records(self) -> list[StoredRecord]:
        files = self.contents.list_folder(self.folder)
        return sorted((StoredRecord(f.name, self.location_of(f.name), f.size) for f in files
                       if f.type == "file" and f.name.endswith(".ipynb")), key=lambda r: r.name)

    def read(self, name: str) -> bytes:
        from rollback_helpers.errors import GitHubNotFound

        try:
            return self.contents.read_file(self._path(name))
        except GitHubNotFound:
            raise RecordMissing(f"No record at {self.location_of(name)}.",
                                "Check the location (history lists the records of a store).") \
                from None

    def child(self, folder: str) -> GitHubStore:
        return GitHubStore(self.location_of(folder), self._github)


def parse_github_location(location: str) -> tuple[str, str, str]:
    """``github://OWNER/REPO[@BRANCH][/FOLDER]`` → (``OWNER/REPO``, branch, folder)."""
    rest = location.removeprefix(GITHUB_SCHEME).strip("/")
    parts = rest.split("/")
    if len(parts) < 2 or not parts[0] or not parts[1].split("@")[0]:
        raise ConfigError(f"{location!r} is not a GitHub records location.",
                          "Write it as github://OWNER/REPO[@BRANCH][/FOLDER], e.g. "
                          "github://acme/incident-records@main/incidents.")
    name, _, branch = parts[1].partition("@")
    return f"{parts[0]}/{name}", branch, "/".join(p for p in parts[2:] if p)


# -- choosing a store ---------------------------------------------------------------------------
def open_store(location: str, *, github: GitHubFactory | None = None) -> RecordStore:
    """The store a location names; :class:`ConfigError` for one the runbook cannot write."""
    if location.startswith(GITHUB_SCHEME):
        if github is None:
            raise ConfigError(f"{location} needs GitHub, which is not available here.",
                              "Run from the command line with GITHUB_TOKEN set.")
        return GitHubStore(location, github)
    scheme = SCHEME.match(location)
    if scheme and len(scheme["scheme"]) > 1 and scheme["slashes"] != "//" \
            and scheme["scheme"] != "file":
        raise ConfigError(f"{location!r} looks like a URL but is not one (no '//' after "
                          f"{scheme['scheme']}:).",
                          f"Write {scheme['scheme']}://bucket/prefix, or a plain local path.")
    return FsspecStore(location)


def split_location(location: str, *, github: GitHubFactory | None = None
                   ) -> tuple[RecordStore, str]:
    """A record's location → (the store holding it, its name)."""
    folder, slash, name = location.rstrip("/").rpartition("/")
    folder = folder or slash or "."  # "/x.ipynb" is in "/", "x.ipynb" in "."
    if not name.endswith(".ipynb"):
        raise ConfigError(f"{location!r} does not name a record (an .ipynb file).",
                          "Give the record's path or URL, as history lists it.")
    return open_store(folder, github=github), name


def _handler_error(location: str, exc: Exception) -> ConfigError:
    scheme = location.split("://", 1)[0]
    if isinstance(exc, ImportError) or HANDLERS.get(scheme):
        package = HANDLERS.get(scheme, f"the fsspec handler for {scheme}://")
        return ConfigError(f"Records cannot be written to {location}: {scheme}:// needs "
                           f"{package}, which is not installed.",
                           f"pip install {package} (in the runbook's environment), or use "
                           "another incidents_dir.")
    return ConfigError(f"Records cannot be written to {location}: unknown scheme {scheme}://.",
                       "Use a local path, an fsspec URL (s3://, gs://, …) or "
                       "github://OWNER/REPO[@BRANCH][/FOLDER].")


def _reason(exc: BaseException) -> str:
    kind = type(exc).__name__
    if kind == "NoCredentialsError":
        return "no credentials in the environment"
    if isinstance(exc, FileNotFoundError):
        return f"it does not exist ({redact(str(exc)) or kind})"
    return redact(f"{kind}: {exc}")


def _store_help(location: str) -> str:
    if location.startswith(("s3://", "s3a://")):
        return ("Check the bucket exists and that AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY (or a "
                "profile) are set in this shell; for an S3-compatible endpoint set "
                "AWS_ENDPOINT_URL.")
    if location.startswith(GITHUB_SCHEME):
        return "Check the repository, the branch and that GITHUB_TOKEN can write its contents."
    if "://" in location:
        return "Check the location and that its credentials are set in this shell."
    return f"Check that {location} can be created and written by this user."


def local_path(store: RecordStore) -> Path | None:
    """The folder on this machine, for a local store (None for the others)."""
    return Path(store.root) if isinstance(store, FsspecStore) and store.local else None
