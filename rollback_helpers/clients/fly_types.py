"""What flyctl tells the runbook: frozen dataclasses and the lenient parsers that build them.

Parsing happens once, here, at the boundary: the rest of the runbook never reads
flyctl's text. Unknown keys are ignored (flyctl adds fields between versions);
a missing required key raises :class:`MissingKey`, which :class:`~rollback_helpers.clients.fly.Fly`
turns into a CommandFailed that names the command. Import these from
:mod:`rollback_helpers.clients.fly`.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class Machine:
    id: str
    name: str
    state: str
    region: str
    image_digest: str  # sha256:<64 hex>, what the machine really runs
    image_repository: str  # registry/repository, e.g. registry.fly.io/renewa-one
    image_tag: str
    release_version: str
    private_ip: str
    config_image: str  # usually a tag, registry.fly.io/<app>:deployment-…


@dataclass(frozen=True)
class AppStatus:
    app: str
    hostname: str
    version: int
    machines: tuple[Machine, ...]

    def started(self) -> tuple[Machine, ...]:
        return tuple(m for m in self.machines if m.state == "started")

    def running_digests(self) -> set[str]:
        """The image digests of the started machines."""
        return {m.image_digest for m in self.started()}


@dataclass(frozen=True)
class Release:
    version: int
    status: str
    stable: bool
    image_ref: str
    created_at: str
    user_email: str


@dataclass(frozen=True)
class Cluster:
    id: str
    name: str
    status: str
    region: str
    plan: str
    attached_apps: tuple[str, ...]
    direct_ip: str
    version: int = 1  # Fly Managed Postgres 1 or 2 (only 2 restores to a point in time)


@dataclass(frozen=True)
class ClusterStatus:
    cluster: Cluster
    credentials_status: str  # the password and URI of that output are never kept


@dataclass(frozen=True)
class Backup:
    id: str
    status: str
    type: str
    start: str
    stop: str


@dataclass(frozen=True)
class RestoreResult:
    source_id: str
    backup_id: str
    new_id: str
    new_name: str


class MissingKey(Exception):
    """A required key is missing or has the wrong type."""


def require(doc: Mapping[str, Any], key: str, kind: type, *, none_ok: bool = False) -> Any:
    if key not in doc or (doc[key] is None and not none_ok):
        raise MissingKey(f"required key {key!r} is missing")
    value = doc[key]
    if value is None:
        return kind()
    if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
        raise MissingKey(f"key {key!r} is {type(value).__name__}, not {kind.__name__}")
    return value


def _text(doc: Mapping[str, Any], key: str) -> str:
    value = doc.get(key)
    return "" if value is None else str(value)


def _obj(doc: Mapping[str, Any], key: str) -> Mapping[str, Any]:
    value = doc.get(key)
    return value if isinstance(value, Mapping) else {}


def as_list(doc: Any) -> list[Any]:
    if doc is None:
        return []
    if not isinstance(doc, list):
        raise MissingKey("expected a JSON array")
    return doc


def _as_obj(item: Any, what: str) -> Mapping[str, Any]:
    if not isinstance(item, Mapping):
        raise MissingKey(f"a {what} entry is not a JSON object")
    return item


def parse_machine(item: Any) -> Machine:
    doc = _as_obj(item, "machine")
    ref, config = _obj(doc, "image_ref"), _obj(doc, "config")
    registry, repository = _text(ref, "registry"), _text(ref, "repository")
    return Machine(
        id=require(doc, "id", str), name=_text(doc, "name"), state=require(doc, "state", str),
        region=_text(doc, "region"), image_digest=_text(ref, "digest"),
        image_repository=f"{registry}/{repository}" if registry else repository,
        image_tag=_text(ref, "tag"),
        release_version=_text(_obj(config, "metadata"), "fly_release_version"),
        private_ip=_text(doc, "private_ip"), config_image=_text(config, "image"))


def parse_release(item: Any) -> Release:
    doc = _as_obj(item, "release")
    return Release(version=require(doc, "Version", int), status=_text(doc, "Status"),
                   stable=bool(doc.get("Stable", False)), image_ref=_text(doc, "ImageRef"),
                   created_at=_text(doc, "CreatedAt"), user_email=_text(_obj(doc, "User"), "Email"))


def parse_cluster(item: Any) -> Cluster:
    doc = _as_obj(item, "cluster")
    apps = doc.get("attached_apps") or []
    names = tuple(str(a.get("name", "")) if isinstance(a, Mapping) else str(a) for a in apps)
    return Cluster(id=require(doc, "id", str), name=_text(doc, "name"),
                   status=require(doc, "status", str), region=_text(doc, "region"),
                   plan=_text(doc, "plan"), attached_apps=names,
                   direct_ip=_text(_obj(doc, "ip_assignments"), "direct"),
                   version=2 if doc.get("version") == 2 or (
                       "version" not in doc and "engine" in doc) else 1)


def parse_backup(item: Any) -> Backup:
    doc = _as_obj(item, "backup")
    return Backup(id=require(doc, "id", str), status=require(doc, "status", str),
                  type=_text(doc, "type"), start=_text(doc, "start"), stop=_text(doc, "stop"))
