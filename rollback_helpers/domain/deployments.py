"""Deployment records: read them from issues.

The format is the user's pipeline's, not ours (``docs/records.md``), so reading is
lenient about layout and strict about values: a key written as a bullet, bold,
``key = value``, a table row or inside a fenced yaml/json block is found; an image
that is not a pinned digest, or a key given twice with different values, turns the
issue into a :class:`BadRecord` with the reason. Nothing is guessed or repaired.

Which record to roll back to is :mod:`rollback_helpers.domain.rollback_target`.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from rollback_helpers.domain.images import ImageRef, parse_image_ref
from rollback_helpers.errors import (
    ImageRefError,
)

FIELDS = ("env", "app", "image", "previous_image", "git_sha", "cluster_id", "backup_id",
          "workflow_run", "deployed_by", "deployed_at")
_ALIASES = {"environment": "env"}
_BACKUP_ID = re.compile(r"backup_[0-9]+_[0-9a-f]+")
_CLUSTER_ID = re.compile(r"[a-z0-9]{8,32}")
_MARKUP = "*_`\"'"
# `- key: value`, `**Key:** value`, `Key = value`, `"key": "value",` (one per line).
_KEY_LINE = re.compile(
    r"^\s*(?:>\s*)*(?:[-*+]\s+|\d+[.)]\s+|#{1,6}\s+)?"
    r"(?P<key>[*_`\"']*[A-Za-z][A-Za-z0-9 _-]{0,60}?[*_`\"']*)\s*[:=](?P<value>.*)$")
_FENCE = re.compile(r"^\s*(```|~~~)\s*(?P<lang>[A-Za-z0-9_-]*)")


class IssueLike(Protocol):
    """What :func:`record_from_issue` reads from ``rollback_helpers.clients.github.Issue``."""

    @property
    def number(self) -> int: ...
    @property
    def body(self) -> str: ...
    @property
    def labels(self) -> Sequence[str]: ...
    @property
    def created_at(self) -> str: ...
    @property
    def html_url(self) -> str: ...


@dataclass(frozen=True)
class DeploymentRecord:
    number: int
    env: str
    app: str
    image: ImageRef
    previous_image: ImageRef | None
    git_sha: str
    cluster_id: str  # "" when the record has none
    backup_id: str  # "" for a non-mutating deploy: fine for Path A, not for Path B
    workflow_run: str
    deployed_by: str
    deployed_at: str
    created_at: str
    url: str
    rolled_back: bool


@dataclass(frozen=True)
class BadRecord:
    number: int
    reason: str
    created_at: str
    url: str


Record = DeploymentRecord | BadRecord


class ConflictingField(ValueError):
    """A record gives one key two different values; which one is meant is not ours to guess."""

    def __init__(self, key: str, first: str, second: str) -> None:
        self.key, self.values = key, (first, second)
        super().__init__(f"The {key} field is given twice with different values: "
                         f"{first!r} and {second!r}.")


# ---------------------------------------------------------------- parsing


def parse_record_fields(body: str) -> dict[str, str]:
    """The record's known fields (see ``FIELDS``) found anywhere in ``body``.

    Keys are lower-cased and snake_cased; values lose surrounding backticks, quotes
    and bold. Empty values count as absent. Raises :class:`ConflictingField` (a
    ``ValueError``) when a key appears twice with different values.
    """
    found: dict[str, str] = {}
    for key, value in _key_values(body.replace("\r\n", "\n").replace("\r", "\n")):
        key = _normalise_key(key)
        if key not in FIELDS or not value:
            continue
        if found.setdefault(key, value) != value:
            raise ConflictingField(key, found[key], value)
    return found


def _key_values(text: str) -> Iterator[tuple[str, str]]:
    lines = text.split("\n")
    i = 0
    while i < len(lines):
        fence = _FENCE.match(lines[i])
        if fence and fence.group("lang").lower() == "json":
            end = next((j for j in range(i + 1, len(lines))
                        if lines[j].strip().startswith(fence.group(1))), len(lines))
            parsed = _json_object("\n".join(lines[i + 1:end]))
            if parsed is not None:
                yield from _flatten(parsed)
                i = end + 1
                continue
        yield from _line_key_values(lines[i])
        i += 1


def _json_object(text: str) -> dict[str, Any] | None:
    try:
        value = json.loads(text)
    except ValueError:
        return None  # not JSON after all: its lines are read like any others
    return value if isinstance(value, dict) else None


def _flatten(obj: dict[str, Any]) -> Iterator[tuple[str, str]]:
    for key, value in obj.items():
        if isinstance(value, dict):
            yield from _flatten(value)
        elif isinstance(value, list):
            # Kept joined, so "two images in one field" is reported, not resolved.
            yield str(key), ",".join(_json_scalar(v) for v in value)
        elif value is not None:
            yield str(key), _clean_value(_json_scalar(value))


def _json_scalar(value: Any) -> str:
    return value if isinstance(value, str) else json.dumps(value)  # True -> "true"


def _line_key_values(line: str) -> Iterator[tuple[str, str]]:
    stripped = line.strip()
    if stripped.startswith("|"):
        cells = [c.strip() for c in stripped.strip("|").split("|")]
        if len(cells) >= 2:
            yield cells[0].strip(_MARKUP).strip(), _clean_value(cells[1])
        return
    match = _KEY_LINE.match(line)
    if not match:
        return
    raw_key, value = match.group("key"), match.group("value").strip()
    key = raw_key.strip(_MARKUP)
    opened = raw_key[:len(raw_key) - len(raw_key.lstrip(_MARKUP))]
    closed = raw_key[len(raw_key.rstrip(_MARKUP)):]
    unclosed = opened[len(closed):]  # `**Image:** x`: the bold closes after the colon
    if unclosed and value.startswith(unclosed[::-1]):
        value = value[len(unclosed):]
    yield key, _clean_value(value)


def _normalise_key(key: str) -> str:
    key = re.sub(r"(?<=[a-z0-9])(?=[A-Z])", "_", key.strip())  # previousImage -> previous_Image
    key = re.sub(r"[\s\-]+", "_", key.lower())
    return _ALIASES.get(key, key)


def _clean_value(value: str) -> str:
    value = value.strip().removesuffix(",").strip()
    changed = True
    while changed:
        changed = False
        for wrap in ("**", "__", "`", '"', "'"):
            if len(value) >= 2 * len(wrap) and value.startswith(wrap) and value.endswith(wrap):
                value, changed = value[len(wrap):-len(wrap)].strip(), True
    return value


# ---------------------------------------------------------------- one issue -> one record


class _Invalid(ValueError):
    """A field that is present but not usable; becomes a BadRecord's reason."""


