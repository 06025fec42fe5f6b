"""Publishing a stored record on its run comment, when the run's own final edit could
not reach GitHub (``rollback-runbook publish-record``).

It checks against what is already published (:mod:`rollback_helpers.records.verify`)
and edits the run comment as the run's end would have
(:func:`rollback_helpers.run.closing.final_edit`), so it lives with the live run.
"""

from __future__ import annotations

from pathlib import Path

from rollback_helpers.clients.github import GitHubClient
from rollback_helpers.errors import RecordHashMissing, RecordTampered, outcome_of
from rollback_helpers.records.archive import record_metadata, sha256_hex
from rollback_helpers.records.verify import (
    CachedComments,
    published_for,
    record_account,
    record_ids,
)
from rollback_helpers.run.closing import Closing, final_edit


def publish_record(github: GitHubClient, location: str, data: bytes) -> str:
    """Publish a stored record on its run's record comment, as the run's final edit would
    have (state, exit code, archive, SHA-256), when that edit could not reach GitHub.

    Only where nothing is published for the run yet: a comment that already publishes
    this record's SHA-256 is left as it is, and one that publishes another is never
    overwritten (:class:`RecordTampered`), so publishing cannot hide a changed record."""
    issue, run_id = record_ids(data)
    block = record_metadata(data)
    if issue is None or not run_id:
        raise RecordHashMissing(
            f"The record {location} names no deployment-record issue or run in its metadata: "
            "there is no record comment to publish it on.",
            "A dry run, or a run that failed before its record comment was posted, has none.")
    digest, where = sha256_hex(data), f"#{issue} in {github.repo}"
    published = published_for(CachedComments.of(github), issue, run_id, location,
                              record_account(data))
    if published is not None and published.sha256 == digest:
        return f"Already published: issue {where} carries this record's SHA-256 ({digest})."
    if published is not None:
        raise RecordTampered(
            f"Issue {where} already publishes {published.sha256} for run {run_id} "
            f"({published.comment_url}), not {digest}, the SHA-256 of {location}.",
            "Nothing was changed. This is not the record the run published: check it with "
            "`rollback-runbook verify-record`, and find the one the comment names.")
    exit_code = int(str(block.get("exit_code", 1)))
    closing = Closing(run_id, str(block.get("path", "")), str(block.get("env", "")),
                      exit_code, outcome_of(exit_code),
                      bool(block.get("dry_run")), Path(location), error=str(block.get("error") or ""),
                      failed_step=str(block.get("failed_step") or ""),
                      last_step=str(block.get("last_step") or ""), location=location,
                      sha256=digest)
    edit = final_edit(github, issue, closing)
    if edit.status == "no comment":
        raise RecordHashMissing(f"{edit.line} The record {location} cannot be published there.",
                                f"Open issue {where}: the run's comment was deleted or never "
                                "posted.")
    return edit.line
