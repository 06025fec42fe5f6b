"""What earlier Path B runs on the same record mean for this one, and the restore's inputs.

A run that ended with its cluster prepared (flip pending) is done; one that did not end
(Ctrl-C, a crash) or that failed while its cluster still restores or is ready (a readiness
timeout) is carried on with that cluster: a re-run never restores twice.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

from rollback_helpers.clients.database import DbUrl, parse_db_url
from rollback_helpers.clients.fly import Backup, Cluster, Fly, RestoreResult
from rollback_helpers.clock import parse_iso, utc_iso
from rollback_helpers.domain.deployments import DeploymentRecord
from rollback_helpers.errors import CommandFailed, PreconditionFailed, RollbackError
from rollback_helpers.hints import Rerun, hint
from rollback_helpers.run.context import RunContext
from rollback_helpers.runbook.path_b_facts import Resolved, restore_unconfirmed, still_usable
from rollback_helpers.runbook.resume import LookBack, earlier_runs
from rollback_helpers.ui.display import Report


def look_back_b(ctx: RunContext, fly: Fly, number: int,
                source: Cluster) -> tuple[LookBack, str | None]:
    """How the newest earlier run on record #number relates to this one, and its cluster.

    Only the runbook's own comments count (others are ``ignored``), and a cluster one names is
    believed only when the world confirms it (:func:`restore_unconfirmed`): never the source,
    never an attached cluster."""
    found = earlier_runs(ctx, [number])
    earlier, ignored = (found[0] if found else None), tuple(ctx.lifecycle.ignored)
    if earlier is None:
        return LookBack(ignored=ignored), None
    record = earlier.record
    why = restore_unconfirmed(ctx, fly, record, source)
    if record.ended and not record.succeeded:
        if record.new_cluster and not why and still_usable(fly, record.new_cluster):
            return LookBack(earlier, carry_on=True, ignored=ignored), record.new_cluster
        return LookBack(earlier, ignored=ignored, unconfirmed=why), None
    if why:
        return LookBack(earlier, ignored=ignored, unconfirmed=why), None
    return (LookBack(earlier, done=record.succeeded, carry_on=not record.ended, ignored=ignored),
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
                                 hint(f"Start one (`flyctl machine start -a {app}`), then ",
                                      Rerun(), "."))
    for var in (ctx.cfg.database_url_var, ctx.cfg.migration_url_var):
        urls[var] = parse_db_url(fly.read_secret_env(app, started[0].id, var), var)
        yield True


@dataclass(frozen=True)
class RestorePoint:
    """What the new cluster is restored to: the pre-deploy backup, or a point in time."""

    backup: Backup
    pitr_time: str = ""  # RFC3339; "" restores the backup

    @property
    def moment(self) -> str:
        return self.pitr_time or self.backup.stop or self.backup.start

    def flag(self) -> str:
        return f"--pitr-time {self.pitr_time}" if self.pitr_time else f"--backup-id {self.backup.id}"

    def what(self) -> str:
        return (f"the point in time {self.pitr_time}" if self.pitr_time
                else f"backup {self.backup.id}")


def choose_point(pitr: str | None, source: Cluster, backup: Backup,
                 record: DeploymentRecord) -> RestorePoint:
    """The backup, or (``pitr``) a moment: ``default`` is one second before the bad deploy.
    Only a v2 cluster restores to a point in time: a v1 one is refused by name."""
    if pitr is None:
        return RestorePoint(backup)
    if source.version != 2:
        raise PreconditionFailed(
            f"Cluster {source.id} is a v{source.version} Managed Postgres cluster: point-in-time "
            "restore (--pitr-time) needs a v2 cluster.",
            "Restore the pre-deploy backup instead: re-run without --pitr-time (the plan shows "
            "the writes it loses).")
    if pitr != "default":
        return RestorePoint(backup, pitr)
    if _epoch(record.deployed_at) is None:
        raise PreconditionFailed(
            f"Record #{record.number} has no deployed_at: no default point in time.",
            "Re-run with --pitr-time <RFC3339 moment just before the bad deploy>.")
    return RestorePoint(backup, utc_iso(parse_iso(record.deployed_at) - 1))


def lost_writes_facts(point: RestorePoint, source: Cluster, record: DeploymentRecord,
                      now: float) -> list[tuple[str, str]]:
    """What each choice loses: the backup, and the point in time (chosen or default)."""
    backup = LostWrites(point.backup.stop or point.backup.start, record.deployed_at, now).text()
    moment = point.pitr_time or (utc_iso(parse_iso(record.deployed_at) - 1)
                                 if _epoch(record.deployed_at) is not None else "")
    if source.version != 2:
        pitr = f"not available: {source.id} is a v{source.version} cluster (PITR needs v2)"
    else:
        pitr = LostWrites(moment, record.deployed_at, now).text() if moment else "—"
    chosen = "point in time" if point.pitr_time else "backup"
    return [(f"lost writes, backup{' ✔' if chosen == 'backup' else ''}", backup),
            (f"lost writes, point in time {moment}{' ✔' if point.pitr_time else ''}", pitr)]


def plan_report(ctx: RunContext, r: Resolved, point: RestorePoint, path_a_tried: str) -> Report:
    """The plan's steps, what each restore choice loses, and why Path A is not enough."""
    cfg = ctx.cfg
    report = Report("Plan", status="stopped" if ctx.dry_run else "ok",
                    code=f"flyctl mpg restore {r.source.id} {point.flag()} -n {r.new_name}")
    report.fact("1. restore", f"{point.what()} into a NEW cluster named {r.new_name}")
    report.fact("2. wait", f"until it is ready (at most {cfg.ready_timeout:.0f}s); meanwhile read "
                f"{cfg.database_url_var} and {cfg.migration_url_var} from {ctx.env.app}")
    report.fact("3. verify", f"log in as {cfg.app_user} and {cfg.migration_user} through a "
                "`flyctl mpg proxy` tunnel")
    report.fact("4. hand over", "print the manual flip checklist, then stop")
    for key, value in lost_writes_facts(point, r.source, r.record, ctx.backends.clock.now()):
        report.fact(key, value)
    report.fact("Path A first", path_a_tried or "why Path A is not enough: not given (needed "
                "for a live run on the real world: --path-a-tried)")
    report.note(f"Not touched: cluster {r.source.id}, the app's secrets, Infisical, "
                f"{cfg.cluster_map_path}.")
    return report


