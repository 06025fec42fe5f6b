"""What Path B reads and hands over: the bad deploy's record, the flip's steps, the comparison.

Shared by Path B and verify-flip; nothing here changes anything.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol, TypeVar, cast

from rollback_helpers.clients.database import ConnectionCheck, DbUrl, check_connection
from rollback_helpers.clients.fly import Backup, Cluster, Fly
from rollback_helpers.clock import together
from rollback_helpers.domain.cluster_map import ClusterMap, read_cluster_map
from rollback_helpers.domain.deployments import BadRecord, DeploymentRecord, record_from_issue
from rollback_helpers.errors import (
    BackupError,
    ClusterMismatch,
    PreconditionFailed,
    RecordError,
    RestoreFailed,
    RestoreTimeout,
    RollbackError,
)
from rollback_helpers.hints import Option, hint
from rollback_helpers.run.context import RunContext
from rollback_helpers.run.run_comment import RunComment
from rollback_helpers.runbook.first_reads import ReadAhead
from rollback_helpers.ui.display import Report
from rollback_helpers.ui.table import Table

R = TypeVar("R")
TERMINAL = ("error", "failed")  # a restored cluster's states it never leaves for `ready`


@dataclass(frozen=True)
class Resolved:
    record: DeploymentRecord
    backup: Backup
    source: Cluster
    cluster_map: ClusterMap
    new_name: str


class RecordAndMap:
    """The bad deploy's record and the cluster map: read beside the lock when headless (see
    :mod:`.first_reads`), else side by side when the resolve step asks for them."""

    def __init__(self, ctx: RunContext, github: Any, number: int | None) -> None:
        cfg, ahead = ctx.cfg, not ctx.interactive
        self.clock = ctx.backends.clock
        self.record = ReadAhead(self.clock, lambda: newest_record(ctx, github, number),
                                ahead=ahead)
        self.map = ReadAhead(self.clock, lambda: read_cluster_map(
            repo_path=cfg.cluster_map_path, local_file=cfg.cluster_map_file,
            github=github.contents), ahead=ahead)

    def result(self) -> tuple[DeploymentRecord, ClusterMap]:
        record, (cmap,) = together(self.clock, self.record.result, self.map.result)
        return record, cast(ClusterMap, cmap)

    def settle(self) -> None:
        """Wait for the reads still under way (a run that ends before it resolves)."""
        self.record.settle()
        self.map.settle()


def newest_record(ctx: RunContext, github: Any, number: int | None) -> DeploymentRecord:
    """The bad deploy's record: the newest for the environment (rolled back or not), or #number."""
    for issue in github.issues.iter_issues(ctx.env.record_labels):
        if number is not None and issue.number != number:
            continue
        record = record_from_issue(issue, env=ctx.env.name, rolled_back_label=ctx.cfg.rolled_back_label)
        if isinstance(record, BadRecord):
            raise RecordError(f"Deployment record #{record.number} for {ctx.env.name} is malformed: "
                              f"{record.reason}",
                              hint(f"Fix the issue ({record.url}), or re-run with ",
                                   Option("backup_id", "<backup id>"), " and ",
                                   Option("source_cluster", "<cluster id>"), "."))
        return record
    wanted = f"#{number}" if number is not None else "any deployment record"
    raise RecordError(f"Found {wanted} for {ctx.env.name} in {ctx.cfg.github_repo} "
                      f"(labels {', '.join(ctx.env.record_labels)}): none.",
                      hint("Check the record labels in the configuration, or re-run with ",
                           Option("backup_id", "<backup id>"), " and ",
                           Option("source_cluster", "<cluster id>"), "."))


def checks_table(checks: list[ConnectionCheck], source: ConnectionCheck | None) -> Table:
    rows = [{"where": "new cluster", "user": c.user, "connected": c.connected,
             "current_user": c.current_user, "version": c.server_version.split(" ")[0],
             "in recovery": c.in_recovery, "newest migration": c.newest_migration,
             **{f"rows: {t}": ("missing" if n < 0 else n) for t, n in c.table_counts.items()},
             "error": c.error} for c in checks]
    if source is not None:
        rows.append({"where": "current (source)", "user": source.user, "connected": source.connected,
                     "current_user": source.current_user,
                     "version": source.server_version.split(" ")[0],
                     "in recovery": source.in_recovery, "newest migration": source.newest_migration,
                     **{f"rows: {t}": ("missing" if n < 0 else n)
                        for t, n in source.table_counts.items()}, "error": source.error})
    return Table(rows)  # a column only the source row has is empty in the others


