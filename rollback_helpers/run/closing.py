"""The end of a live run, as the command line makes it after the notebook (and a walkthrough's
Finish from its kernel): whatever happened to the kernel, the run's record comment gets its
final edit (state, exit code, last step, archive, SHA-256, how to resume) and the
environment lock is released if this run still holds it. :func:`close_run` says what it
did as a :class:`Closed` result, never as text to be parsed back.
"""

from __future__ import annotations

import hashlib
import shlex
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from rollback_helpers.clients.github import Comment, GitHubClient
from rollback_helpers.errors import GitHubError, OutcomeName, RollbackError
from rollback_helpers.records.notebook_io import read_notebook
from rollback_helpers.run.lock import EnvironmentLock
from rollback_helpers.run.run_comment import RunComment, marker, parse_comment, render_comment
from rollback_helpers.secrets import redact
from rollback_helpers.ui.display import METADATA_KEY

if TYPE_CHECKING:
    from rollback_helpers.domain.config import RunbookConfig

EditStatus = Literal["edited", "no comment", "failed"]


@dataclass(frozen=True)
class Closing:
    """What the command line knows when the notebook has ended."""

    run_id: str
    path: str
    env: str
    exit_code: int
    outcome: OutcomeName
    dry_run: bool
    archive: Path              # the notebook as papermill left it (a working copy)
    error: str = ""
    failed_step: str = ""
    last_step: str = ""
    resume_command: str = ""
    location: str = ""         # where the record was stored ("": ``archive`` is the record)
    sha256: str = ""           # the SHA-256 of exactly the bytes stored there
    sandbox_dir: str = ""      # a drill's world (where its GitHub is), for the commands shown
    record_issue: int | None = None  # the record comment's issue, if not read from ``archive``
    comment_id: int | None = None    # the record comment itself, if not read from ``archive``

    def publish_command(self) -> str:
        """The command that publishes the stored record on its comment, once GitHub answers."""
        extra = ["--sandbox-dir", self.sandbox_dir] if self.sandbox_dir else []
        return shlex.join(["rollback-runbook", "publish-record", self.location, *extra])


def finish_run(closing: Closing, *, backend: str, sandbox_dir: str | None,
               cfg: RunbookConfig | None = None) -> list[str]:
    """The command line's end of a live run, whatever happened to its kernel (or to its
    command, for a recovery): lines to print. ``cfg``: the run's configuration, if not this
    process's."""
    from rollback_helpers.domain.config import load_config
    from rollback_helpers.run.backends import open_backends

    try:
        cfg = cfg or load_config()
        backends = open_backends(backend, sandbox_dir=sandbox_dir, cfg=cfg)
        try:
            github = backends.github(cfg)
            lock = EnvironmentLock(github, closing.env, clock=backends.clock, ttl=cfg.lock_ttl)
            return close_run(github, lock, closing).lines
        finally:
            backends.close()
    except RollbackError as exc:
        return [f"The record comment and lock of run {closing.run_id} were not finished: "
                f"{exc.what}"]


@dataclass(frozen=True)
class FinalEdit:
    """What the final edit of the record comment did, and the line that tells it."""

    status: EditStatus
    line: str


@dataclass(frozen=True)
class Closed:
    """What :func:`close_run` did: the record comment's final edit (None when the run has no
    record comment to look for) and the lock's release (its line, "" when not held)."""

    edit: FinalEdit | None = None
    lock: str = ""

    @property
    def edit_failed(self) -> bool:
        """Whether the final edit did not reach GitHub (publish the record later)."""
        return self.edit is not None and self.edit.status == "failed"

    @property
    def lines(self) -> list[str]:
        return [line for line in (self.edit.line if self.edit else "", self.lock) if line]


def close_run(github: GitHubClient, lock: EnvironmentLock, closing: Closing) -> Closed:
    """Final edit of the record comment and release of the lock."""
    number = _record_issue(closing)
    edit = _final_edit(github, number, closing) if number is not None else None
    try:
        lease = lock.held()
        if lease is None or lease.run_id != closing.run_id:
            return Closed(edit)
        lock.acquire(lease)  # the same run: the lease is this object's now
        lock.release()
        return Closed(edit, f"Lock of {closing.env} released.")
    except RollbackError as exc:
        return Closed(edit, f"The lock of {closing.env} could not be released: {exc.what} "
                            "(it expires on its own).")