def sandbox_limitation(ctx: RunContext, exc: RollbackError) -> RollbackError | None:
    """A drill that hit what the sandbox cannot do (a metadata-only cluster, a backup without
    data): said as the sandbox's limitation, not as a fault to chase; None otherwise (a
    sandbox server that failed is a fault, reported as it is)."""
    if ctx.backends.name != "sandbox":
        return None
    if "the sandbox has no database server" in exc.what:
        why = (f"The scenario gives {ctx.env.name} no real database server (only environments "
               "with `database = true` or `database_on_demand = true` have one).")
    elif "has no data in the sandbox" in exc.what:
        why = ("Only the pre-deploy backup of a scenario's cluster holds data in the sandbox; "
               "its older backups are listed, not copied: restore the pre-deploy one.")
    else:
        return None
    return PreconditionFailed(
        f"Sandbox limitation, not a fault: {exc.what}",
        f"{why} Nothing was flipped. Every environment of the default scenario has a server "
        f"(`rollback-runbook drill path-b --env {ctx.env.name}`), or give this environment "
        "`database = true` in a scenario of your own (docs/scenarios.md).")


def request_restore(ctx: RunContext, fly: Fly, r: Resolved, point: RestorePoint) -> RestoreResult:
    """``flyctl mpg restore`` of the backup or to the point in time, into a NEW cluster."""
    try:
        return fly.mpg_restore(r.source.id, r.backup.id, r.new_name, pitr_time=point.pitr_time)
    except CommandFailed as exc:
        if (limit := sandbox_limitation(ctx, exc)) is None:
            raise
        raise limit from exc
