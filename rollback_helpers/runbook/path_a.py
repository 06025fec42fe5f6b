"""Path A — image rollback, the runbook's first resort. Each method is one notebook cell.

    start → preflight → current_state → recent_records → resolve_target → plan
          → (a dry run stops here) → dispatch → watch → verify → update_records → summary
          → finish

The rollback stays on the CI deploy path: the previous image is re-promoted
through the ``promote-image.yml`` workflow, never deployed from here, and the
database is not touched.

Headless, ``dry_run`` decides whether the changing steps run. Interactive
(JupyterLab), the plan step shows a button (:class:`~rollback_helpers.ui.interactive.Gate`)
and only pressing it makes the run live; until then the changing steps report
"skipped: not approved".
"""

from __future__ import annotations

import shlex
from collections.abc import Mapping
from functools import cached_property
from typing import TYPE_CHECKING, Any

from rollback_helpers.clients.fly import AppStatus
from rollback_helpers.clients.github import GitHubClient
from rollback_helpers.clients.health import HealthResult, check_health
from rollback_helpers.domain.deployments import (
    BadRecord,
    DeploymentRecord,
    Replay,
    record_from_issue,
    records_table,
)
from rollback_helpers.domain.parameters import PathAParameters, checked
from rollback_helpers.domain.rollback_target import RollbackTarget, resolve_rollback_target
from rollback_helpers.errors import PreconditionFailed, VerificationFailed, WorkflowFailed
from rollback_helpers.hints import Option, given_as, hint
from rollback_helpers.run.context import RunContext
from rollback_helpers.run.run_comment import RunComment
from rollback_helpers.runbook.first_reads import FirstReads, open_reading
from rollback_helpers.runbook.path_a_dispatch import Promotion
from rollback_helpers.runbook.resume import (
    LookBack,
    look_back_a,
    mark_carried_on,
    not_bad,
    target_in_place,
)
from rollback_helpers.runbook.second_person import SecondPerson
from rollback_helpers.runbook.steps import require
from rollback_helpers.ui.decisions import Decision
from rollback_helpers.ui.display import Report, ReportStatus, short
from rollback_helpers.ui.interactive import Gate, Screen
from rollback_helpers.ui.table import Table

if TYPE_CHECKING:
    from rollback_helpers.runbook.path_a_evidence import Evidence

Record = DeploymentRecord | BadRecord
PLAN_STEP = "4"  # the notebook's step that holds the gate


def start(parameters: Mapping[str, Any], *, screen: Screen | None = None) -> PathA:
    """Check the notebook's parameters (one mapping, as papermill gives them) and open the
    seams; a live run takes the environment's lock while the first reads are under way."""
    return open_reading(checked(PathAParameters, parameters), screen, PathA)