def record_from_issue(issue: IssueLike, *, env: str,
                      rolled_back_label: str = "rolled-back") -> DeploymentRecord | BadRecord:
    """The deployment record in ``issue``, or a :class:`BadRecord` saying why it is not one."""
    def bad(reason: str) -> BadRecord:
        return BadRecord(issue.number, reason, issue.created_at, issue.html_url)

    if getattr(issue, "is_pull_request", False) or getattr(issue, "pull_request", None):
        return bad("a pull request, not a deployment record")
    try:
        fields = parse_record_fields(issue.body or "")
        return _build_record(issue, fields, env=env, rolled_back_label=rolled_back_label)
    except (ConflictingField, ImageRefError, _Invalid) as exc:
        return bad(exc.what if isinstance(exc, ImageRefError) else str(exc))


def _build_record(issue: IssueLike, fields: dict[str, str], *, env: str,
                  rolled_back_label: str) -> DeploymentRecord:
    if "image" not in fields:
        raise _Invalid("No image field: no line like `image: <repo>@sha256:<64 hex>` "
                       "says which image was deployed.")
    image = parse_image_ref(fields["image"], what="image field")
    previous = fields.get("previous_image")
    previous_image = parse_image_ref(previous, what="previous_image field") if previous else None
    _check_loose_fields(fields, env)
    labels = {label.casefold() for label in issue.labels}
    return DeploymentRecord(
        number=issue.number, env=env, app=fields.get("app", ""), image=image,
        previous_image=previous_image, git_sha=fields.get("git_sha", ""),
        cluster_id=fields.get("cluster_id", ""), backup_id=fields.get("backup_id", ""),
        workflow_run=fields.get("workflow_run", ""), deployed_by=fields.get("deployed_by", ""),
        deployed_at=fields.get("deployed_at", ""), created_at=issue.created_at,
        url=issue.html_url, rolled_back=rolled_back_label.casefold() in labels)


def _check_loose_fields(fields: dict[str, str], env: str) -> None:
    body_env = fields.get("env")
    if body_env is not None and body_env.casefold() != env.casefold():
        raise _Invalid(f"The env field says {body_env!r}, but the issue is listed for {env!r}.")
    backup = fields.get("backup_id")
    if backup is not None and not _BACKUP_ID.fullmatch(backup):
        raise _Invalid(f"The backup_id field {backup!r} is not like backup_<digits>_<hex>.")
    cluster = fields.get("cluster_id")
    if cluster is not None and not _CLUSTER_ID.fullmatch(cluster):
        raise _Invalid(f"The cluster_id field {cluster!r} is not 8-32 lower-case letters "
                       "and digits (a Fly cluster id looks like gjpkdon1pn60yln4).")


def records_table(records: Iterable[Record]) -> list[dict[str, Any]]:
    """One plain row per record, for the table in the notebook."""
    return [_table_row(record) for record in records]


def _table_row(record: Record) -> dict[str, Any]:
    row = {"number": record.number, "created": record.created_at, "image": "", "previous": "",
           "git_sha": "", "backup_id": ""}
    if isinstance(record, BadRecord):
        return {**row, "status": f"bad: {record.reason}"}
    previous = record.previous_image.short if record.previous_image else ""
    return {**row, "image": record.image.short, "previous": previous, "git_sha": record.git_sha,
            "backup_id": record.backup_id,
            "status": "rolled-back" if record.rolled_back else "valid"}


class Replay(Iterable[Record]):
    """A lazy iterator that can be walked again from the start without refetching."""

    def __init__(self, source: Iterable[Record]) -> None:
        self._source = iter(source)
        self._seen: list[Record] = []

    def __iter__(self) -> Iterator[Record]:
        index = 0
        while True:
            if index < len(self._seen):
                yield self._seen[index]
            else:
                nxt = next(self._source, None)
                if nxt is None:
                    return
                self._seen.append(nxt)
                yield nxt
            index += 1