def differences(checks: list[ConnectionCheck], source: ConnectionCheck | None) -> list[str]:
    """What the restore point holds that the current cluster does not (and vice versa)."""
    if source is None or not source.connected or not checks:
        return ["The current cluster could not be read for comparison."] if checks else []
    new = checks[0]
    notes = []
    if new.newest_migration != source.newest_migration:
        notes.append(f"Newest migration: {new.newest_migration} on the new cluster, "
                     f"{source.newest_migration} on the current one.")
    for table, count in new.table_counts.items():
        now = source.table_counts.get(table, -1)
        if count != now:
            shown = "missing" if now < 0 else f"{now} rows"
            notes.append(f"{table}: {count if count >= 0 else 'missing'} rows on the new cluster, "
                         f"{shown} on the current one.")
    return notes or ["The new cluster holds the same migrations and row counts as the current one."]


class AfterReady(Protocol):
    """What :func:`keeps_checklist` needs of a Path B run."""

    ready: bool
    new_cluster: str | None
    ctx: RunContext

    def checklist_report(self) -> Any: ...


Step = TypeVar("Step", bound=AfterReady)


def keeps_checklist(step: Callable[[Step], R]) -> Callable[[Step], R]:
    """Once the new cluster is ready, a failing step still shows the flip checklist (above its
    error in the notebook) and its error names the new cluster and carries the checklist, so the
    command line's stderr has them too."""

    @functools.wraps(step)
    def guarded(run: Step) -> R:
        try:
            return step(run)
        except Exception as exc:
            if not run.ready:
                raise
            report = run.checklist_report()
            run.ctx.show(report)
            raise checklist_error(exc, str(run.new_cluster), report) from exc

    return guarded


def checklist_error(exc: Exception, new_id: str, report: Any) -> RollbackError:
    steps = "\n".join(f"  {key} {value}" for key, value in report.facts)
    what = exc.what if isinstance(exc, RollbackError) else f"{type(exc).__name__}: {exc}"
    next_step = exc.next_step if isinstance(exc, RollbackError) else ""
    cls = type(exc) if isinstance(exc, RollbackError) else RollbackError
    error = cls(f"{what} (the new cluster {new_id} is ready and nothing was flipped)",
                f"{next_step}\nThe flip checklist for the new cluster {new_id}, for when it is "
                f"verified:\n{steps}".strip())
    return error


def check_source(ctx: RunContext, fly: Fly, source_id: str, record: DeploymentRecord) -> Cluster:
    """The source cluster, checked against the app it serves and the record's cluster."""
    app = ctx.env.app
    source = fly.mpg_status(source_id).cluster
    if app not in source.attached_apps:
        attached = [c.id for c in fly.mpg_list(ctx.cfg.fly_org) if app in c.attached_apps]
        raise ClusterMismatch(
            f"The cluster map names {source_id} for {ctx.env.name}, but {source_id} is "
            f"attached to {list(source.attached_apps) or 'no app'}, not {app}; "
            f"{app} is attached to {attached or 'no cluster'}.",
            hint("Find out which is right before restoring anything: fix "
                 f"{ctx.cfg.cluster_map_path}, or re-run with ",
                 Option("source_cluster", "<cluster id>"), "."))
    if record.cluster_id and record.cluster_id != source_id:
        raise ClusterMismatch(
            f"Record #{record.number} was taken of cluster {record.cluster_id}, but the "
            f"source cluster is {source_id}.",
            hint("Its backup belongs to the recorded cluster: confirm which cluster served "
                 f"{ctx.env.name} then, and re-run with ", Option("source_cluster", "<cluster id>"),
                 "."))
    return source


def check_backup(fly: Fly, source_id: str, backup_id: str, record: DeploymentRecord) -> Backup:
    """The backup, which must exist and be completed."""
    backups = {b.id: b for b in fly.mpg_backups(source_id)}
    found = backups.get(backup_id)
    if found is None:
        newest = sorted(backups)[-3:]
        raise BackupError(
            f"Backup {backup_id} (from record #{record.number}) is not among the "
            f"{len(backups)} backups of cluster {source_id}.",
            hint(f"Check the id; the newest backups are {newest or 'none'} "
                 f"(`flyctl mpg backup list {source_id} --all`). Re-run with ",
                 Option("backup_id", "<backup id>"), "."))
    if found.status != "completed":
        raise BackupError(f"Backup {backup_id} of {source_id} is {found.status!r}, not completed.",
                          hint("Wait for it to complete, or re-run with an earlier completed "
                               "backup: ", Option("backup_id", "<backup id>"), "."))
    return found


