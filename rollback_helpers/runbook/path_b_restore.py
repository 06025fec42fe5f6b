"""What earlier Path B runs on the same record mean for this one, and the restore's inputs.

A run that ended with its cluster prepared (flip pending) is done; one that did not end
(Ctrl-C, a crash) or that failed while its cluster still restores or is ready (a readiness
timeout) is carried on with that cluster: a re-run never restores twice.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

from rollback_helpers.clients.database import DbUrl, parse_db_url
from rollback_helpers.clients.fly import Fly
from rollback_helpers.clock import parse_iso
from rollback_helpers.errors import PreconditionFailed
from rollback_helpers.run.context import RunContext
from rollback_helpers.runbook.path_b_facts import still_usable
from rollback_helpers.runbook.resume import LookBack, earlier_runs


def look_back_b(ctx: RunContext, fly: Fly, number: int) -> tuple[LookBack, str | None]:
    """How the newest earlier run on record #number relates to this one, and its cluster."""
    found = earlier_runs(ctx, [number])
    earlier = found[0] if found else None
    if earlier is None:
        return LookBack(), None
    record = earlier.record
    if record.ended and not record.succeeded:
        if record.new_cluster and still_usable(fly, record.new_cluster):
            return LookBack(earlier, carry_on=True), record.new_cluster
        return LookBack(earlier), None
    return (LookBack(earlier, done=record.succeeded, carry_on=not record.ended),
            record.new_cluster or None)


def span(seconds: float) -> str:
    """``2h 05m`` / ``4m 10s``: a window of writes, as a person reads it."""
    seconds = max(0, int(seconds))
    if seconds >= 3600:
        return f"{seconds // 3600}h {seconds % 3600 // 60:02d}m"
    return f"{seconds // 60}m {seconds % 60:02d}s"


def _epoch(text: str) -> float | None:
    try:
        return parse_iso(text)
    except (ValueError, TypeError):
        return None


@dataclass(frozen=True)
class LostWrites:
    """What a restore to ``point`` loses: the good writes before the bad deploy, and every
    write since it (made on the damaged cluster)."""

    point: str  # the moment the new cluster holds (ISO)
    deployed_at: str  # the bad deploy (ISO, may be "")
    now: float

    def text(self) -> str:
        point, deploy = _epoch(self.point), _epoch(self.deployed_at)
        if point is None:
            return "unknown (the restore point has no time)"
        total = (f"writes after {self.point} ({span(self.now - point)} until now) are not on "
                 "the new cluster")
        if deploy is None:
            return total
        return (f"{total}: {span(deploy - point)} before the bad deploy (backup → deploy) and "
                f"{span(self.now - max(deploy, point))} since it (deploy → now)")


def url_reads(ctx: RunContext, fly: Fly, urls: dict[str, DbUrl]) -> Iterator[bool]:
    """One slow read per step (the machine list, then each URL over ssh) into ``urls``: the
    readiness wait does one between polls."""
    app = ctx.env.app
    started = fly.status(app).started()
    yield True
    if not started:
        raise PreconditionFailed(f"{app} has no started machine to read its URLs from.",
                                 f"Start one (`flyctl machine start -a {app}`) and re-run.")
    for var in (ctx.cfg.database_url_var, ctx.cfg.migration_url_var):
        urls[var] = parse_db_url(fly.read_secret_env(app, started[0].id, var), var)
        yield True
