"""Which image to roll back to: the newest usable record older than what runs now.

Resolution reads records newest first and stops as soon as it knows the answer,
so a long history costs only the few newest issues. What runs now (``flyctl
status``), not the newest issue, is the reference: when they disagree, that is
drift, and resolution stops unless the operator names the target.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass

from rollback_helpers.domain.deployments import BadRecord, DeploymentRecord, Record
from rollback_helpers.domain.images import ImageRef, parse_digest, parse_image_ref
from rollback_helpers.errors import (
    DriftDetected,
    ImageRefError,
    NoRollbackTarget,
    PreconditionFailed,
    RecordError,
)
from rollback_helpers.hints import Option, hint


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
                        hint(f"Fix the issue body ({record.url}) so its image is a pinned "
                             "repo@sha256:<64 hex>, then re-run; or, once you know the right "
                             f"image, re-run with ", Option("target_digest", "sha256:<64 hex>"), "."))
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
        hint(_skipped_hint(reader), "Name a known-good image with ",
             Option("target_digest", "sha256:<64 hex>"),
             " (confirm it with the team), or use Path B if the database is the problem."))


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
            hint("Check the digest. If you have confirmed it is the image to run (e.g. in the "
                 "registry), re-run with ", Option("allow_unrecorded_target", True), "."))
    return reader.result(running, bad, None, _target_image(target_digest, None, repository),
                         explicit=True)


def _as_digest(value: str, *, what: str) -> str:
    if value.startswith("sha256:"):
        return parse_digest(value, what=what)
    return parse_image_ref(value, what=what).digest


def _target_image(target_digest: str, record: DeploymentRecord | None,
                  repository: str | None) -> ImageRef:
    if not target_digest.startswith("sha256:"):
        given = parse_image_ref(target_digest, what="target_digest")
        expected = record.image.repository if record is not None else repository
        if expected and given.repository != expected:  # evil.io/x@<a recorded digest>
            raise ImageRefError(
                f"target_digest names the repository {given.repository}, but the app's images "
                f"come from {expected}: the digest alone does not make another registry's image "
                "the same image.",
                f"Give the digest alone (sha256:<64 hex>) or as {expected}@sha256:<64 hex>.")
        return given
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
        hint("Someone deployed outside the pipeline or a deploy failed half-way: confirm what "
             "runs (`flyctl status`), then re-run with ", Option("target_digest", "sha256:<64 hex>"),
             " to name the target explicitly."))


def _nothing_usable(reader: _Reader, labels: Sequence[str] | None) -> NoRollbackTarget:
    env = reader.env
    if not reader.examined:
        wanted = " and ".join(labels or ("deployment-record", f"env:{env}"))
        return NoRollbackTarget(
            f"There are no deployment records labelled {wanted} for env {env}.",
            hint("Check the repository and record_labels in the configuration; without "
                 "records, re-run with ", Option("target_digest", "sha256:<64 hex>"), " and ",
                 Option("allow_unrecorded_target", True), "."))
    return NoRollbackTarget(
        f"None of the {len(reader.examined)} deployment records for {env} is usable.",
        hint(_skipped_hint(reader), "Fix the records, or re-run with ",
             Option("target_digest", "sha256:<64 hex>"), "."))


def _skipped_hint(reader: _Reader) -> str:
    if not reader.skipped:
        return ""
    shown = "; ".join(f"#{n}: {why}" for n, why in reader.skipped[:5])
    more = f" (and {len(reader.skipped) - 5} more)" if len(reader.skipped) > 5 else ""
    return f"Passed over: {shown}{more}. "


# ---------------------------------------------------------------- display