def _record_issue(closing: Closing) -> int | None:
    if closing.record_issue is not None:
        return closing.record_issue
    where = _record_location(closing.archive)
    return int(where["issue"]) if where is not None else None


def _record_location(archive: Path) -> dict[str, Any] | None:
    if not archive.is_file():
        return None
    found = None
    for cell in read_notebook(archive).cells:
        for output in cell.get("outputs", []) if cell.cell_type == "code" else []:
            block = output.get("metadata", {}).get(METADATA_KEY)
            if isinstance(block, dict) and isinstance(block.get("record_comment"), dict):
                found = dict(block["record_comment"])
    return found


def final_state(current: RunComment, closing: Closing) -> RunComment:
    """The record as the run ended: its state, exit code, last step, archive, SHA-256."""
    if closing.exit_code == 0:
        state = current.state if current.ended else "succeeded"
        next_step = current.next_step
    elif closing.outcome == "interrupted":
        state = "interrupted"
        next_step = current.next_step if current.next_step.startswith("carried on by") or \
            not closing.resume_command else (
            f"re-run `{closing.resume_command}`: it finds this comment and carries on "
            "(watches the dispatched run, or uses the restored cluster) instead of acting twice")
    else:
        state = "failed"
        next_step = closing.error.partition("Next:")[2].strip() or \
            "read the failing step in the archive"
    archive, digest = closing.location, closing.sha256
    if not archive:  # the caller did not store it: the notebook where it lies
        archive = str(closing.archive)
        digest = hashlib.sha256(closing.archive.read_bytes()).hexdigest() \
            if closing.archive.is_file() else ""
    return replace(current, state=state, exit_code=str(closing.exit_code),
                   last_step=closing.last_step or current.last_step,
                   error=redact(closing.error.partition("\nNext:")[0]) if closing.exit_code
                   else "", next_step=next_step,
                   archive=archive, sha256=digest)


def own_comment(github: GitHubClient, number: int, closing: Closing) -> Comment | None:
    """The run's record comment: by the id the run saved, or else by its marker, and only if
    the runbook's own account wrote it (a copied marker never receives the run's edits)."""
    account = github.access.login()
    comment_id = closing.comment_id
    if comment_id is None and closing.record_issue is None:  # the archive names it
        where = _record_location(closing.archive)
        saved = where.get("comment_id") if where is not None else None
        comment_id = saved if isinstance(saved, int) and not isinstance(saved, bool) else None
    wanted = marker(closing.run_id, closing.path, closing.env)
    if comment_id is not None:
        found = github.comments.get_comment(comment_id)
        if found is not None and found.user.lower() == account.lower() and \
                found.body.lstrip().startswith(wanted):
            return found
    return github.comments.find_comment(number, wanted, author=account)


def final_edit(github: GitHubClient, number: int, closing: Closing) -> FinalEdit:
    """Edit the run's record comment on issue ``number`` into its final state (GitHubError
    if GitHub does not take it)."""
    comment = own_comment(github, number, closing)
    current = parse_comment(comment.body) if comment is not None else None
    if comment is None or current is None:
        return FinalEdit("no comment", f"No record comment of run {closing.run_id} by "
                         f"{github.access.login()} found on #{number}.")
    final = final_state(current, closing)
    github.comments.edit_comment(comment.id, render_comment(final))
    return FinalEdit("edited", f"Record comment on #{number}: {final.state} ({comment.html_url})")


def _final_edit(github: GitHubClient, number: int, closing: Closing) -> FinalEdit:
    try:
        return final_edit(github, number, closing)
    except GitHubError as exc:
        return FinalEdit("failed", f"The record comment on #{number} could not be updated: "
                         f"{exc.what}" + (
            f" The record is stored at {closing.location} (sha256 {closing.sha256}); once "
            f"GitHub answers, publish it there: `{closing.publish_command()}`."
            if closing.sha256 else ""))


def ended_before(github: GitHubClient, closing: Closing) -> bool:
    """Whether the run's record comment already shows this end (an earlier final edit made it,
    with an archive's SHA-256): a repeated Finish then tells nobody again."""
    number = _record_issue(closing)
    if number is None:
        return False
    try:
        comment = own_comment(github, number, closing)
    except GitHubError:
        return False
    current = parse_comment(comment.body) if comment is not None else None
    return current is not None and bool(current.sha256) and \
        current.exit_status == closing.exit_code and current.state == \
        final_state(current, closing).state
