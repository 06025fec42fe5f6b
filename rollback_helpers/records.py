"""Deployment records: read them from issues, and pick the image to roll back to.

The format is the user's pipeline's, not ours (``docs/records.md``), so reading is
lenient about layout and strict about values: a key written as a bullet, bold,
``key = value``, a table row or inside a fenced yaml/json block is found; an image
that is not a pinned digest, or a key given twice with different values, turns the
issue into a :class:`BadRecord` with the reason. Nothing is guessed or repaired.

Resolution reads records newest first and stops as soon as it knows the answer,
so a long history costs only the few newest issues.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from rollback_helpers.errors import (
    DriftDetected,
    ImageRefError,
    NoRollbackTarget,
    PreconditionFailed,
    RecordError,
)
from rollback_helpers.images import ImageRef, parse_digest, parse_image_ref

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
    """What :func:`record_from_issue` reads from ``rollback_helpers.github.Issue``."""

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


# ---------------------------------------------------------------- resolution


@dataclass(frozen=True)
class RollbackTarget:
    env: str
    running_digest: str
    bad_record: DeploymentRecord | None  # the newest record whose image is what runs now
    target: DeploymentRecord | None  # None only for an explicit, unrecorded target
    image: ImageRef  # what will be promoted
    explicit: bool  # the operator named target_digest
    examined: tuple[Record, ...]  # every record read, newest first
    skipped: tuple[tuple[int, str], ...]  # (issue number, why it was passed over)


class _Reader:
    """Walks the records lazily, remembering what it read and what it passed over."""

    def __init__(self, records: Iterable[Record], env: str, *, strict: bool) -> None:
        self._it, self.env, self.strict = iter(records), env, strict
        self.examined: list[Record] = []
        self.skipped: list[tuple[int, str]] = []

    def valid(self) -> Iterator[DeploymentRecord]:
        """Records usable at all: bad ones are noted in ``skipped`` and passed over."""
        for record in self._it:
            self.examined.append(record)
            if isinstance(record, BadRecord):
                if self.strict:  # it may be the deploy we must step over: never guess past it
                    raise RecordError(
                        f"Deployment record #{record.number} for {self.env} is malformed: "
                        f"{record.reason}",
                        f"Fix the issue body ({record.url}) so its image is a pinned "
                        "repo@sha256:<64 hex>, then re-run; or, once you know the right image, "
                        "name it with target_digest=.")
                self.skipped.append((record.number, f"bad record: {record.reason}"))
            elif record.env != self.env:
                self.skipped.append((record.number, f"a record for {record.env}, not {self.env}"))
            else:
                yield record

    def usable(self, running: str) -> Iterator[DeploymentRecord]:
        """Valid records that are neither labelled rolled-back nor the running image."""
        for record in self.valid():
            if record.rolled_back:
                self.skipped.append((record.number, "labelled rolled-back"))
            elif record.image.digest == running:
                self.skipped.append((record.number, "same image as running"))
            else:
                yield record

    def result(self, running: str, bad: DeploymentRecord | None, target: DeploymentRecord | None,
               image: ImageRef, *, explicit: bool) -> RollbackTarget:
        return RollbackTarget(self.env, running, bad, target, image, explicit,
                              tuple(self.examined), tuple(self.skipped))


def resolve_rollback_target(records: Iterable[Record], *, env: str, running_digest: str,
                            target_digest: str | None = None,
                            allow_unrecorded_target: bool = False,
                            repository: str | None = None,
                            record_labels: Sequence[str] | None = None) -> RollbackTarget:
    """The image to roll ``env`` back to, from its records (newest first), read lazily.

    ``running_digest`` is what Fly runs now. ``target_digest`` (``sha256:<hex>`` or
    ``repo@sha256:<hex>``) overrides the resolution; ``repository`` supplies the
    repository for a bare digest no record knows (with ``allow_unrecorded_target``);
    ``record_labels`` only name the labels in the "no records at all" message.
    """
    running = _as_digest(running_digest, what="running digest")
    # Resolving by the records stops at a malformed one; an operator-named target does not.
    reader = _Reader(records, env, strict=not target_digest)
    if target_digest:  # "" is a notebook parameter left empty: not given
        return _resolve_explicit(reader, running, target_digest,
                                 allow_unrecorded=allow_unrecorded_target, repository=repository)
    bad = _newest_current(reader)
    if bad is None:
        raise _nothing_usable(reader, record_labels)
    if bad.image.digest != running:
        raise _drift(env, bad, running)
    for record in reader.usable(running):
        return reader.result(running, bad, record, record.image, explicit=False)
    raise NoRollbackTarget(
        f"No rollback target for {env}: no record older than #{bad.number} (running "
        f"{bad.image.short}) has a different image and is not labelled rolled-back.",
        _skipped_hint(reader) + "Name a known-good image with target_digest=sha256:<64 hex> "
        "(confirm it with the team), or use Path B if the database is the problem.")


def _newest_current(reader: _Reader) -> DeploymentRecord | None:
    """The newest valid record not labelled rolled-back: it should be what runs."""
    for record in reader.valid():
        if record.rolled_back:
            reader.skipped.append((record.number, "labelled rolled-back"))
            continue
        return record
    return None


def _resolve_explicit(reader: _Reader, running: str, target_digest: str, *,
                      allow_unrecorded: bool, repository: str | None) -> RollbackTarget:
    digest = _as_digest(target_digest, what="target_digest")
    if digest == running:
        raise PreconditionFailed(
            f"{reader.env} is already running {digest[:19]}, the target_digest you named.",
            "Nothing to roll back to there: check `flyctl status` and name a different image, "
            "or leave target_digest empty to use the records.")
    bad: DeploymentRecord | None = None
    for record in reader.valid():
        if bad is None and not record.rolled_back and record.image.digest == running:
            bad = record
        if record.image.digest == digest:
            image = _target_image(target_digest, record, repository)
            return reader.result(running, bad, record, image, explicit=True)
    if not allow_unrecorded:
        raise RecordError(
            f"No deployment record for {reader.env} has the image {digest} "
            f"({len(reader.examined)} records read).",
            "Check the digest. If you have confirmed it is the image to run (e.g. in the "
            "registry), re-run with allow_unrecorded_target=True.")
    return reader.result(running, bad, None, _target_image(target_digest, None, repository),
                         explicit=True)


def _as_digest(value: str, *, what: str) -> str:
    if value.startswith("sha256:"):
        return parse_digest(value, what=what)
    return parse_image_ref(value, what=what).digest


def _target_image(target_digest: str, record: DeploymentRecord | None,
                  repository: str | None) -> ImageRef:
    if not target_digest.startswith("sha256:"):
        return parse_image_ref(target_digest, what="target_digest")
    if record is not None:
        return record.image  # a bare digest takes the repository its record names
    if not repository:
        raise ImageRefError(
            f"target_digest {target_digest} is in no record, so its repository is unknown.",
            "Give target_digest as <repository>@sha256:<64 hex>, or pass repository=.")
    return parse_image_ref(f"{repository}@{target_digest}", what="target image")


def _drift(env: str, newest: DeploymentRecord, running: str) -> DriftDetected:
    return DriftDetected(
        f"Drift on {env}: Fly runs {running[:19]}, but the newest deployment record "
        f"#{newest.number} says {newest.image.short}.\n"
        f"  running:     {running}\n  record #{newest.number}: {newest.image.digest}",
        "Someone deployed outside the pipeline or a deploy failed half-way: confirm what runs "
        "(`flyctl status`), then re-run with target_digest=sha256:<64 hex> to name the target "
        "explicitly.")


def _nothing_usable(reader: _Reader, labels: Sequence[str] | None) -> NoRollbackTarget:
    env = reader.env
    if not reader.examined:
        wanted = " and ".join(labels or ("deployment-record", f"env:{env}"))
        return NoRollbackTarget(
            f"There are no deployment records labelled {wanted} for env {env}.",
            "Check the repository and record_labels in the configuration; without records, "
            "name the image with target_digest= and allow_unrecorded_target=True.")
    return NoRollbackTarget(
        f"None of the {len(reader.examined)} deployment records for {env} is usable.",
        _skipped_hint(reader) + "Fix the records, or name the image with target_digest=.")


def _skipped_hint(reader: _Reader) -> str:
    if not reader.skipped:
        return ""
    shown = "; ".join(f"#{n}: {why}" for n, why in reader.skipped[:5])
    more = f" (and {len(reader.skipped) - 5} more)" if len(reader.skipped) > 5 else ""
    return f"Passed over: {shown}{more}. "


# ---------------------------------------------------------------- display


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
