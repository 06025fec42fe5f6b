"""The runbook's own approval gate, as a run meets it before its first change.

The rules (who counts, what an approval must name) are :mod:`rollback_helpers.run.approval`'s;
this is the waiting: post the plan in the run's record comment, tell the team,
look for ``/approve`` and ``/reject`` comments with progress until enough
people approved, a rejection, or ``approval_timeout``.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

from rollback_helpers.clients.github import WorkflowRun
from rollback_helpers.clients.github_access import EnvironmentGate, GitHubAccess, Review
from rollback_helpers.clock import PollSchedule
from rollback_helpers.errors import (
    ApprovalRejected,
    ApprovalTimeout,
    GitHubError,
    NotApproved,
    PreconditionFailed,
)
from rollback_helpers.run.approval import Judge, Verdict, approvers, plan_digest, rejection, who_may_approve
from rollback_helpers.run.context import RunContext
from rollback_helpers.run.run_comment import PostedRunComment, marker, parse_comment
from rollback_helpers.ui.decisions import make_decision
from rollback_helpers.ui.display import Report
from rollback_helpers.ui.progress import Progress


class SecondPerson:
    """Clears a live run's changing steps once enough people approved its plan."""

    def __init__(self, ctx: RunContext, *, plan: Callable[[], str], what: Callable[[], str],
                 workflow: bool = False) -> None:
        self.ctx = ctx
        self.plan = plan        # the change an approval is for (the exact command)
        self.what = what        # the plan in words, for the decisions
        self.workflow = workflow  # the change goes through a workflow: GitHub's gate may count
        self.cleared = ""       # the plan digest that was approved
        self.shown: set[str] = set()
        self.author = ""        # who posted the record comment: the operator on GitHub
        self.gate_counted = False  # GitHub's Environment gate was counted as one person

    def missing(self) -> tuple[int, str]:
        """How many more people must approve here, and why no more (GitHub's gate)."""
        required = self.ctx.env.required_approvals
        if required <= 1:
            return 0, ""
        gate = self._native_gate()
        if gate is not None and gate.prevent_self_review:
            self.gate_counted = True
            return required - 2, (f"GitHub environment {gate.name!r} requires a reviewer other "
                                  f"than the operator ({', '.join(gate.reviewers)})")
        return required - 1, ""

    def _native_gate(self) -> EnvironmentGate | None:
        if not self.workflow:
            return None
        try:
            return self.ctx.lifecycle.github.access.environment_gate(self.ctx.env.deployment_environment)
        except GitHubError as exc:
            self.ctx.log(f"GitHub environment protection not readable ({exc.what}): the "
                         "runbook's own gate applies")
            return None

    def clear(self) -> None:
        """Return once enough people approved this plan; raise ApprovalRejected / ApprovalTimeout.

        A changed plan (Lab: the target resolved again) needs approving again."""
        plan = plan_digest(self.ctx.path, self.ctx.env.name, self.plan())
        if self.cleared == plan:
            return
        missing, why = self.missing()
        if missing <= 0:
            self.cleared = plan
            if why:
                self.ctx.log(f"second approval: {why}")
            return
        record = self.ctx.lifecycle.record
        if record is None:
            raise PreconditionFailed(
                f"This live run on {self.ctx.env.name} needs {missing} more approval(s), but has no "
                "record comment to post its plan in (no deployment record for what runs).",
                "Run it where the bad deploy has a deployment record, or lower "
                f"approvals for {self.ctx.env.name} in runbook.toml if your team agrees.")
        self._wait(record, missing, plan)
        self.cleared = plan

    def _wait(self, record: PostedRunComment, missing: int, plan: str) -> None:
        ctx, github = self.ctx, self.ctx.lifecycle.github
        self.author = github.access.login()  # the runbook's account: it posts the plan
        who = self._who(github.access.writers)
        how = f"comment /approve {ctx.run_id} on #{record.number}"
        ctx.lifecycle.update_record(state="awaiting approval", plan=plan,
                                    approvals=f"needs {missing} more: {how} ({who})")
        judge = self._judge(record, plan)
        self._announce(record, plan, missing, who)
        clock, cfg = ctx.backends.clock, ctx.cfg
        progress = Progress(f"approval of run {ctx.run_id}", total=cfg.approval_timeout,
                            every=max(60.0, cfg.approval_timeout / 6), interactive=ctx.interactive)
        schedule = PollSchedule(clock, cfg.approval_poll_interval)  # renewals do not delay looks
        started = schedule.start
        while True:
            verdicts = judge.verdicts(github.comments.list_comments(record.number))
            self._show(verdicts)
            elapsed = clock.now() - started
            if (rejected := rejection(verdicts)) is not None:
                progress.close(f"rejected by {rejected.user}", ok=False)
                raise self._rejected(rejected, record)
            got = approvers(verdicts)
            if len(got) >= missing:
                progress.close(f"approved by {', '.join(v.user for v in got)}")
                self._approved(got, record)
                return
            if elapsed >= cfg.approval_timeout:
                progress.close("no approval in time", ok=False)
                raise self._timeout(record, missing - len(got), who)
            progress.update(elapsed, f"waiting for {missing - len(got)} more approval(s)")
            ctx.lifecycle.keep_alive()
            schedule.wait(until=started + cfg.approval_timeout)

    def _operators(self, author: str) -> frozenset[str]:
        return frozenset(name.lower() for name in (self.ctx.operator, author) if name)

    def _judge(self, record: PostedRunComment, plan: str) -> Judge:
        ctx, github = self.ctx, self.ctx.lifecycle.github
        posted = github.comments.find_comment(
            record.number, marker(ctx.run_id, ctx.path, ctx.env.name),
            author=github.access.login())
        parsed = parse_comment(posted.body) if posted is not None else None
        if posted is None or parsed is None or parsed.plan != plan:
            raise GitHubError(f"The plan of run {ctx.run_id} could not be posted on "
                              f"#{record.number} for approval.",
                              "Check GitHub's status and the token's issue permission, then re-run.")
        self.author = posted.user
        return Judge(ctx.run_id, plan, posted.updated_at, self._operators(posted.user),
                     github.access.permission)

    def _who(self, writers: Callable[[], list[str]]) -> str:
        operators = self._operators(self.author)
        try:
            names = who_may_approve(writers(), operators)
        except GitHubError:
            names = []
        repo = self.ctx.cfg.github_repo
        listed = ", ".join(names[:10]) + (" …" if len(names) > 10 else "")
        return (f"{listed} (write access to {repo})" if names else
                f"anyone with write access to {repo}") + f", not {self.ctx.operator}"

    def _announce(self, record: PostedRunComment, plan: str, missing: int, who: str) -> None:
        ctx = self.ctx
        report = Report(f"Waiting for approval by {who}", status="pending")
        report.fact("run", ctx.run_id).fact("plan", f"{plan}: {self.what()}")
        report.fact("needs", f"{missing} more approval(s); {ctx.env.name} needs "
                    f"{ctx.env.required_approvals} people, the operator counts as one")
        report.fact("how", f"comment `/approve {ctx.run_id}` on {record.html_url} "
                    f"(or `/reject {ctx.run_id} <why>`)")
        report.fact("waits", f"up to {ctx.cfg.approval_timeout:.0f}s; nothing changes until then")
        ctx.show(report)
        ctx.log(f"waiting for approval of plan {plan} by {who}")
        ctx.notify("awaiting approval", f"waiting for {missing} more approval(s)",
                   detail=f"{who} may approve: comment /approve {ctx.run_id} on {record.html_url}")

    def _show(self, verdicts: Sequence[Verdict]) -> None:
        for verdict in verdicts:
            if verdict.url + verdict.verb not in self.shown:
                self.shown.add(verdict.url + verdict.verb)
                print(f"  {verdict.line()}", flush=True)
                self.ctx.log(verdict.line())

    def _decide(self, verdict: Verdict, what: str, record: PostedRunComment) -> None:
        ctx = self.ctx
        decision = make_decision(what, how=f"/{verdict.verb} comment on #{record.number} "
                                 f"written {verdict.at} ({verdict.url})", step="approval",
                                 who=verdict.user, at=ctx.backends.clock.now(), run_id=ctx.run_id)
        ctx.decisions.append(decision)
        ctx.log(f"decision: {what} ({decision.how}, by {verdict.user})")
        ctx.show(decision.report())

    def _approved(self, got: Sequence[Verdict], record: PostedRunComment) -> None:
        for verdict in got:
            self._decide(verdict, f"approve: {self.what()}", record)
        names = ", ".join(f"{v.user} at {v.at}" for v in got)
        self.ctx.lifecycle.update_record(state="started", approvals=f"approved by {names}")

    def _rejected(self, verdict: Verdict, record: PostedRunComment) -> ApprovalRejected:
        self._decide(verdict, f"reject: {self.what()}" + (f" ({verdict.rest})" if verdict.rest else ""),
                     record)
        self.ctx.lifecycle.update_record(approvals=f"rejected by {verdict.user} at {verdict.at}")
        return ApprovalRejected(
            f"{verdict.user} rejected run {self.ctx.run_id} on {self.ctx.env.name} "
            f"({verdict.rest or 'no reason given'}): {verdict.url}. Nothing was changed.",
            "Talk to them; if a changed plan is agreed, re-run (a new run posts a new plan).")

    def _timeout(self, record: PostedRunComment, still: int, who: str) -> ApprovalTimeout:
        ctx = self.ctx
        return ApprovalTimeout(
            f"Run {ctx.run_id} on {ctx.env.name} is still waiting for approval after "
            f"{ctx.cfg.approval_timeout:.0f}s: {still} more needed, by {who}. Nothing was changed.",
            f"Re-run when one of them is ready: the new run posts its plan and run id on "
            f"#{record.number}, and they approve it with `/approve <run id>` there (an approval "
            "names one run). To wait longer: ROLLBACK_APPROVAL_TIMEOUT=<seconds>.")


