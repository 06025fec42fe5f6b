"""A live run as a team's operation: the environment lock and the run's record comment.

Kernel side (:class:`Lifecycle`, one per run, reached as ``RunContext.lifecycle``):
the lock is taken before anything changes (a live headless run: when it starts;
an interactive one: when the plan is approved), renewed during long waits and
released when the run ends; the record comment is posted before the first change
and edited as the run goes on.

Command-line side (:func:`close_run`): after papermill returns — whatever
happened to the kernel — the record comment gets its final edit (state, exit
code, last step, archive, SHA-256, how to resume) and the lock is released if
this run still holds it.
"""

from __future__ import annotations

import hashlib
import os
import shlex
import socket
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from rollback_helpers.clients.github import GitHubClient
from rollback_helpers.clients.github_comments import Comment
from rollback_helpers.clock import Clock, utc_iso
from rollback_helpers.errors import GitHubError, RollbackError
from rollback_helpers.run.lock import EnvironmentLock, Lease, holder_gone, machine_id
from rollback_helpers.run.notebook_io import read_notebook
from rollback_helpers.run.record_comment import (
    FoundRun,
    RecordComment,
    RunRecord,
    marker,
    own_runs,
    parse_comment,
    previous_runs,
    render_comment,
)
from rollback_helpers.secrets import redact
from rollback_helpers.ui.display import METADATA_KEY, Report

if TYPE_CHECKING:
    from rollback_helpers.domain.config import RunbookConfig

@dataclass
class Lifecycle:
    """The lock and the record comment of one run (kernel side)."""

    github: GitHubClient
    path: str
    env: str
    run_id: str
    operator: str
    clock: Clock
    ttl: float
    log: Callable[[str], None]
    holder_pid: int = field(default_factory=os.getppid)
    lock: EnvironmentLock | None = None
    lease: Lease | None = None
    taken_over: Lease | None = None
    record: RecordComment | None = None
    last_renewal: float = 0.0
    ignored: list[FoundRun] = field(default_factory=list)  # markers written by anyone else

    def account(self) -> str:
        """The account the runbook runs as (the token's login): only its comments count."""
        return self.github.login()

    def _lock(self) -> EnvironmentLock:
        if self.lock is None:
            self.lock = EnvironmentLock(self.github, self.env, clock=self.clock, ttl=self.ttl)
        return self.lock

    def held_by_other(self) -> Lease | None:
        """The lease someone holds on this environment (read only: what a dry run shows)."""
        lease = self._lock().held()
        return lease if lease is not None and lease.run_id != self.run_id else None

    def acquire(self, *, break_lock: str = "") -> Lease:
        """Take the environment's lease, or raise :class:`LockHeld` naming the holder.

        A lease whose holder ran on this machine and whose process is gone (a crash)
        is handed over to this run at once, and that is recorded in the lease
        (``broken_from``), the timeline and the record comment; any other holder's
        lease waits for its expiry and ``break_lock``."""
        now = utc_iso(self.clock.now())
        host = socket.gethostname()
        mine = Lease(env=self.env, holder=f"{self.operator}@{host}", run_id=self.run_id,
                     path=self.path, started_at=now, expires_at="", host=host,
                     machine_id=machine_id(), pid=self.holder_pid, account=self.account())
        lock = self._lock()
        current = lock.held()
        crashed = current is not None and current.run_id != self.run_id \
            and holder_gone(current)
        why = break_lock or (f"the holder's process is gone ({current.holder}): a crashed run "
                             "on this machine" if current is not None and crashed else "")
        if current is not None and crashed and current.live(self.clock.now()):
            lock.acquire(replace(mine, run_id=current.run_id))  # that run's lease, renewed
            self.lease = lock.update(
                run_id=self.run_id, holder=mine.holder, path=self.path, started_at=now,
                workflow_run_url="", pid=mine.pid, account=mine.account,
                broken_from=f"run {current.run_id} of {current.holder} "
                f"(since {current.started_at}); reason: {why}")
        else:
            self.lease = lock.acquire(mine, break_lock=why)
        if current is not None and self.lease.broken_from:
            self.taken_over = current
            self.log(f"lock of {self.env} taken over from {current.holder} (run "
                     f"{current.run_id}): {why}")
        self.last_renewal = self.clock.now()
        self.log(f"lock of {self.env} taken (run {self.run_id}, lease {self.ttl:.0f}s)")
        return self.lease

    def keep_alive(self) -> None:
        """Renew the lease during a long wait, once two thirds of it have passed (a third of it
        is left for the renewal to get through): one renewal per ``2 × ttl / 3`` of waiting."""
        if self.lease is None or self.clock.now() - self.last_renewal < 2 * self.ttl / 3:
            return
        try:
            self.lease = self._lock().renew()
            self.last_renewal = self.clock.now()
        except RollbackError as exc:
            self.log(f"lock of {self.env} not renewed: {exc.what}")

    def note_on_lock(self, **fields: str) -> None:
        if self.lease is not None:
            try:
                self.lease = self._lock().update(**fields)
            except RollbackError as exc:
                self.log(f"lock of {self.env} not updated: {exc.what}")

    def release(self) -> bool:
        if self.lease is None:
            return False
        try:
            self._lock().release()
        except RollbackError as exc:
            self.log(f"lock of {self.env} not released here ({exc.what}); the command line "
                     "releases it when the run ends")
            return False
        self.lease = None
        self.log(f"lock of {self.env} released")
        return True

    # -- the record comment --------------------------------------------------------
    def previous(self, numbers: list[int]) -> list[FoundRun]:
        """Earlier runs of this path on this environment, newest first (from their comments).

        Only comments the runbook's own account wrote count; one by anyone else that carries
        a marker is kept in ``ignored`` (and the timeline), for the step to show."""
        found = [run for run in previous_runs(self.github, numbers, path=self.path, env=self.env)
                 if run.record.run_id != self.run_id or not run.by(self.account())]
        own, foreign = own_runs(found, self.account())
        for run in foreign:
            if run not in self.ignored:
                self.ignored.append(run)
                self.log(run.ignored())
        return [run for run in own if run.record.run_id != self.run_id]

    def post_record(self, number: int, record: RunRecord) -> Report:
        """Post this run's record comment on issue ``number`` (before anything changes)."""
        if self.taken_over is not None:
            record = replace(record, lock=f"taken over from {self.taken_over.holder} (run "
                             f"{self.taken_over.run_id})")
        self.record = RecordComment(self.github, number, record, log=self.log,
                                    now=lambda: utc_iso(self.clock.now())).post()
        report = Report(f"Run recorded on #{number}").fact("record comment", self.record.html_url)
        report.fact("state", self.record.record.state)
        report.metadata = {METADATA_KEY: {"record_comment": self.record_block()}}
        return report

    def update_record(self, **changes: str) -> None:
        if self.record is not None:
            self.record.update(**changes)

    def record_block(self) -> dict[str, Any] | None:
        """Where this run's record comment is, as the notebook's metadata names it."""
        if self.record is None:
            return None
        return {"issue": self.record.number, "comment_id": self.record.comment_id,
                "url": self.record.html_url, "account": self.account()}

    def close(self, closing: Closing) -> list[str]:
        """The command line's end of a run, made from the kernel (a walkthrough's Finish): the
        same final edit of the record comment and release of the lock; lines to show."""
        lines = close_run(self.github, self._lock(), closing)
        self.lease = None
        return lines


