"""What Path B reads and hands over: the bad deploy's record, the flip's steps, the comparison.

Shared by Path B and verify-flip; nothing here changes anything.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol, TypeVar

from rollback_helpers.clients.database import ConnectionCheck, DbUrl
from rollback_helpers.clients.fly import Backup, Cluster
from rollback_helpers.domain.cluster_map import ClusterMap
from rollback_helpers.domain.records import BadRecord, DeploymentRecord, record_from_issue
from rollback_helpers.errors import RecordError, RollbackError
from rollback_helpers.run.context import RunContext
from rollback_helpers.ui.table import Table

R = TypeVar("R")


@dataclass(frozen=True)
class Resolved:
    record: DeploymentRecord
    backup: Backup
    source: Cluster
    cluster_map: ClusterMap
    new_name: str


def newest_record(ctx: RunContext, github: Any, number: int | None) -> DeploymentRecord:
    """The bad deploy's record: the newest for the environment (rolled back or not), or #number."""
    for issue in github.iter_issues(ctx.env.record_labels):
        if number is not None and issue.number != number:
            continue
        record = record_from_issue(issue, env=ctx.env.name, rolled_back_label=ctx.cfg.rolled_back_label)
        if isinstance(record, BadRecord):
            raise RecordError(f"Deployment record #{record.number} for {ctx.env.name} is malformed: "
                              f"{record.reason}",
                              f"Fix the issue ({record.url}), or pass backup_id= and "
                              "source_cluster= explicitly.")
        return record
    wanted = f"#{number}" if number is not None else "any deployment record"
    raise RecordError(f"Found {wanted} for {ctx.env.name} in {ctx.cfg.github_repo} "
                      f"(labels {', '.join(ctx.env.record_labels)}): none.",
                      "Check the record labels in the configuration, or pass backup_id= and "
                      "source_cluster= explicitly.")


def flip_steps(ctx: RunContext, old_id: str, new_id: str, urls: dict[str, DbUrl],
               cmap: ClusterMap) -> list[str]:
    cfg, env = ctx.cfg, ctx.env
    hosts = "; ".join(f"{u.var}: host {u.host} → {u.host.replace(old_id, new_id)}"
                      for u in urls.values()) or \
        f"{cfg.database_url_var} and {cfg.migration_url_var}: replace {old_id} with {new_id} in the host"
    return [
        f"In Infisical (project {cfg.infisical_project}, environment {env.infisical_env}), update "
        f"{cfg.database_url_var} and {cfg.migration_url_var} — {hosts}. Passwords stay the same. "
        "Never `flyctl secrets set`: the Infisical sync would overwrite it.",
        f"Redeploy {env.app} (or wait for Auto Redeploy), then run path_b_verify_flip.",
        f"Apply the diff below to {cmap.path} (the single source of truth) and merge it.",
        f"Only after the new cluster is verified serving: `flyctl mpg detach {old_id} -a {env.app}` and "
        f"`flyctl mpg destroy {old_id}` (human only).",
    ]


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
