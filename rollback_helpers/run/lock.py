"""The per-environment lock: a lease held on GitHub for the length of a live run.

Several engineers, on machines that share nothing but GitHub, may start a
rollback of the same environment at once. The lock is a git reference,
``refs/rollback-locks/<env>``, pointing at a commit whose message is the lease:
who holds it, for which run and path, since when, until when, and the workflow
run it dispatched. Creating a reference is atomic
on GitHub (the second create answers 422), and moving one without ``force`` only
fast-forwards, so renewing, updating and breaking are compare-and-swaps: a new
commit whose parent is the lease being replaced.

A lease expires ``ttl`` seconds after it was last renewed, so a holder that dies
stops blocking the environment without anyone cleaning up (Kubernetes' Lease).
Taking over an expired lease is explicit (``break_lock="why"``) and recorded in
the new lease (``broken_from``), like Terraform's ``force-unlock``; a live lease
is never broken; the holder's machine is named by typed fields (``host``, ``machine_id``,
``pid``), so a crashed holder on this very machine can be told from another machine with
the same hostname (:func:`holder_gone`). ``docs/architecture.md`` ("The environment lock") says why
GitHub, why a reference, and which races remain.
"""

from __future__ import annotations

import json
import logging
import socket
from dataclasses import asdict, dataclass, fields, replace
from pathlib import Path
from typing import Any

from rollback_helpers.clients.github import GitHubClient
from rollback_helpers.clock import Clock, parse_iso, utc_iso
from rollback_helpers.errors import LockHeld
from rollback_helpers.hints import Option, hint

log = logging.getLogger(__name__)

REF_PREFIX = "refs/rollback-locks/"
LEASE_FILE = "LOCK.md"
LEASE_FILE_TEXT = ("This ref is a rollback-runbook environment lock. The lease (who holds it, "
                   "for which run, until when) is the commit message.\n")
ACQUIRE_TRIES = 3  # a lease released between our create and our read: try again


@dataclass(frozen=True)
class Lease:
    env: str
    holder: str                 # for people: operator@host
    run_id: str
    path: str
    started_at: str
    expires_at: str
    workflow_run_url: str = ""
    broken_from: str = ""
    host: str = ""              # the holder's machine: its hostname,
    machine_id: str = ""        # its machine (or boot) id, since hostnames repeat,
    pid: int = 0                # and the run's process there (a crash check)
    account: str = ""           # the GitHub account the runbook ran as

    def live(self, now: float) -> bool:
        """Whether the lease still holds at ``now`` (it has not expired)."""
        try:
            return parse_iso(self.expires_at) > now
        except ValueError:
            return False  # an unreadable expiry protects nothing

    def describe(self) -> str:
        """One line for a person: who, which run, since when, until when."""
        text = (f"{self.holder or 'someone'} (run {self.run_id or '?'}, {self.path or '?'}) "
                f"since {self.started_at or '?'}, lease until {self.expires_at or '?'}")
        return text + (f", workflow run {self.workflow_run_url}" if self.workflow_run_url else "")


def lease_to_json(lease: Lease) -> str:
    return json.dumps(asdict(lease), indent=1, sort_keys=True)


def lease_from_message(message: str) -> Lease | None:
    """The lease in a lock commit's message (a summary line, a blank line, JSON)."""
    _, _, body = message.partition("\n\n")
    try:
        data = json.loads(body or message)
    except ValueError:
        return None
    if not isinstance(data, dict):
        return None
    known = {f.name for f in fields(Lease)}
    values: dict[str, Any] = {k: str(v) for k, v in data.items() if k in known}
    pid = data.get("pid", 0)
    values["pid"] = pid if isinstance(pid, int) and not isinstance(pid, bool) and pid > 0 else 0
    try:
        return Lease(**values)
    except TypeError:
        return None


MACHINE_ID_FILES = ("/etc/machine-id", "/var/lib/dbus/machine-id",
                    "/proc/sys/kernel/random/boot_id")


def machine_id(files: tuple[str, ...] = MACHINE_ID_FILES) -> str:
    """This machine's id (systemd's machine-id, else the boot id); "" when none is readable.
    Hostnames repeat (containers, default names): the id tells two machines apart."""
    for name in files:
        try:
            found = Path(name).read_text(encoding="ascii").strip()
        except (OSError, UnicodeDecodeError):
            continue
        if found:
            return found
    return ""