class PathA:
    def __init__(self, ctx: RunContext) -> None:
        self.ctx = ctx
        self.params = ctx.params_as(PathAParameters)
        self.back = LookBack()
        self.github: GitHubClient = ctx.backends.github(ctx.cfg)
        self.fly = ctx.backends.fly(ctx.cfg, app=ctx.env.app)
        labels = ctx.env.record_labels
        self.records = Replay(
            record_from_issue(issue, env=ctx.env.name, rolled_back_label=ctx.cfg.rolled_back_label)
            for issue in self.github.issues.iter_issues(labels))
        self.status: AppStatus | None = None
        self.target: RollbackTarget | None = None
        self.promotion = Promotion(ctx, self.github, watch_in_flight=self.params.watch_in_flight)
        self.health: HealthResult | None = None
        self.comment_url = ""
        self.outcome = "in progress"
        self.approval: Decision | None = None
        self.second = SecondPerson(ctx, plan=self.gh_command, what=self.gate_label, workflow=True)
        self.approved_image = self.approved_running = ""  # the plan the approval was for
        self.reads = FirstReads(ctx.backends.clock, lambda: self.fly.status(ctx.env.app),
                                self.records, ahead=not ctx.interactive)

    @cached_property
    def evidence(self) -> Evidence:
        """The run's metrics, from the plan on: loaded by the first step that reads them."""
        from rollback_helpers.runbook.path_a_evidence import Evidence

        return Evidence(self.ctx, override=self.params.override_unhealthy_target)

    # -- read-only steps -----------------------------------------------------
    def preflight(self) -> Report:
        report = self.ctx.preflight_report("Preflight: Path A — image rollback")
        report.fact("workflow", f"{self.ctx.cfg.workflow} @ {self.ctx.cfg.workflow_ref}")
        report.fact("health URL", self.ctx.env.health_url)
        if self.params.target_digest:
            report.fact("target (given)", self.params.target_digest)
        if self.ctx.interactive:
            report.note(f"Interactive: nothing changes until you press the button in step "
                        f"{PLAN_STEP} (parameters dry_run and confirm are not used here).")
        return report

    def current_state(self) -> Report:
        """What Fly runs now: the truth the records are checked against."""
        self.status = self.reads.status()
        digests = self.status.running_digests()
        rows = [{"machine": m.id, "state": m.state, "region": m.region,
                 "release": m.release_version, "image digest": short(m.image_digest)}
                for m in self.status.machines]
        report = Report(f"What runs now on {self.ctx.env.app}", table=Table(rows))
        if not self.status.started():
            raise PreconditionFailed(
                f"{self.ctx.env.app} ({self.ctx.env.name}) has no started machines.",
                f"Check `flyctl status -a {self.ctx.env.app}`; an app that is down needs the "
                "platform incident runbook, not a rollback.")
        if len(digests) > 1 and not self.params.target_digest:
            raise PreconditionFailed(
                f"{self.ctx.env.app} runs {len(digests)} different images "
                f"({', '.join(short(d) for d in sorted(digests))}): a deploy may be half-way.",
                hint("Wait for the deploy to finish, or name the image to go back to with ",
                     Option("target_digest", "sha256:…"), "."))
        report.fact("running digest", ", ".join(sorted(digests)))
        self.ctx.log(f"running: {', '.join(short(d) for d in sorted(digests))}")
        return report

    def recent_records(self, limit: int = 10) -> Report:
        """The newest deployment records for this environment (read newest first, lazily)."""
        self.reads.records()
        shown = [r for _, r in zip(range(limit), self.records, strict=False)]
        table = Table(records_table(shown))
        report = Report(f"Recent deployment records for {self.ctx.env.name}", table=table)
        if not shown:
            report.status = "warning"
            report.note(f"No issues labelled {', '.join(self.ctx.env.record_labels)} in "
                        f"{self.ctx.cfg.github_repo}.")
        for record in shown:
            if isinstance(record, BadRecord):
                report.status = "warning"
                report.note(f"#{record.number} is not a usable record: {record.reason}")
        return report

    def resolve_target(self) -> Report:
        self.reads.records()
        running = require(self.status, "current_state").running_digests()
        repository = None
        if self.status and self.status.started():
            repository = self.status.started()[0].image_repository
        approved, self.target = (self.approved_image, self.approved_running), None
        try:
            self.target = self._resolve(sorted(running)[0], repository)
        finally:  # another plan (or none: resolving failed) needs another approval
            t = self.target
            if self.approval is not None and self.ctx.interactive and (
                    t is None or (str(t.image), t.running_digest) != approved):
                self.approval, self.approved_image = None, ""
                self.ctx.go_dry("the plan changed after the approval: press the button again")
        if self.target is None:
            self.outcome = "already rolled back: nothing to do"
            return self.back.note(Report("Rollback target: already rolled back", status="ok"))
        t = self.target
        report = self.back.note(Report("Rollback target"))
        report.fact("running now", t.running_digest)
        report.fact("bad deploy record", f"#{t.bad_record.number}" if t.bad_record else "—")
        report.fact("roll back to", str(t.image))
        report.fact("from record", f"#{t.target.number} ({t.target.deployed_at})" if t.target
                    else "— (explicit, unrecorded)")
        report.fact("chosen by", "operator (target_digest)" if t.explicit else "deployment records")
        for number, why in t.skipped:
            report.note(f"skipped #{number}: {why}")
        self.ctx.log(f"target: {short(t.image.digest)}"
                     + (f" from record #{t.target.number}" if t.target else ""))
        if t.bad_record is not None:  # the impact window's start, for stats and the postmortem
            self.ctx.log(f"bad deploy: record #{t.bad_record.number}, deployed "
                         f"{t.bad_record.deployed_at}")
        return report

    def _resolve(self, running: str, repository: str | None) -> RollbackTarget | None:
        """The target, after reading what earlier runs of Path A did (their record comments)."""
        self.back = back = look_back_a(self.ctx, self.records, running)
        earlier = back.earlier
        if earlier is not None and back.done and not self.params.target_digest:
            return None
        if earlier is not None and back.carry_on and back.put_there:
            found = target_in_place(self.records, self.ctx.env.name, earlier, running)
            if found is not None:
                return found
        records = not_bad(self.records, earlier.issue) if earlier is not None and \
            back.put_there else self.records
        target = resolve_rollback_target(
            records, env=self.ctx.env.name, running_digest=running,
            target_digest=self.params.target_digest,
            allow_unrecorded_target=self.params.allow_unrecorded_target, repository=repository)
        if earlier is not None and back.carry_on and str(target.image) != earlier.record.target:
            self.back = LookBack(earlier)  # it aimed elsewhere: start afresh
        return target

    def gh_command(self) -> str:
        """The human-readable CLI form of the dispatch this path makes."""
        target = require(self.target, "resolve_target")
        cfg = self.ctx.cfg
        return shlex.join(["gh", "workflow", "run", cfg.workflow, "--repo", cfg.github_repo,
                           "--ref", cfg.workflow_ref,
                           "-f", f"{cfg.workflow_env_input}={self.ctx.env.name}",
                           "-f", f"{cfg.workflow_image_input}={target.image}"])

    def plan(self) -> None:
        """The plan, and the decision to carry it out: a parameter headless, a button in Lab."""
        if self.back.done:
            self.ctx.show(self.back.note(Report("Plan: nothing to do", status="ok")))
            return
        if self.ctx.interactive and self.target is None:
            self.ctx.show(Report("Plan: not resolved", status="stopped").note(
                "Run steps 1–3 first: the button below stays disabled until the plan is resolved."))
            self._gate().show()
            return
        target = require(self.target, "resolve_target")
        for evidence in self.evidence.plan(target):  # the metrics: incident and track record
            self.ctx.show(evidence)
        self.evidence.check_target(target)  # an unhealthy target stops here unless overridden
        status: ReportStatus = "pending" if self.ctx.interactive and self.approval is None else \
            "stopped" if self.ctx.dry_run else "ok"
        report = Report("Plan", status=status, code=self.gh_command())
        report.fact("1. dispatch", f"{self.ctx.cfg.workflow} on {self.ctx.cfg.workflow_ref}")
        report.fact("2. watch", "the workflow run until it completes")
        report.fact("3. verify", f"every started machine on {short(target.image.digest)}; "
                    f"GET {self.ctx.env.health_url} → 200; the metrics watched for "
                    f"{self.ctx.env.metrics.watch_window:g} s")
        report.fact("4. record", f"comment on #{target.bad_record.number} and label it "
                    f"{self.ctx.cfg.rolled_back_label!r}" if target.bad_record
                    else "no record to label")
        report.note("The database is not touched. No local `flyctl deploy`; "
                    "the rollback stays on CI.")
        self.back.note(report)
        if self.ctx.interactive:
            self.ctx.show(report)
            self._gate().show()
            return
        if self.ctx.dry_run:
            report.note(hint("DRY RUN: nothing was changed. Re-run with ", Option("dry_run", False),
                             " to roll back.").render())
            self.outcome = "dry run: plan resolved"
        self.ctx.show(report)
        self.ctx.show(self._decide_by_parameters().report())
        if not self.ctx.dry_run:
            self.promotion.look_ahead()  # the in-flight guard's listing, beside the record comment
            self._record_start()

    def _record_start(self) -> None:
        """Before anything changes: this run's record comment on the bad deploy's record."""
        target = require(self.target, "resolve_target")
        if target.bad_record is None:
            self.ctx.log("no deployment record to keep this run's record comment on")
            return
        earlier = self.back.earlier if self.back.carry_on else None
        record = RunComment(
            self.ctx.run_id, "path-a", self.ctx.env.name, operator=self.ctx.operator,
            started_at=self.ctx.started_at, reason=self.ctx.reason, incident=self.ctx.incident,
            archive=self.ctx.archive_path,
            running=target.running_digest, target=str(target.image),
            resumes=earlier.record.run_id if earlier else "",
            workflow_run=earlier.record.workflow_run if earlier else "")
        self.ctx.show(self.ctx.lifecycle.post_record(target.bad_record.number, record))
        if earlier is not None:
            mark_carried_on(self.ctx, earlier)

    def gate_label(self) -> str:
        target = self.target
        where = short(target.image.digest).removeprefix("sha256:") if target else "…"
        return f"Roll back {self.ctx.env.name} to sha256:{where}"

    def _gate(self) -> Gate:
        return Gate(self.gate_label(), env=self.ctx.env.name,
                    protected=self.ctx.env.is_protected,
                    resolved=self.target is not None, approve=self.approve,
                    screen=self.ctx.screen, approved=self.approval)

    def approve(self, how: str) -> Decision:
        """The engineer's approval of the plan shown: the run goes live for this target."""
        target = require(self.target, "resolve_target")
        self.ctx.go_live()  # takes the environment lock first: a held lock is no approval
        decision = self.ctx.decide(f"roll back {self.ctx.env.name} to {target.image}", how, "plan")
        self.approval, self.approved_image = decision, str(target.image)
        self.approved_running = target.running_digest
        self.ctx.archive_path = ""  # a dry-run walkthrough archived earlier keeps its own file
        self.ctx.reserve_archive_path()  # so the record comment can name the live archive
        self._record_start()
        self.outcome = "approved: rolling back"
        return decision

    def _decide_by_parameters(self) -> Decision:
        target = require(self.target, "resolve_target")
        if self.ctx.dry_run:
            return self.ctx.decide("dry run: show the plan, change nothing",
                                   given_as("dry_run", True), "plan")
        how = given_as("dry_run", False) + (f", {given_as('confirm', self.ctx.env.name)}"
                                            if self.ctx.env.is_protected else "")
        decision = self.ctx.decide(f"roll back {self.ctx.env.name} to {target.image}", how, "plan")
        self.approval, self.approved_image = decision, str(target.image)
        return decision

    def _not_cleared(self, step: str) -> Report | None:
        """Why a changing step must not run now (a report to show), or None to go ahead."""
        if self.back.done:
            return Report(f"{step}: skipped (already rolled back)", status="skipped")
        approved = (self.approval is not None and self.target is not None
                    and self.approved_image == str(self.target.image))
        return self.ctx.hold(step, approved=approved, gate_step=PLAN_STEP, then=self.second.clear)

    # -- steps that change something (skipped on a dry run) --------------------
    def dispatch(self) -> Report:
        if (stop := self._not_cleared("Dispatch")) is not None:
            return stop
        self.evidence.moments["dispatch"] = self.ctx.backends.clock.now()
        return self.promotion.dispatch(require(self.target, "resolve_target"), self.status,
                                       self.back)

    def watch(self) -> Report:
        if (stop := self._not_cleared("Watch the workflow run")) is not None:
            return stop
        try:
            return self.promotion.watch(self.target, self.status,
                                        gate_counted=self.second.gate_counted)
        except WorkflowFailed:
            self.outcome = "workflow failed"
            raise

    def verify(self) -> Report:
        if (stop := self._not_cleared("Verify")) is not None:
            return stop
        target = require(self.target, "resolve_target")
        status = self.status = self.promotion.wait_for_rollout(self.fly, target.image.digest)
        on_target = self.ctx.backends.clock.now()
        off = [m.id for m in status.started() if m.image_digest != target.image.digest]
        self.health = check_health(self.ctx.backends.http, self.ctx.env.health_url,
                                   clock=self.ctx.backends.clock, grace=self.ctx.cfg.health_grace,
                                   interval=self.ctx.cfg.health_interval,
                                   consecutive=self.ctx.cfg.health_consecutive)
        h = self.health
        report = Report("Verification", status="ok" if not off and h.healthy else "failed")
        started = len(status.started())
        report.fact("machines on target", f"{started - len(off)}/{started}")
        report.fact("health", h.summary)
        self.ctx.log(f"verify: {len(off)} machine(s) off target, health {h.status_code}")
        if not off and h.healthy:  # the rollback happened: did the incident end?
            report.fact("metrics", self.evidence.after_rollout(on_target))
        if off or not h.healthy:
            self.outcome = "verification failed"
            raise VerificationFailed(
                f"After the rollback of {self.ctx.env.app}: machines not on "
                f"{short(target.image.digest)}: {off or 'none'}; health {h.url}: {h.summary} "
                f"({h.detail}).",
                f"Check `flyctl status -a {self.ctx.env.app}` and the app's logs "
                f"(`flyctl logs -a {self.ctx.env.app}`). If the previous image is also broken, "
                "consider Path B or escalate.")
        return report

    def update_records(self) -> Report:
        if (stop := self._not_cleared("Update the deployment record")) is not None:
            return stop
        target = require(self.target, "resolve_target")
        if target.bad_record is None:
            return Report("Deployment record", status="warning").note(
                "No record matches the image that was running; nothing to comment on.")
        number = target.bad_record.number
        self.github.issues.add_labels(number, [self.ctx.cfg.rolled_back_label])
        health = require(self.health, "verify")
        promoted = self.promotion.run
        run = f"{promoted.html_url} ({promoted.conclusion})" if promoted else "none needed"
        self.ctx.lifecycle.update_record(
            state="succeeded", running=str(target.image),
            tried=f"workflow run {run}; every started machine on the target; "
                  f"health {health.status_code}; labelled {self.ctx.cfg.rolled_back_label}")
        record = self.ctx.lifecycle.record
        self.comment_url = record.html_url if record else ""
        self.ctx.log(f"recorded on #{number} and labelled it {self.ctx.cfg.rolled_back_label}")
        self.outcome = "rolled back and verified" + (f"; metrics: {self.evidence.summary()}"
                                                     if self.evidence.verdict else "")
        return Report(f"Updated deployment record #{number}").fact(
            "record comment", self.comment_url or "—").fact(
            "label added", self.ctx.cfg.rolled_back_label)

    def summary(self) -> Report:
        if self.ctx.interactive and self.approval is None:
            self.outcome = "dry run: plan resolved, not approved" if self.target else self.outcome
        self.reads.settle()
        self.promotion.settle()
        self.ctx.end()
        return self.ctx.summary_report(self.outcome)

    def finish(self, notebook: str | None = None) -> Report:
        """Interactive: archive the saved notebook (save it first). Headless: a no-op summary."""
        return self.ctx.finish(notebook)
