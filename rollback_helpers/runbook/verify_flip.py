"""After the human flip: is the new cluster serving? Only then may a human destroy the old one.

    start → preflight → read_urls → verify_connections → check_health_and_map → verdict

It runs where Path B's checklist names it: the new cluster is the one given, else the
cluster map's, else (the map still names the old cluster) the one Path B's run comment
names, and the map edit is then reported as the step still to do. The image the app runs
is checked against the restored schema (:mod:`.path_b_image`). Its verdict is explicit
either way — each failure names what failed — and it never detaches or destroys anything.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from rollback_helpers.clients.database import ConnectionCheck, DbUrl, check_connection, parse_db_url
from rollback_helpers.clients.health import HealthResult, check_health
from rollback_helpers.clock import utc_iso
from rollback_helpers.domain.cluster_map import ClusterMap, read_cluster_map
from rollback_helpers.domain.parameters import VerifyFlipParameters, checked
from rollback_helpers.errors import PreconditionFailed, RollbackError, VerificationFailed
from rollback_helpers.hints import Option, Rerun, RunPath, hint
from rollback_helpers.run.context import RunContext, open_run
from rollback_helpers.run.run_comment import FoundRun, PostedRunComment, own_runs, previous_runs
from rollback_helpers.runbook.path_b_facts import newest_record, source_check
from rollback_helpers.runbook.path_b_image import Schema, read_images, schema_problems
from rollback_helpers.ui.display import Report
from rollback_helpers.ui.interactive import Screen
from rollback_helpers.ui.table import Table


def start(parameters: Mapping[str, Any], *, screen: Screen | None = None) -> VerifyFlip:
    """Check the notebook's parameters (one mapping, as papermill gives them) and open the
    seams; it only reads, so it never takes the lock."""
    return VerifyFlip(open_run(checked(VerifyFlipParameters, parameters), screen=screen))


class VerifyFlip:
    def __init__(self, ctx: RunContext) -> None:
        self.ctx = ctx
        params = ctx.params_as(VerifyFlipParameters)
        self.github = ctx.backends.github(ctx.cfg)
        self.fly = ctx.backends.fly(ctx.cfg, app=ctx.env.app)
        self.new_cluster = params.new_cluster or None  # the map's, once preflight read it
        self.old_cluster = params.old_cluster or None  # the newest record's, once read
        self.cluster_map: ClusterMap | None = None
        self.urls: dict[str, DbUrl] = {}
        self.checks: list[ConnectionCheck] = []
        self.health: HealthResult | None = None
        self.missing: list[tuple[str, str]] = []  # (what failed, what to do)
        self.path_b: FoundRun | None = None  # Path B's run comment with the flip pending
        self.map_edit_pending = False

    def _path_b_run(self) -> FoundRun | None:
        """The newest Path B run on the bad deploy's record that left a flip (pending or done)."""
        try:
            number = newest_record(self.ctx, self.github, None).number
            runs, _ = own_runs(previous_runs(self.github.comments, [number], path="path-b",
                                             env=self.ctx.env.name),
                               self.github.access.login())  # only the runbook's own word
        except RollbackError as exc:
            self.ctx.log(f"no Path B run comment read: {exc.what}")
            return None
        return next((run for run in runs if run.record.new_cluster and run.record.state in
                     ("flip pending", "flip verified")), None)

    def preflight(self) -> Report:
        cfg = self.ctx.cfg
        self.cluster_map = read_cluster_map(repo_path=cfg.cluster_map_path,
                                            local_file=cfg.cluster_map_file, github=self.github.contents)
        mapped = self.cluster_map.cluster_for(self.ctx.env.name)
        if self.old_cluster is None:
            self.old_cluster = newest_record(self.ctx, self.github, None).cluster_id or None
        self.path_b = self._path_b_run()
        if not self.new_cluster and mapped == self.old_cluster and self.path_b is not None:
            self.new_cluster = self.path_b.record.new_cluster  # the map edit is still to do
        self.new_cluster = self.new_cluster or mapped
        if not self.old_cluster:
            raise PreconditionFailed(
                f"Which cluster is the old one for {self.ctx.env.name}? The newest deployment "
                "record names none.",
                hint("Re-run with ", Option("old_cluster", "<the cluster that was replaced>"), "."))
        if self.old_cluster == self.new_cluster:
            raise PreconditionFailed(
                f"Map not edited, and no new cluster known: {cfg.cluster_map_path} names the old "
                f"cluster {self.new_cluster} for {self.ctx.env.name}, and no Path B run comment "
                "names a restored cluster.",
                hint("Apply the cluster-map diff from Path B's checklist, or re-run with ",
                     Option("new_cluster", "<restored cluster id>"), "."))
        self.map_edit_pending = mapped != self.new_cluster
        report = self.ctx.preflight_report("Preflight: verify the flip (Path B, after the human steps)")
        report.fact("old cluster", self.old_cluster).fact("new cluster", self.new_cluster)
        if self.path_b is not None:
            report.fact("Path B run", f"{self.path_b.record.run_id} ({self.path_b.html_url})")
        if self.map_edit_pending:
            report.note(f"{cfg.cluster_map_path} still names {mapped} for {self.ctx.env.name}: "
                        f"its edit to {self.new_cluster} is still to do (the checklist's map step).")
        return report

    def read_urls(self) -> Report:
        """The app's URLs as the running machines see them (after the redeploy)."""
        app = self.ctx.env.app
        started = self.fly.status(app).started()
        if not started:
            raise PreconditionFailed(f"{app} has no started machine.",
                                     hint("Wait for the redeploy to finish, then ", Rerun(), "."))
        for var in (self.ctx.cfg.database_url_var, self.ctx.cfg.migration_url_var):
            url = parse_db_url(self.fly.read_secret_env(app, started[0].id, var), var)
            self.urls[var] = url
            if url.cluster_id != self.new_cluster:
                self.missing.append(("URL not flipped", f"{var} on {app} still points at "
                                     f"{url.cluster_id or url.host}, not {self.new_cluster}: update "
                                     "it in Infisical and redeploy"))
        rows = [{"variable": u.var, "url": u.shown(), "cluster": u.cluster_id,
                 "flipped": u.cluster_id == self.new_cluster} for u in self.urls.values()]
        return Report(f"{app}'s database URLs now", table=Table(rows),
                      status="ok" if all(r["flipped"] for r in rows) else "warning")

    def verify_connections(self) -> Report:
        new_id = self.new_cluster or ""
        schema = Schema.parse(self.path_b.record.schema) if self.path_b else None
        tables = self.ctx.cfg.verify_tables or (schema.tables if schema else ())
        with self.fly.mpg_proxy(new_id) as tunnel:
            self.checks = [check_connection(tunnel.local_port, u, tables=tables)
                           for u in self.urls.values()]
        for check in self.checks:
            if not check.ok:
                self.missing.append(("login", f"{check.user} cannot log in to {new_id}: "
                                              f"{check.error}"))
        rows = [{"user": c.user, "connected": c.connected, "in recovery": c.in_recovery,
                 "newest migration": c.newest_migration, "error": c.error} for c in self.checks]
        report = Report(f"Logins through the tunnel to {new_id}", table=Table(rows),
                        status="ok" if all(c.ok for c in self.checks) else "failed")
        if self.checks and self.checks[0].connected:
            self._check_image(report, schema)
        return report

    def _check_image(self, report: Report, schema: Schema | None) -> None:
        """The image the app runs against the restored schema (runbook.path_b_image)."""
        images = read_images(self.fly, self.ctx.env.app, newest_record(self.ctx, self.github, None))
        report.fact("app runs", images.running_text())
        old_migration = ""
        if images.runs_bad and not (schema and schema.bad):
            old = source_check(self.ctx, self.fly, self.urls, self.old_cluster or "", ())
            old_migration = old.newest_migration.partition(": ")[2] if old else ""
        for kind, text in schema_problems(images, schema, self.checks[0], old_migration):
            self.missing.append((kind, text))
            report.status = "failed"

    def check_health_and_map(self) -> Report:
        self.health = check_health(self.ctx.backends.http, self.ctx.env.health_url,
                                   clock=self.ctx.backends.clock, grace=self.ctx.cfg.health_grace,
                                   interval=self.ctx.cfg.health_interval,
                                   consecutive=self.ctx.cfg.health_consecutive)
        if not self.health.healthy:
            self.missing.append(("health", f"{self.ctx.env.health_url}: {self.health.summary}"))
        else:
            self._metrics_verdict()
        cmap = self.cluster_map
        mapped = cmap.clusters.get(self.ctx.env.name) if cmap else None
        if mapped != self.new_cluster:
            self.missing.append(("map not edited", f"{self.ctx.cfg.cluster_map_path} names {mapped} "
                                 f"for {self.ctx.env.name}, not {self.new_cluster}: apply the "
                                 "checklist's diff and merge it"))
        healthy, on_map = self.health.healthy, mapped == self.new_cluster
        return Report("Health and cluster map", status="ok" if healthy and on_map else "failed").fact(
            "health", ("✅ " if healthy else "❌ ") + self.health.summary).fact(
            "cluster map", f"{'✅' if on_map else '❌'} {self.ctx.env.name} → {mapped}")

    def _metrics_verdict(self) -> None:
        """Path A's verdict after the flip: the last watch window (no wait) against the baseline
        before the bad deploy. Not recovered is a missing step; no evidence or too little
        traffic is a note."""
        from rollback_helpers.runbook.path_a_evidence import Evidence

        evidence = Evidence(self.ctx)
        try:
            bad = newest_record(self.ctx, self.github, None)
        except RollbackError:
            bad = None
        self.ctx.show(evidence.incident(bad))
        self.ctx.show(evidence.judge_recent())
        self.ctx.show(evidence.chart())
        verdict = evidence.verdict
        if verdict is not None and verdict.outcome == "not_recovered":
            self.missing.append(("metrics not recovered", "the incident did not end: "
                                 + "; ".join(verdict.bad_signals)))

    def verdict(self) -> Report:
        old = self.old_cluster
        if self.missing:
            kinds = list(dict.fromkeys(kind for kind, _ in self.missing))
            what = (f"The flip to {self.new_cluster} is not complete ({', '.join(kinds)}): "
                    + "; ".join(f"{kind}: {text}" for kind, text in self.missing) + ".")
            next_step = hint(f"Do not touch the old cluster {old}. Finish the missing steps, then "
                             "run again: ", RunPath("verify-flip", self.ctx.env.name), ".")
            if kinds == ["map not edited"]:  # everything else verified: one edit to do
                raise PreconditionFailed(what, next_step)
            raise VerificationFailed(what, next_step)
        self.ctx.log(f"flip verified: {self.new_cluster} serves {self.ctx.env.name}")
        report = Report(f"Verdict: the old cluster {old} may now be detached and destroyed by a human",
                        code=f"flyctl mpg detach {old} -a {self.ctx.env.app}\nflyctl mpg destroy {old}")
        report.note("The runbook never runs these. Run them by hand, after a last look.")
        report.fact("record comment", self._mark_flip_verified())
        if self.ctx.env.is_protected:
            report.note("🚨 Production: there is zero recovery after destroy. Take a final backup "
                        "of the new cluster first.")
        return report

    def _mark_flip_verified(self) -> str:
        """Path B's record comment said "flip pending": now it says "flip verified"."""
        try:
            number = newest_record(self.ctx, self.github, None).number
            runs, _ = own_runs(previous_runs(self.github.comments, [number], path="path-b",
                                             env=self.ctx.env.name), self.github.access.login())
        except RollbackError as exc:
            return f"not updated: {exc.what}"
        for run in runs:
            if run.record.state == "flip pending" and run.record.new_cluster == self.new_cluster:
                comment = PostedRunComment(self.github.comments, number, run.record, log=self.ctx.log,
                                        now=lambda: utc_iso(self.ctx.backends.clock.now()))
                comment.comment_id = run.comment_id
                comment.update(state="flip verified", next_step=(
                    f"a human may detach and destroy the old cluster {self.old_cluster}"))
                return f"{run.html_url}: flip verified"
        return f"no Path B run with a pending flip to {self.new_cluster} on #{number}"

    def finish(self, notebook: str | None = None) -> Report:
        """Interactive: archive the saved notebook (save it first). Headless: a no-op summary."""
        return self.ctx.finish(notebook)
