"""Path B — database break-glass. The software prepares, the human flips.

    start → preflight → resolve → plan → (a dry run stops here) → restore
          → wait_until_ready (reads the app's URLs meanwhile) → verify_new_cluster
          → record → checklist → summary

``flyctl mpg restore`` always forks a NEW cluster; the source keeps running,
untouched. Nothing destructive is ever run: the flip (Infisical, redeploy,
cluster map, detach + destroy of the old cluster) is printed for a human.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, cast

from rollback_helpers.clients.database import ConnectionCheck, DbUrl, check_connection
from rollback_helpers.clients.fly import Backup, Cluster
from rollback_helpers.clock import PollSchedule, together
from rollback_helpers.domain.parameters import PathBParameters, checked
from rollback_helpers.errors import (
    BackupError,
    CommandFailed,
    CommandTimeout,
    ConnectivityError,
)
from rollback_helpers.hints import Option, Rerun, given_as, hint
from rollback_helpers.run.context import RunContext
from rollback_helpers.run.run_comment import RunComment
from rollback_helpers.runbook.first_reads import open_reading
from rollback_helpers.runbook.path_b_checklist import (
    Flip,
    checklist_report,
    drill_world,
    hand_over,
    next_step,
    rerun_command,
)
from rollback_helpers.runbook.path_b_facts import (
    TERMINAL,
    RecordAndMap,
    Resolved,
    check_backup,
    check_source,
    checks_table,
    differences,
    keeps_checklist,
    not_ready,
    source_check,
    unrecorded_restore,
    urls_report,
)
from rollback_helpers.runbook.path_b_image import (
    Images,
    Schema,
    image_step,
    plan_note,
    read_images,
    schema_of,
)
from rollback_helpers.runbook.path_b_restore import (
    LostWrites,
    RestorePoint,
    choose_point,
    look_back_b,
    plan_report,
    request_restore,
    sandbox_limitation,
    url_reads,
)
from rollback_helpers.runbook.resume import LookBack, mark_carried_on
from rollback_helpers.runbook.second_person import SecondPerson
from rollback_helpers.runbook.steps import require
from rollback_helpers.ui.decisions import Decision
from rollback_helpers.ui.display import Report
from rollback_helpers.ui.interactive import Checklist, Gate, Screen
from rollback_helpers.ui.progress import Progress

PLAN_STEP = "2"  # the notebook's step that holds the gate


def start(parameters: Mapping[str, Any], *, screen: Screen | None = None) -> PathB:
    """Check the notebook's parameters (one mapping, as papermill gives them) and open the
    seams; a live run takes the environment's lock while the records and the cluster map are
    read (headless: see :mod:`.first_reads`)."""
    return open_reading(checked(PathBParameters, parameters), screen, PathB)


class PathB:
    def __init__(self, ctx: RunContext) -> None:
        self.ctx = ctx
        self.params = ctx.params_as(PathBParameters)
        self.github = ctx.backends.github(ctx.cfg)
        self.fly = ctx.backends.fly(ctx.cfg, app=ctx.env.app)
        self.resolved: Resolved | None = None
        self.new_cluster: str | None = None
        self.restore_started: float | None = None  # this run's restore request (clock time)
        self.urls: dict[str, DbUrl] = {}
        self.checks: list[ConnectionCheck] = []
        self.images: Images | None = None  # which image the app runs, and each schema's image
        self.schema: Schema | None = None  # the restored schema, once verified
        self.point: RestorePoint  # the backup or a point in time (resolve)
        self.outcome = "in progress"
        self.approval: Decision | None = None
        self.ready = False  # the new cluster reached `ready`: from then on the checklist shows
        self.back = LookBack()
        self.second = SecondPerson(ctx, plan=self._what, what=self._what)
        self.reads = RecordAndMap(ctx, self.github, self.params.record_number)

    # -- read-only steps -------------------------------------------------------
    def preflight(self) -> Report:
        report = self.ctx.preflight_report("Preflight: Path B — database break-glass")
        report.fact("cluster map", self.ctx.cfg.cluster_map_file or
                    f"{self.ctx.cfg.github_repo}:{self.ctx.cfg.cluster_map_path}")
        report.fact("ready timeout", f"{self.ctx.cfg.ready_timeout:.0f}s")
        report.note("Restore always forks a NEW cluster; the current cluster is never touched. "
                    "No destructive step is automated.")
        return report

    def resolve(self) -> Report:
        """Backup id and source cluster, each cross-checked against what Fly says."""
        ctx = self.ctx
        record, cmap = self.reads.result()
        source_id = self.params.source_cluster or cmap.cluster_for(ctx.env.name)
        backup_id = self.params.backup_id or record.backup_id
        if not backup_id:
            raise BackupError(
                f"Deployment record #{record.number} for {ctx.env.name} has no backup_id "
                "(a non-mutating deploy, or the snapshot step did not run).",
                hint(f"List the backups with `flyctl mpg backup list {source_id} --all` and re-run "
                     "with ", Option("backup_id", "<the last one before the bad deploy>"), "."))
        # side by side; the cluster's check speaks first (a wrong cluster explains the rest)
        source, (backup, images) = together(
            ctx.backends.clock, lambda: check_source(ctx, self.fly, source_id, record),
            lambda: check_backup(self.fly, source_id, backup_id, record),
            lambda: read_images(self.fly, ctx.env.app, record))
        backup = cast(Backup, backup)
        name = self.params.new_cluster_name or f"{source.name}-restore"
        self.resolved = Resolved(record, backup, source, cmap, name)
        self.images = cast(Images, images)
        self.point = choose_point(self.params.pitr_time, source, backup, record)
        ctx.log(f"resolved: backup {backup.id} of {source.id} (record #{record.number})")
        ctx.log(f"bad deploy: record #{record.number}, deployed {record.deployed_at}")
        self._look_back(record.number, source)
        report = self.back.note(Report("Restore point"))
        for key, value in [("bad deploy record", f"#{record.number} ({record.deployed_at})"),
                           ("backup", f"{backup.id} ({backup.type}, {backup.status}, "
                                      f"{backup.start} → {backup.stop})"),
                           ("source cluster", f"{source.id} ({source.name}, {source.status}, "
                                              f"v{source.version})"),
                           ("restore to", self.point.what()),
                           ("attached to", ", ".join(source.attached_apps) or "—"),
                           ("app runs", self.images.running_text()),
                           ("restored schema's image",
                            f"{record.previous_image.short} (previous_image of #{record.number})"
                            if record.previous_image else "— (the record names no previous_image)"),
                           ("cluster map says", cmap.clusters.get(ctx.env.name, "—"))]:
            report.fact(key, value)
        return report

    def _look_back(self, number: int, source: Cluster) -> None:
        """An earlier run on this record: done (flip pending), or to carry on with its cluster."""
        self.back, self.new_cluster = look_back_b(self.ctx, self.fly, number, source)
        if self.back.done and self.back.earlier is not None:
            self.outcome = f"already prepared by run {self.back.earlier.record.run_id}: flip pending"

    def plan(self) -> Report | None:
        r = require(self.resolved, "resolve")
        report = plan_report(self.ctx, r, self.point, self.params.path_a_tried)
        if self.images is not None:
            report.note(plan_note(self.images))
        self.back.note(report)
        if self.back.done:
            report.status = "ok"
            return report
        if self.ctx.interactive:
            report.status = "ok" if self.approval else "pending"
            self.ctx.show(report)
            self._gate().show()
            return None
        if self.ctx.dry_run:
            report.note(hint("DRY RUN: nothing was changed. Re-run with ", Option("dry_run", False),
                             " to restore.").render())
            self.outcome = "dry run: plan resolved"
            self.ctx.decide("dry run: show the plan, change nothing", given_as("dry_run", True),
                            "plan")
        else:
            how = given_as("dry_run", False) + (f", {given_as('confirm', self.ctx.env.name)}"
                                                if self.ctx.env.is_protected else "")
            self._record_choices()
            self.approval = self.ctx.decide(self._what(), how, "plan")
            self._record_start()
        return report

    def _record_choices(self) -> None:
        self.ctx.decide(f"restore to {self.point.what()}", given_as("pitr_time", self.point.pitr_time) if
                        self.point.pitr_time else "the default: the pre-deploy backup", "plan")
        if self.params.path_a_tried:
            self.ctx.decide(f"Path A is not enough: {self.params.path_a_tried}",
                            given_as("path_a_tried", self.params.path_a_tried), "plan")

    def _record_start(self) -> None:
        """Before anything changes: this run's record comment on the bad deploy's record."""
        r = require(self.resolved, "resolve")
        earlier = self.back.earlier if self.back.carry_on else None
        record = RunComment(
            self.ctx.run_id, "path-b", self.ctx.env.name, operator=self.ctx.operator,
            started_at=self.ctx.started_at, reason=self.ctx.reason, incident=self.ctx.incident,
            archive=self.ctx.archive_path,
            running=r.source.id, target=f"{self.point.what()} of {r.source.id} → {r.new_name}",
            new_cluster=self.new_cluster or "", resumes=earlier.record.run_id if earlier else "")
        self.ctx.show(self.ctx.lifecycle.post_record(r.record.number, record))
        if earlier is not None:
            mark_carried_on(self.ctx, earlier)

    def _what(self) -> str:
        r = require(self.resolved, "resolve")
        what = self.point.what() if self.point.pitr_time else r.backup.id
        return f"restore {what} of {r.source.id} into a new cluster {r.new_name}"

    def _gate(self) -> Gate:
        return Gate(f"Restore {self.ctx.env.name}'s pre-deploy backup into a NEW cluster",
                    env=self.ctx.env.name, protected=self.ctx.env.is_protected,
                    resolved=self.resolved is not None, approve=self.approve,
                    screen=self.ctx.screen, approved=self.approval)

    def approve(self, how: str) -> Decision:
        """The engineer's approval of the plan shown: the run goes live."""
        self.ctx.go_live()  # takes the environment lock first: a held lock is no approval
        self._record_choices()
        self.approval = self.ctx.decide(self._what(), how, "plan")
        self.ctx.archive_path = ""
        self.ctx.reserve_archive_path()
        self._record_start()
        self.outcome = "approved: restoring"
        return self.approval

    def _not_cleared(self, step: str) -> Report | None:
        """Why a changing step must not run now (a report to show), or None to go ahead."""
        if self.back.done:
            return Report(f"{step}: skipped (already prepared)", status="skipped")
        return self.ctx.hold(step, approved=self.approval is not None, gate_step=PLAN_STEP,
                             then=self.second.clear)

    # -- steps that create something (skipped on a dry run) ------------------------
    def restore(self) -> Report:
        if (stop := self._not_cleared("Restore")) is not None:
            return stop
        r = require(self.resolved, "resolve")
        if self.new_cluster is not None:
            self.ctx.lifecycle.update_record(state="restored", new_cluster=self.new_cluster)
            return Report("Restore: not restored again", status="skipped").fact(
                "new cluster", f"{self.new_cluster} (restored by an earlier run of this rollback)")
        self.new_cluster = unrecorded_restore(self.ctx, self.fly, r.new_name,
                                              carry_on=self.back.carry_on)
        if self.new_cluster is not None:  # the earlier run restored it, then stopped
            return self.restore()
        self.restore_started = self.ctx.backends.clock.now()  # the readiness polls' grid
        result = request_restore(self.ctx, self.fly, r, self.point)
        self.new_cluster = result.new_id
        self.ctx.lifecycle.update_record(state="restored", new_cluster=result.new_id)
        self.ctx.lifecycle.note_on_lock(workflow_run_url=f"new cluster {result.new_id}")
        self.ctx.log(f"restore requested: {self.point.what()} → new cluster {result.new_id}")
        return self.ctx.with_facts(Report("Restore initiated").fact(
            "new cluster", f"{result.new_id} ({result.new_name})").fact(
            "source (untouched)", r.source.id), new_cluster=result.new_id)

    @keeps_checklist
    def wait_until_ready(self) -> Report:
        """Poll the new cluster at a fixed rate from the restore's start; between polls, read the
        app's URLs: the wait is the only long step, and no write between polls delays detection."""
        if (stop := self._not_cleared("Wait for readiness")) is not None:
            return stop
        new_id = require(self.new_cluster, "restore")
        clock, timeout = self.ctx.backends.clock, self.ctx.cfg.ready_timeout
        began, reads = clock.now(), url_reads(self.ctx, self.fly, self.urls)
        schedule = PollSchedule(clock, self.ctx.cfg.poll_interval, start=self.restore_started)
        progress = Progress(f"cluster {new_id}", total=timeout, interactive=self.ctx.interactive)
        while True:
            status = self.fly.mpg_status(new_id).cluster.status
            elapsed = clock.now() - began
            progress.update(elapsed, status)
            self.ctx.lifecycle.keep_alive()
            if status == "ready":
                self.ready = True
                break
            if status in TERMINAL or elapsed >= timeout:
                self.outcome = "restore failed" if status in TERMINAL else "restore timed out"
                raise not_ready(self.ctx.env.name, new_id, status, elapsed, timeout,
                                carry_on=rerun_command(self.ctx, ready_timeout=2 * timeout))
            next(reads, None)  # one slow read per gap between polls
            schedule.wait(until=began + timeout)
        done = (f"ready {clock.now() - schedule.start:.0f}s after the restore request"
                if self.restore_started is not None else f"ready after {clock.now() - began:.0f}s")
        for _ in reads:  # whatever was not read while waiting
            pass
        progress.close(done)
        self.ctx.log(f"cluster {new_id} {done}")
        return urls_report(new_id, self.urls)

    @keeps_checklist
    def verify_new_cluster(self) -> Report:
        if (stop := self._not_cleared("Verify the new cluster")) is not None:
            return stop
        new_id = require(self.new_cluster, "restore")
        r = require(self.resolved, "resolve")
        tables = self.ctx.cfg.verify_tables
        try:
            with self.fly.mpg_proxy(new_id) as tunnel:
                self.checks = [check_connection(tunnel.local_port, u, tables=tables)
                               for u in self.urls.values()]
        except (CommandFailed, CommandTimeout) as exc:
            self.outcome = "tunnel failed"
            raise sandbox_limitation(self.ctx, exc) or ConnectivityError(
                f"No tunnel to the new cluster {new_id}: {exc.what}",
                hint(f"Nothing was flipped. Retry `flyctl mpg proxy {new_id}` by hand (another "
                     "process may hold the port), then ", Rerun("verify the new cluster"), ".")) from exc
        compared = tables or tuple(self.checks[0].table_counts) if self.checks else tables
        source = source_check(self.ctx, self.fly, self.urls, r.source.id, compared)
        report = Report(f"Verified through the tunnel to {new_id}",
                        table=checks_table(self.checks, source))
        for note in differences(self.checks, source):
            report.note(note)
        if self.checks and self.checks[0].connected:
            self.schema = schema_of(self.checks[0], source)
        failed = [c for c in self.checks if not c.ok]
        if failed:
            report.status = "failed"
            self.outcome = "verification failed"
            raise ConnectivityError(
                f"On the new cluster {new_id}: " + "; ".join(
                    f"{c.user}: {c.error or 'in recovery'}" for c in failed),
                "Nothing was flipped. If only one user fails, its password was probably changed "
                "after the backup: reset it on the new cluster (human step), then re-run verify.")
        self.ctx.log(f"verified {', '.join(c.user for c in self.checks)} on {new_id}")
        self.ctx.lifecycle.update_record(state="verified")
        return report

    @keeps_checklist
    def record(self) -> Report:
        """Note on the deployment record what was prepared: the flip stays with a human."""
        if (stop := self._not_cleared("Update the deployment record")) is not None:
            return stop
        r = require(self.resolved, "resolve")
        new_id = require(self.new_cluster, "restore")
        self.ctx.lifecycle.update_record(
            state="flip pending", new_cluster=new_id,
            schema=self.schema.render() if self.schema else "",
            tried=f"restored {self.point.what()} of {r.source.id} into {new_id} ({r.new_name}); "
                  f"verified as {', '.join(c.user for c in self.checks)}",
            next_step="a human follows the flip checklist (the old cluster is untouched), then "
                      f"`rollback-runbook run verify-flip --env {self.ctx.env.name}`")
        record = self.ctx.lifecycle.record
        report = Report(f"Noted on deployment record #{r.record.number}").fact(
            "record comment", record.html_url if record else "—")
        if record is not None and record.last_error:  # the cluster is ready: say so, go on
            report.status = "warning"
            report.note(f"GitHub did not take the update ({record.last_error}); the command line "
                        f"tries again when the run ends. The new cluster {new_id} is ready: "
                        "the flip checklist below still applies.")
        self.ctx.log(f"recorded on #{r.record.number}: flip pending")
        return report

    def checklist(self) -> Report | None:
        """The manual flip, in the runbook's order, with the exact values. Then stop."""
        report = self.checklist_report()
        self.outcome = "prepared: flip pending" if not self.ctx.dry_run else self.outcome
        if self.ctx.interactive and not self.ctx.dry_run:
            self.ctx.show(report)
            Checklist.for_run(self.ctx, "Manual flip: tick each step as you finish it",
                              [str(text) for _, text in report.facts], step="flip checklist").show()
            return None
        return report

    def checklist_report(self) -> Report:
        r = require(self.resolved, "resolve")
        new_id = self.new_cluster or "<new cluster id>"
        first = image_step(self.images, self.schema, env=self.ctx.env.name,
                           protected=self.ctx.env.is_protected, run_id=self.ctx.run_id,
                           sandbox=drill_world(self.ctx)) if self.images else None
        report = checklist_report(self.ctx, Flip(r.source.id, new_id, self.urls, r.cluster_map,
                                                 first, bool(self.images and self.images.runs_previous)))
        lost = LostWrites(self.point.moment, r.record.deployed_at,
                          self.ctx.backends.clock.now()).text()
        return hand_over(report, new_id=new_id, lost_writes=lost,
                         next_step=next_step(self.ctx, self.images, first=first is not None))

    def summary(self) -> Report:
        if self.ctx.interactive and self.approval is None and self.resolved:
            self.outcome = "dry run: plan resolved, not approved"
        self.reads.settle()
        self.ctx.end()
        return self.ctx.summary_report(self.outcome)

    def finish(self, notebook: str | None = None) -> Report:
        """Interactive: archive the saved notebook (save it first). Headless: a no-op summary."""
        return self.ctx.finish(notebook)



