"""The per-environment lock: a lease held on GitHub, the one thing every operator shares.

The lease is the git ref ``refs/rollback-locks/<env>``, pointing at a commit
whose message is the lease as JSON (holder, run id, path, start, expiry).
Creating a ref is atomic — GitHub answers 422 when it exists — so two runs
cannot both take it. Renewing, updating and taking over an expired lease
fast-forward the ref to a new commit whose parent is the one read: if someone
moved it in between, that is not a fast forward and GitHub refuses it.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, replace
from typing import Any

from rollback_helpers.clients.github import GitHubClient
from rollback_helpers.clock import Clock, parse_iso, utc_iso
from rollback_helpers.errors import LockHeld


@dataclass(frozen=True)
class Lease:
    env: str
    holder: str
    run_id: str
    path: str
    started_at: str
    expires_at: str
    workflow_run_url: str = ""
    broken_from: str = ""


def lease_from_message(message: str) -> Lease | None:
    try:
        data: dict[str, Any] = json.loads(message)
        return Lease(**{k: str(v) for k, v in data.items() if k in Lease.__dataclass_fields__})
    except (ValueError, TypeError):
        return None


class EnvironmentLock:
    """``refs/rollback-locks/<env>`` in the configured repository."""

    def __init__(self, github: GitHubClient, env: str, *, clock: Clock, ttl: float) -> None:
        self.github, self.env, self.clock, self.ttl = github, env, clock, ttl
        self.ref = f"rollback-locks/{env}"
        self._head: str | None = None   # the commit of the lease this object holds
        self._lease: Lease | None = None

    def _read(self) -> tuple[str, Lease] | None:
        sha = self.github.ref_sha(self.ref)
        if sha is None:
            return None
        lease = lease_from_message(self.github.commit_message(sha))
        return (sha, lease) if lease is not None else None

    def held(self) -> Lease | None:
        """The lease as it stands (read only), or None when nobody holds it."""
        found = self._read()
        return found[1] if found else None

    def expired(self, lease: Lease) -> bool:
        return parse_iso(lease.expires_at) <= self.clock.now()

    def _write(self, lease: Lease, parent: str | None) -> str:
        return self.github.create_commit(json.dumps(asdict(lease), sort_keys=True),
                                         [parent] if parent else [])

    def acquire(self, lease: Lease, *, break_lock: str = "") -> Lease:
        """Take the lease, or raise :class:`LockHeld` naming who holds it."""
        lease = replace(lease, expires_at=utc_iso(self.clock.now() + self.ttl))
        if self.github.create_ref(self.ref, sha := self._write(lease, None)):
            self._head, self._lease = sha, lease
            return lease
        found = self._read()
        if found is None:  # released in between: try once more
            return self.acquire(lease, break_lock=break_lock)
        head, current = found
        if not break_lock or current.run_id == lease.run_id:
            if current.run_id == lease.run_id:
                self._head, self._lease = head, current
                return current
            raise held_error(current, expired=self.expired(current))
        taken = replace(lease, broken_from=f"{current.run_id} ({current.holder}): {break_lock}")
        sha = self._write(taken, head)
        if not self.github.move_ref(self.ref, sha):
            raise held_error(self.held() or current, expired=False)
        self._head, self._lease = sha, taken
        return taken

    def update(self, **fields: str) -> Lease:
        if self._lease is None or self._head is None:
            raise held_error(self.held() or Lease(self.env, "?", "?", "?", "?", "?"),
                             expired=False)
        lease = replace(self._lease, **fields)
        sha = self._write(lease, self._head)
        if not self.github.move_ref(self.ref, sha):
            raise held_error(self.held() or lease, expired=False)
        self._head, self._lease = sha, lease
        return lease

    def renew(self) -> Lease:
        return self.update(expires_at=utc_iso(self.clock.now() + self.ttl))

    def release(self) -> None:
        """Delete the ref if it is still ours (or, from a fresh object, whatever it holds)."""
        found = self._read()
        if found is None:
            return
        if self._lease is not None and found[1].run_id != self._lease.run_id:
            return  # taken over meanwhile: not ours to release
        self.github.delete_ref(self.ref)
        self._head = self._lease = None


def held_error(lease: Lease, *, expired: bool) -> LockHeld:
    url = f", workflow run {lease.workflow_run_url}" if lease.workflow_run_url else ""
    if expired:
        return LockHeld(
            f"{lease.env} is locked by {lease.holder} since {lease.started_at} (run "
            f"{lease.run_id}, {lease.path}{url}); the lease expired at {lease.expires_at}.",
            "If that run is dead, take the lock over explicitly: re-run with "
            "--break-lock \"<why>\" (notebook: break_lock=\"<why>\"); it is recorded.")
    return LockHeld(
        f"{lease.env} is locked by {lease.holder} since {lease.started_at} (run {lease.run_id}, "
        f"{lease.path}{url}); the lease runs until {lease.expires_at}.",
        "Another live rollback is running on this environment: coordinate with its holder. "
        "Its record comment on the deployment record says what it is doing.")