def still_usable(fly: Fly, cluster_id: str) -> bool:
    """An earlier run's restored cluster that a re-run can carry on with (restoring or ready)."""
    try:
        return fly.mpg_status(cluster_id).cluster.status not in TERMINAL
    except RollbackError:
        return False


def restore_unconfirmed(ctx: RunContext, fly: Fly, record: RunComment, source: Cluster) -> str:
    """Why an earlier run's restored cluster is not believed ("" when the world confirms it):
    it must exist, be neither the source nor attached to any app, and bear the name the run
    restored into (its comment says ``backup … of <source> → <name>``)."""
    claim = f"Run {record.run_id}'s comment names cluster {record.new_cluster or '—'}"
    if not record.new_cluster:
        return "" if not record.succeeded else f"{claim}: not believed, the restore goes on."
    if record.new_cluster == source.id:
        return f"{claim}, the source cluster itself: not believed, the restore goes on."
    found = next((c for c in fly.mpg_list(ctx.cfg.fly_org) if c.id == record.new_cluster), None)
    if found is None:
        return f"{claim}, which does not exist: not believed, the restore goes on."
    if found.attached_apps:
        return (f"{claim}, which is attached to {', '.join(found.attached_apps)}: not a fresh "
                "restore, not believed; the restore goes on.")
    planned = record.target.rpartition("→")[2].strip()
    if f" of {source.id} " not in f" {record.target} " or planned != found.name:
        return (f"{claim} ({found.name}), not a restore of {source.id}'s backup by its record: "
                "not believed, the restore goes on.")
    return ""


def unrecorded_restore(ctx: RunContext, fly: Fly, name: str, *, carry_on: bool) -> str | None:
    """A cluster named ``name`` that exists already: the restore of the run this one carries
    on (which stopped before recording it) is used; any other is a clash that stops the run."""
    same = [c for c in fly.mpg_list(ctx.cfg.fly_org) if c.name == name]
    if not same:
        return None
    if carry_on:
        ctx.log(f"cluster {same[0].id} ({name}) was restored by the run this one carries on: used")
        return same[0].id
    raise PreconditionFailed(
        f"A cluster named {name} already exists ({same[0].id}, {same[0].status}); a second "
        "restore would fork another one with the same name.",
        hint(f"Check `flyctl mpg status {same[0].id}`. To restore afresh anyway, re-run with ",
             Option("new_cluster_name", "<another name>"), "."))


def source_check(ctx: RunContext, fly: Fly, urls: dict[str, DbUrl], source_id: str,
                 tables: tuple[str, ...]) -> ConnectionCheck | None:
    """The current (damaged) cluster's view, for comparison; None if unreachable."""
    app_url = urls.get(ctx.cfg.database_url_var)
    if app_url is None:
        return None
    try:
        with fly.mpg_proxy(source_id) as tunnel:
            return check_connection(tunnel.local_port, app_url, tables=tables)
    except Exception as exc:  # noqa: BLE001 - a comparison, never a reason to stop
        ctx.log(f"source {source_id} not reachable for comparison: {type(exc).__name__}")
        return None


def urls_report(new_id: str, urls: dict[str, DbUrl]) -> Report:
    """The app's current URLs, shown once the new cluster is ready (passwords never shown)."""
    rows = [{"variable": u.var, "user": u.user, "url": u.shown(), "cluster now": u.cluster_id}
            for u in urls.values()]
    report = Report(f"New cluster {new_id} is ready", table=Table(rows))
    report.note("The app's current URLs (passwords never shown); pgBackRest keeps roles and "
                "password hashes, so the same credentials log in to the new cluster.")
    return report


def not_ready(env: str, new_id: str, status: str, elapsed: float, timeout: float, *,
              carry_on: str) -> RollbackError:
    """Why the wait for the restored cluster ends without it: it failed, or time ran out."""
    if status in TERMINAL:
        return RestoreFailed(
            f"The restored cluster {new_id} for {env} ended {status!r}.",
            f"Nothing was flipped; the source is untouched. Check `flyctl mpg status {new_id}` "
            "and retry the restore (a human removes the failed cluster later).")
    return RestoreTimeout(
        f"The restored cluster {new_id} for {env} is still {status!r} "
        f"after {elapsed:.0f}s (ready_timeout {timeout:.0f}s).",
        f"Nothing was flipped. Carry on with the same cluster (it is not restored again): "
        f"`{carry_on}`. Meanwhile `flyctl mpg status {new_id}` shows its progress.")