def holder_gone(lease: Lease, *, host: str | None = None, machine: str | None = None) -> bool:
    """True when the holder ran on this very machine (same hostname AND machine id) and its
    process no longer exists. A lease from another machine, or one that does not say which
    machine, is never judged gone: it waits for its expiry and ``--break-lock``."""
    here = socket.gethostname() if host is None else host
    this = machine_id() if machine is None else machine
    if not this or lease.machine_id != this or lease.host != here or lease.pid <= 0:
        return False
    import psutil  # only when another run on this machine holds the lock

    return not psutil.pid_exists(lease.pid)


class EnvironmentLock:
    """The lock on one environment, for one run (see the module's docstring)."""

    def __init__(self, github: GitHubClient, env: str, *, clock: Clock, ttl: float) -> None:
        if not env or "/" in env or ".." in env or " " in env:
            raise ValueError(f"not an environment name usable in a git ref: {env!r}")
        self.github = github
        self.env = env
        self.clock = clock
        self.ttl = ttl
        self.ref = REF_PREFIX + env
        self.lease: Lease | None = None  # ours, once acquired
        self._sha = ""                   # the commit our lease is
        self._tree = ""                  # the lease commits' tree: one file, made once

    def __repr__(self) -> str:
        return f"EnvironmentLock(env={self.env!r}, ref={self.ref!r}, held={self.lease is not None})"

    # -- reading --------------------------------------------------------------------
    def held(self) -> Lease | None:
        """The lease on the environment now (live or expired), or None. Changes nothing."""
        current = self._read()
        return current[1] if current else None

    def _read(self) -> tuple[str, Lease] | None:
        sha = self.github.git.get_ref(self.ref)
        if sha is None:
            return None
        lease = lease_from_message(self.github.git.get_commit(sha).message)
        if lease is None:  # not written by the runbook: treat it as held, and say so
            lease = Lease(env=self.env, holder=f"an unreadable lock commit {sha[:12]}", run_id="",
                          path="", started_at="", expires_at="")
        return sha, lease

    # -- taking ------------------------------------------------------------------------
    def acquire(self, lease: Lease, *, break_lock: str = "") -> Lease:
        """Take the lock for ``lease``'s run, or raise :class:`LockHeld`.

        ``expires_at`` is set to now + ``ttl`` (and ``started_at`` to now if empty).
        A lease of the same ``run_id`` is ours already (a re-run, or a create whose
        answer was lost) and is renewed. An expired lease of another run is taken
        over only with ``break_lock`` (the reason, recorded in ``broken_from``).
        """
        now = self.clock.now()
        wanted = replace(lease, env=self.env, started_at=lease.started_at or utc_iso(now))
        for _ in range(ACQUIRE_TRIES):
            fresh = self._fresh(wanted, self.clock.now())
            commit = self._commit(fresh, parents=())
            if self.github.git.create_ref(self.ref, commit):
                return self._took(commit, fresh, "took")
            current = self._read()
            if current is None:
                continue  # released in between: create again
            sha, theirs = current
            if theirs.run_id and theirs.run_id == wanted.run_id:
                return self._replace(sha, replace(wanted, started_at=theirs.started_at), "resumed")
            if theirs.live(self.clock.now()):
                raise self._held(theirs, breaking=bool(break_lock))
            if not break_lock:
                raise self._expired(theirs)
            broken = replace(wanted, broken_from=_broken_from(theirs, break_lock))
            return self._replace(sha, broken, "broke an expired lease and took")
        raise self._contended()

    def renew(self) -> Lease:
        """Push our lease's expiry to now + ``ttl``; raise :class:`LockHeld` if it was lost."""
        return self.update()

    def update(self, **changes: Any) -> Lease:
        """Change fields of our lease (e.g. ``workflow_run_url``) and renew it."""
        if self.lease is None:
            raise RuntimeError("update(): the lock is not held; acquire() it first")
        return self._replace(self._sha, replace(self.lease, **changes), "renewed")

    def release(self) -> bool:
        """Give the lock back if it is still ours; True if it was deleted.

        Never deletes another run's lease (one that broke ours after it expired).
        """
        if self.lease is None:
            return False
        current = self.github.git.get_ref(self.ref)
        mine, self.lease = current == self._sha, None
        if not mine:
            log.warning("lock %s is no longer ours (now %s); leaving it", self.ref, current)
            return False
        return self.github.git.delete_ref(self.ref)

    # -- the compare-and-swap ----------------------------------------------------------
    def _replace(self, expected: str, lease: Lease, verb: str) -> Lease:
        """Move the ref from ``expected`` to a new lease commit, or find who moved it."""
        now = self.clock.now()
        fresh = self._fresh(lease, now)
        commit = self._commit(fresh, parents=(expected,))
        if self.github.git.update_ref(self.ref, commit):
            return self._took(commit, fresh, verb)
        current = self._read()
        if current is not None and current[0] == commit:  # our update did land
            return self._took(commit, fresh, verb)
        self.lease = None
        if current is None:
            raise LockHeld(f"The lock on {self.env} ({self.ref}) was released or deleted by "
                           "someone else while this run held it.",
                           "Check who is acting on the environment before going on; re-run to "
                           "take the lock again.")
        raise self._held(current[1], lost=True)

    def _fresh(self, lease: Lease, now: float) -> Lease:
        return replace(lease, expires_at=utc_iso(now + self.ttl))

    def prepare(self) -> None:
        """Make the lease commits' tree now, e.g. while the current lease is read, so that
        taking the lock costs only a commit and a ref after that read (it depends on nothing)."""
        if not self._tree:
            self._tree = self.github.git.create_tree({LEASE_FILE: LEASE_FILE_TEXT})

    def _commit(self, lease: Lease, parents: tuple[str, ...]) -> str:
        """A lease commit. The lease is its message, so every commit can share one tree, made
        once: a renewal costs a commit and a ref update (two requests), not three."""
        text = lease_to_json(lease)
        self.prepare()
        summary = f"rollback lock: {self.env} held by {lease.holder} (run {lease.run_id})"
        return self.github.git.create_commit(f"{summary}\n\n{text}\n", self._tree, parents).sha

    def _took(self, commit: str, lease: Lease, verb: str) -> Lease:
        self._sha, self.lease = commit, lease
        log.info("%s the lock on %s: %s", verb, self.env, lease.describe())
        return lease

    # -- errors --------------------------------------------------------------------------
    def _held(self, theirs: Lease, *, breaking: bool = False, lost: bool = False) -> LockHeld:
        what = (f"The lock on {self.env} was taken over by {theirs.describe()}." if lost else
                f"{self.env} is locked by another rollback: {theirs.describe()}.")
        refusal = " A live lease is never broken (breaking a lock is only for an expired one)." \
            if breaking else ""
        watch = f" Watch its workflow run: {theirs.workflow_run_url}." \
            if theirs.workflow_run_url else ""
        return LockHeld(what + refusal,
                        hint(f"Talk to {theirs.holder or 'its holder'} first.{watch} If that run "
                             f"died, its lease expires at {theirs.expires_at}; then re-run with ",
                             Option("break_lock", "<why>"), ". A dry run never takes the lock."))

    def _expired(self, theirs: Lease) -> LockHeld:
        return LockHeld(
            f"{self.env} is locked by a rollback whose lease expired: {theirs.describe()}.",
            hint(f"Check that run ({theirs.run_id or '?'}) is really dead and that nothing it "
                 "started is still running, then re-run with ", Option("break_lock", "<why>"),
                 " to take the lock over (the reason is recorded in the new lease)."))

    def _contended(self) -> LockHeld:
        return LockHeld(f"The lock on {self.env} ({self.ref}) kept changing hands while this run "
                        f"tried to take it ({ACQUIRE_TRIES} tries).",
                        "Someone else is starting a rollback of the same environment: talk to "
                        "them, then re-run.")


def _broken_from(theirs: Lease, reason: str) -> str:
    return (f"run {theirs.run_id or '?'} of {theirs.holder or '?'} (since {theirs.started_at or '?'}, "
            f"expired {theirs.expires_at or '?'}); reason: {reason}")
