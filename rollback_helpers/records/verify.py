"""Is this record the one that was archived? Its SHA-256 against the one on its issue.

When a run's notebook is stored, the SHA-256 of the stored bytes is published in
the run's record comment on the deployment-record issue (``- **sha256:** `…```,
next to ``- **archive:** `<location>```). :func:`verify_record` reads the record,
finds that issue and run in the record's own ``rollback_runbook`` metadata, reads
the comment and compares. Each way it can fail has its own error (and exit code):
the bytes differ (:class:`RecordTampered`), there is no record
(:class:`RecordMissing`), nothing was published for it (:class:`RecordHashMissing`).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Protocol

from rollback_helpers.clients.github import GitHubClient
from rollback_helpers.clients.github_access import WRITE
from rollback_helpers.clients.github_comments import Comment
from rollback_helpers.errors import RecordHashMissing, RecordTampered
from rollback_helpers.records.archive import record_metadata, sha256_hex

MARKER = re.compile(r"<!-- rollback-runbook run=(?P<run_id>\S+) path=(?P<path>\S+) "
                    r"env=(?P<env>\S+) -->")
SHA_BULLET = re.compile(r"^- \*\*sha256:\*\* `?(?P<sha>[0-9a-f]{64})`?\s*$", re.MULTILINE)
ARCHIVE_BULLET = re.compile(r"^- \*\*archive:\*\* `?(?P<location>[^`\n]+?)`?\s*$", re.MULTILINE)


class CommentSource(Protocol):
    """Where the record comments are read (the GitHub client, or a cache in front of it)."""

    @property
    def repo(self) -> str: ...

    def list_comments(self, number: int) -> Sequence[Comment]: ...

    def permission(self, user: str) -> str: ...


@dataclass
class CachedComments:
    """Each issue's comments read once: history checks many records on few issues. The client
    is made on the first read, so a record that names no issue needs no GitHub token."""

    connect: Callable[[], GitHubClient]
    repo: str
    seen: dict[int, list[Comment]] = field(default_factory=dict)
    access: dict[str, str] = field(default_factory=dict)
    _client: GitHubClient | None = None

    @classmethod
    def of(cls, github: GitHubClient) -> CachedComments:
        """The comments and permissions of ``github``'s repository, read once each."""
        return cls(lambda: github, github.repo)

    def list_comments(self, number: int) -> list[Comment]:
        if number not in self.seen:
            self._client = self._client or self.connect()
            self.seen[number] = list(self._client.comments.list_comments(number))
        return self.seen[number]

    def permission(self, user: str) -> str:
        if user not in self.access:
            self._client = self._client or self.connect()
            self.access[user] = self._client.access.permission(user)
        return self.access[user]


@dataclass(frozen=True)
class Published:
    """What a run's record comment publishes about its archive."""

    sha256: str
    archive: str
    comment_url: str


@dataclass(frozen=True)
class Verified:
    location: str
    issue: int
    run_id: str
    sha256: str
    comment_url: str


def record_account(data: bytes) -> str:
    """The GitHub account the run wrote its record comment as (its metadata)."""
    return str(record_metadata(data).get("account") or "")


def record_ids(data: bytes) -> tuple[int | None, str]:
    """(record issue, run id) from a record's metadata block."""
    block = record_metadata(data)
    issue, run_id = block.get("record_issue"), block.get("run_id")
    return (issue if isinstance(issue, int) and not isinstance(issue, bool) else None,
            str(run_id) if run_id else "")


def published_for(github: CommentSource, number: int, run_id: str, location: str,
                  account: str = "") -> Published | None:
    """The run's first publication for this run (by its marker) or, without a run id, for
    this location; None when the issue has none.

    Only a comment whose first line is the marker, written by the run's ``account`` (its
    metadata; any author with write access when it names none) with write access to the
    repository counts: anyone can comment, and a comment by anyone else is never believed.
    A later publication by the same account that disagrees is :class:`RecordTampered`,
    naming both."""
    found: list[Published] = []
    for comment in github.list_comments(number):
        body, url = comment.body, comment.html_url
        marker = MARKER.match(body.lstrip())
        sha, archive = SHA_BULLET.search(body), ARCHIVE_BULLET.search(body)
        if marker is None or sha is None:
            continue
        mine = marker["run_id"] == run_id if run_id else (
            archive is not None and archive["location"] == location)
        if not mine or (account and comment.user.lower() != account.lower()):
            continue
        if github.permission(comment.user) not in WRITE:
            continue
        found.append(Published(sha["sha"], archive["location"] if archive else "", url))
    if not found:
        return None
    first = found[0]
    other = next((p for p in found[1:] if p.sha256 != first.sha256), None)
    if other is not None:
        raise RecordTampered(
            f"Issue #{number} publishes two SHA-256 for run {run_id or location}: {first.sha256} "
            f"({first.comment_url}) and later {other.sha256} ({other.comment_url}).",
            "The first publication is the run's; find out who changed the second, and treat "
            "any copy matching only it as untrusted.")
    return first


def verify_bytes(location: str, data: bytes, github: CommentSource) -> Verified:
    """Compare ``data`` (read from ``location``) with the SHA-256 published on its issue."""
    issue, run_id = record_ids(data)
    if issue is None:
        raise RecordHashMissing(
            f"The record {location} names no deployment-record issue in its metadata, so no "
            "published SHA-256 can be found for it.",
            "A dry run, or a run that failed before its record comment was posted, has none; "
            "such a record cannot be verified.")
    where = f"#{issue} in {github.repo}"
    published = published_for(github, issue, run_id, location, record_account(data))
    if published is None:
        raise RecordHashMissing(
            f"No SHA-256 is published for the record {location} (run {run_id or '?'}) on "
            f"issue {where}.",
            f"Open issue {where}: the run's record comment should carry `- **sha256:**` next "
            "to its archive. Without it this record cannot be verified.")
    actual = sha256_hex(data)
    if actual != published.sha256:
        raise RecordTampered(
            f"The record {location} has changed since it was archived: its SHA-256 is "
            f"{actual}, issue {where} publishes {published.sha256} ({published.comment_url}).",
            "Treat this copy as untrusted; find the original (the store's versions or "
            "backups) and say so on the issue.")
    return Verified(location, issue, run_id, actual, published.comment_url)