# -- the command line's side, after the notebook ----------------------------------------
@dataclass(frozen=True)
class Closing:
    """What the command line knows when the notebook has ended."""

    run_id: str
    path: str
    env: str
    exit_code: int
    outcome: str
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
            return close_run(github, lock, closing)
        finally:
            backends.close()
    except RollbackError as exc:
        return [f"The record comment and lock of run {closing.run_id} were not finished: "
                f"{exc.what}"]


def close_run(github: GitHubClient, lock: EnvironmentLock, closing: Closing) -> list[str]:
    """Final edit of the record comment and release of the lock; lines to print."""
    lines: list[str] = []
    number = _record_issue(closing)
    if number is not None:
        lines.append(_final_edit(github, number, closing))
    try:
        lease = lock.held()
        if lease is not None and lease.run_id == closing.run_id:
            lock.acquire(lease)  # the same run: the lease is this object's now
            lock.release()
            lines.append(f"Lock of {closing.env} released.")
    except RollbackError as exc:
        lines.append(f"The lock of {closing.env} could not be released: {exc.what} "
                     "(it expires on its own).")
    return lines


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


def final_state(current: RunRecord, closing: Closing) -> RunRecord:
    """The record as the run ended: its state, exit code, last step, archive, SHA-256."""
    if closing.exit_code == 0:
        state = current.state if current.ended else "succeeded"
        next_step = current.next_step
    elif closing.outcome == "interrupted":
        state = "interrupted"
        next_step = current.next_step if current.next_step.startswith("carried on by") else (
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
    account = github.login()
    comment_id = closing.comment_id
    if comment_id is None and closing.record_issue is None:  # the archive names it
        where = _record_location(closing.archive)
        saved = where.get("comment_id") if where is not None else None
        comment_id = saved if isinstance(saved, int) and not isinstance(saved, bool) else None
    wanted = marker(closing.run_id, closing.path, closing.env)
    if comment_id is not None:
        found = github.get_comment(comment_id)
        if found is not None and found.user.lower() == account.lower() and \
                found.body.lstrip().startswith(wanted):
            return found
    return github.find_comment(number, wanted, author=account)


def final_edit(github: GitHubClient, number: int, closing: Closing) -> str:
    """Edit the run's record comment on issue ``number`` into its final state (GitHubError
    if GitHub does not take it); the line to show."""
    comment = own_comment(github, number, closing)
    current = parse_comment(comment.body) if comment is not None else None
    if comment is None or current is None:
        return (f"{NO_COMMENT} of run {closing.run_id} by {github.login()} found on "
                f"#{number}.")
    final = final_state(current, closing)
    github.edit_comment(comment.id, render_comment(final))
    return f"Record comment on #{number}: {final.state} ({comment.html_url})"


NO_COMMENT = "No record comment"


def _final_edit(github: GitHubClient, number: int, closing: Closing) -> str:
    try:
        return final_edit(github, number, closing)
    except GitHubError as exc:
        return f"{EDIT_FAILED} on #{number} could not be updated: {exc.what}" + (
            f" The record is stored at {closing.location} (sha256 {closing.sha256}); once "
            f"GitHub answers, publish it there: `{closing.publish_command()}`."
            if closing.sha256 else "")


EDIT_FAILED = "The record comment"


def edit_failed(line: str) -> bool:
    """Whether a line of :func:`close_run` says the final edit did not reach GitHub."""
    return line.startswith(EDIT_FAILED) and " could not be updated: " in line


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
        current.exit_code == str(closing.exit_code) and current.state == \
        final_state(current, closing).state
