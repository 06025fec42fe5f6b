"""A live run as a team's operation: the environment lock and the run's record comment.

Kernel side (:class:`Lifecycle`, one per run, reached as ``RunContext.lifecycle``):
the lock is taken before anything changes (a live headless run: when it starts;
an interactive one: when the plan is approved), renewed during long waits and
released when the run ends; the record comment is posted before the first change
and edited as the run goes on.

Command-line side (:mod:`.closing`): after papermill returns — whatever
happened to the kernel — the record comment gets its final edit and the lock is
released if this run still holds it; :meth:`Lifecycle.close` makes the same end
from the kernel (a walkthrough's Finish).
"""

from __future__ import annotations

import os
import socket
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import Any

from rollback_helpers.clients.github import GitHubClient
from rollback_helpers.clock import Clock, together, utc_iso
from rollback_helpers.errors import RollbackError
from rollback_helpers.run.closing import Closed, Closing, close_run
from rollback_helpers.run.lock import EnvironmentLock, Lease, holder_gone, machine_id
from rollback_helpers.run.run_comment import (
    FoundRun,
    PostedRunComment,
    RunComment,
    RunState,
    own_runs,
    previous_runs,
)
from rollback_helpers.ui.display import METADATA_KEY, Report


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
    kernel: bool = False  # a walkthrough's kernel: its own process's lease is its own
    lock: EnvironmentLock | None = None
    lease: Lease | None = None
    taken_over: Lease | None = None
    record: PostedRunComment | None = None
    last_renewal: float = 0.0
    ignored: list[FoundRun] = field(default_factory=list)  # markers written by anyone else

    def account(self) -> str:
        """The account the runbook runs as (the token's login): only its comments count."""
        return self.github.access.login()

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
        lock = self._lock()
        # the lease read, the tree and the token's login, side by side: one round trip
        current, _ = together(self.clock, lock.held, lock.prepare, self.account)
        mine = Lease(env=self.env, holder=f"{self.operator}@{host}", run_id=self.run_id,
                     path=self.path, started_at=now, expires_at="", host=host,
                     machine_id=machine_id(), pid=self.holder_pid, account=self.account())
        own = current is not None and self._own_kernel(current, mine)
        crashed = current is not None and current.run_id != self.run_id \
            and (own or holder_gone(current))
        why = break_lock or (f"an earlier run of this same kernel ({current.holder}, pid "
                             f"{current.pid}): its own lease" if current is not None and own else
                             f"the holder's process is gone ({current.holder}): a crashed run "
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

    def _own_kernel(self, current: Lease, mine: Lease) -> bool:
        """A lease this very kernel holds under another run id (an earlier run of the same
        walkthrough): same host, same machine id, same process. Another kernel, even on this
        host, has another pid and stays refused."""
        return self.kernel and current.run_id != self.run_id and bool(mine.machine_id) \
            and (current.host, current.machine_id, current.pid) == \
            (mine.host, mine.machine_id, mine.pid)

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
        found = [run for run in previous_runs(self.github.comments, numbers, path=self.path, env=self.env)
                 if run.record.run_id != self.run_id or not run.by(self.account())]
        own, foreign = own_runs(found, self.account())
        for run in foreign:
            if run not in self.ignored:
                self.ignored.append(run)
                self.log(run.ignored())
        return [run for run in own if run.record.run_id != self.run_id]

    def post_record(self, number: int, record: RunComment) -> Report:
        """Post this run's record comment on issue ``number`` (before anything changes)."""
        if self.taken_over is not None:
            record = replace(record, lock=f"taken over from {self.taken_over.holder} (run "
                             f"{self.taken_over.run_id})")
        if self.record is not None and self.record.number == number:  # approved again: the same
            self.record.record = record                                 # run, the same comment
            self.record.update(state=record.state)
        else:
            self.record = PostedRunComment(self.github.comments, number, record, log=self.log,
                                           now=lambda: utc_iso(self.clock.now())).post()
        report = Report(f"Run recorded on #{number}").fact("record comment", self.record.html_url)
        report.fact("state", self.record.record.state)
        report.metadata = {METADATA_KEY: {"record_comment": self.record_block()}}
        return report

    def update_record(self, *, state: RunState | None = None, **changes: str) -> None:
        if self.record is not None:
            self.record.update(state=state, **changes)

    def record_block(self) -> dict[str, Any] | None:
        """Where this run's record comment is, as the notebook's metadata names it."""
        if self.record is None:
            return None
        return {"issue": self.record.number, "comment_id": self.record.comment_id,
                "url": self.record.html_url, "account": self.account()}

    def close(self, closing: Closing) -> Closed:
        """The command line's end of a run, made from the kernel (a walkthrough's Finish): the
        same final edit of the record comment and release of the lock."""
        closed = close_run(self.github, self._lock(), closing)
        self.lease = None
        return closed