class NativeGate:
    """GitHub's own gate, met while watching the promote run: the run ``waiting`` on a GitHub
    Environment's required reviewers. Shows who must approve (pending deployments), waits
    with the run's progress, and ends a timeout or a rejection as a clear outcome."""

    def __init__(self, ctx: RunContext, github: GitHubAccess, *, needed: bool = False) -> None:
        self.ctx = ctx
        self.github = github
        self.needed = needed  # the gate is counted as the second person: a bypass fails the run
        self.since: float | None = None
        self.reviewers = ""

    def update(self, run: WorkflowRun, elapsed: float) -> None:
        """Called on each poll of the run; raises ApprovalTimeout when the wait is over."""
        if run.status != "waiting":
            return
        if self.since is None:
            self.since = elapsed
            self._announce(run)
        cfg = self.ctx.cfg
        if elapsed - self.since >= cfg.approval_timeout or elapsed >= cfg.workflow_timeout:
            raise ApprovalTimeout(
                f"The {cfg.workflow} run {run.html_url} for {self.ctx.env.name} is still waiting "
                f"for a reviewer ({self.reviewers}) after {elapsed - self.since:.0f}s. Nothing "
                "was deployed.",
                f"Ask one of them to review it (Review deployments on {run.html_url}): it deploys "
                f"once approved; watch it with `gh run watch {run.id}`, then run the verify cells. "
                f"Or cancel it: `gh run cancel {run.id}`. Do not dispatch again while it waits.")

    def _announce(self, run: WorkflowRun) -> None:
        try:
            pending = self.github.pending_deployments(run.id)
        except GitHubError as exc:
            pending = []
            self.ctx.log(f"pending deployments of run {run.id} not readable: {exc.what}")
        self.reviewers = "; ".join(f"{p.environment}: {', '.join(p.reviewers)}" for p in pending) \
            or "the environment's required reviewers"
        report = Report(f"Waiting for approval by {self.reviewers}", status="pending")
        report.fact("workflow run", run.html_url)
        report.fact("how", "a reviewer opens the run and chooses Review deployments → Approve")
        report.fact("waits", f"up to {self.ctx.cfg.approval_timeout:.0f}s; nothing is deployed until then")
        self.ctx.show(report)
        self.ctx.log(f"workflow run {run.id} waits for a reviewer: {self.reviewers}")
        self.ctx.notify("awaiting approval", "the promote run waits for a reviewer",
                        detail=f"{self.reviewers} may approve: {run.html_url}")

    def after(self, final: WorkflowRun) -> None:
        """Once the run is over: each review is a decision; a rejection is the outcome."""
        if self.since is None and not self.needed:
            return
        reviews = self.github.reviews(final.id)
        for review in reviews:
            decision = make_decision(
                f"{review.state} the deployment of run {final.id} to {', '.join(review.environments)}",
                how=f"GitHub environment review on {final.html_url}"
                    + (f": {review.comment}" if review.comment else ""),
                step="approval", who=review.user, at=self.ctx.backends.clock.now(),
                run_id=self.ctx.run_id)
            self.ctx.decisions.append(decision)
            self.ctx.show(decision.report())
        self._second_person(final, reviews)
        rejected = next((r for r in reviews if r.state == "rejected"), None)
        if rejected is not None and not final.succeeded:
            raise ApprovalRejected(
                f"{rejected.user} rejected the deployment of {final.html_url} to "
                f"{', '.join(rejected.environments)} ({rejected.comment or 'no comment'}). "
                "Nothing was deployed.",
                "Talk to them; if a changed plan is agreed, re-run (a new run, a new review).")

    def _second_person(self, final: WorkflowRun, reviews: Sequence[Review]) -> None:
        """A run that counted GitHub's gate as its second person needs an ``approved`` review
        by someone other than the operator; a run that went on without one was let through by
        an admin's bypass: "no second person", and the run fails (exit 11)."""
        if not self.needed or not final.succeeded:
            return
        operators = {n.lower() for n in (self.ctx.operator, self.github.login()) if n}
        if any(r.state == "approved" and r.user.lower() not in operators for r in reviews):
            return
        decision = make_decision(
            "no second person: the deployment went on without an approved review",
            how=f"GitHub environment gate on {final.html_url} (bypassed by an admin, or "
                "approved only by the operator)", step="approval", who="nobody",
            at=self.ctx.backends.clock.now(), run_id=self.ctx.run_id)
        self.ctx.decisions.append(decision)
        self.ctx.show(decision.report())
        self.ctx.lifecycle.update_record(approvals="no second person (the gate was bypassed)")
        raise NotApproved(
            f"The {self.ctx.cfg.workflow} run {final.html_url} deployed to {self.ctx.env.name} "
            "without an approved review by anyone but the operator (an admin bypassed the "
            f"Environment gate): {self.ctx.env.name} needs {self.ctx.env.required_approvals} "
            "people. The change is in place, approved by nobody else.",
            "Tell the team now and have a second person review what runs; set the Environment "
            "to forbid admins bypassing its protection rules.")
