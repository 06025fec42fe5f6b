"""Path A's promotion: dispatch (or carry on, or watch a run already in flight), then watch.

Never two promotes: a run an earlier run of this rollback dispatched is watched
again, an image already running is not promoted, and a ``promote-image.yml`` run
in flight for the environment — whoever started it — is shown and, if asked,
watched instead of dispatching over it. A headless run lists the runs in flight
while it writes its record comment (:meth:`Promotion.look_ahead`); a listing more
than ``IN_FLIGHT_FRESH`` seconds old at the dispatch (a wait for approvals) is made again.
"""

from __future__ import annotations

from typing import TypeVar

from rollback_helpers.clients.fly import AppStatus, Fly
from rollback_helpers.clients.github import GitHubClient, WorkflowRun
from rollback_helpers.clock import PollSchedule, Started, started
from rollback_helpers.domain.rollback_target import RollbackTarget
from rollback_helpers.errors import PreconditionFailed, RollbackError, WorkflowFailed
from rollback_helpers.hints import Option, Rerun, given_as, hint
from rollback_helpers.run.context import RunContext
from rollback_helpers.runbook.resume import LookBack
from rollback_helpers.runbook.second_person import NativeGate
from rollback_helpers.runbook.steps import require
from rollback_helpers.ui.decisions import Decision
from rollback_helpers.ui.display import Report, short
from rollback_helpers.ui.interactive import Gate
from rollback_helpers.ui.progress import Progress

T = TypeVar("T")
WORKFLOW_STAGES = ("queued", "in_progress", "completed")
IN_FLIGHT_FRESH = 10.0  # seconds a listing of the runs in flight stands for "now" at a dispatch


class Promotion:
    """The promote workflow's run for one Path A rollback: dispatched (or an earlier run's
    carried on, or one in flight watched), then watched. Path A's dispatch and watch cells
    call it once they are cleared to change something; it holds the workflow run."""

    def __init__(self, ctx: RunContext, github: GitHubClient, *, watch_in_flight: bool) -> None:
        self.ctx = ctx
        self.github = github
        self.watch_in_flight = watch_in_flight
        self.run: WorkflowRun | None = None
        self._ahead: tuple[float, Started[list[WorkflowRun]]] | None = None

    def look_ahead(self) -> None:
        """Start the in-flight guard's listing now, beside the writes before the dispatch (the
        run's record comment); the dispatch uses it if it is at most IN_FLIGHT_FRESH s old."""
        clock, wf, env = self.ctx.backends.clock, self.ctx.cfg.workflow, self.ctx.env.name
        self._ahead = (clock.now(), started(clock, lambda: self.github.actions.in_flight_runs(wf, env)))

    def _listed_ahead(self) -> list[WorkflowRun] | None:
        """The listing started ahead, if it is fresh and came back (waited for in any case)."""
        ahead, self._ahead = self._ahead, None
        if ahead is None:
            return None
        began, read = ahead
        try:
            runs = read.result()
        except RollbackError:
            return None  # listed again now, which names the failure if it persists
        return runs if self.ctx.backends.clock.now() - began <= IN_FLIGHT_FRESH else None

    def settle(self) -> None:
        """Wait for a listing started ahead that the dispatch did not use (a run that ended)."""
        self._listed_ahead()

    def dispatch(self, target: RollbackTarget, status: AppStatus | None, back: LookBack) -> Report:
        ahead = self._listed_ahead()
        if self.run is not None:  # a second click on this cell must not promote twice
            return Report("Dispatch: already dispatched", status="skipped").fact(
                "workflow run", self.run.html_url).note("Not dispatched again.")
        if (carried := self._carry_on(target, status, back)) is not None:
            return carried
        cfg = self.ctx.cfg
        in_flight = ahead if ahead is not None else \
            self.github.actions.in_flight_runs(cfg.workflow, self.ctx.env.name)
        if in_flight:
            return self._in_flight(in_flight[0])
        inputs = {cfg.workflow_env_input: self.ctx.env.name,
                  cfg.workflow_image_input: str(target.image)}
        self.run = self.github.actions.dispatch_workflow(cfg.workflow, cfg.workflow_ref, inputs)
        self.ctx.log(f"dispatched {cfg.workflow}: run {self.run.id}")
        self._dispatched(self.run)
        return self.ctx.with_facts(Report("Dispatched").fact(
            "workflow run", self.run.html_url).fact("status", self.run.status),
            from_image=target.running_digest, to_image=str(target.image),
            workflow_run=self.run.html_url)

    def _dispatched(self, run: WorkflowRun, tried: str = "") -> None:
        self.ctx.lifecycle.update_record(state="dispatched", workflow_run=run.html_url,
                                         **({"tried": tried} if tried else {}))
        self.ctx.lifecycle.note_on_lock(workflow_run_url=run.html_url)

    def _carry_on(self, target: RollbackTarget, status: AppStatus | None,
                  back: LookBack) -> Report | None:
        """An earlier run's dispatch is watched, and a target already running is not promoted."""
        earlier = back.earlier if back.carry_on else None
        run_id = earlier.record.workflow_run_id if earlier else None
        if earlier is not None and run_id is not None:
            self.run = self.github.actions.get_run(run_id)
            self._dispatched(self.run, f"carried on run {earlier.record.run_id}'s dispatch")
            return Report("Dispatch: not dispatched again", status="skipped").fact(
                "workflow run", f"{self.run.html_url} (dispatched by run {earlier.record.run_id})"
            ).fact("status", self.run.status)
        if status is not None and status.running_digests() == {target.image.digest}:
            self.ctx.lifecycle.update_record(tried="the target already ran: not dispatched")
            return Report("Dispatch: not needed", status="skipped").note(
                f"{self.ctx.env.app} already runs {short(target.image.digest)}: nothing to promote.")
        return None

    def _in_flight(self, run: WorkflowRun) -> Report:
        """Someone's promote run is in flight: never dispatch over it; watch it if asked."""
        wf, env = self.ctx.cfg.workflow, self.ctx.env.name
        what = f"{wf} run {run.id} for {env} is {run.status} ({run.html_url}, created {run.created_at})"
        if self.watch_in_flight:
            self.ctx.decide(f"watch the in-flight run {run.id} instead of dispatching",
                            given_as("watch_in_flight", True), "dispatch")
            self.run = run
            self._dispatched(run, f"watched the in-flight run {run.id}")
            return Report("Dispatch: a run is already in flight: watching it", status="warning"
                          ).fact("workflow run", run.html_url).fact("status", run.status)
        if self.ctx.interactive:
            self.ctx.show(Report("Dispatch: a run is already in flight", status="stopped").note(what))
            Gate(f"Watch run {run.id} instead of dispatching", env=env, protected=False,
                 resolved=True, approve=lambda how: self._watch_instead(run, how),
                 screen=self.ctx.screen).show()
            return Report("Not dispatched", status="stopped").note(
                "Press the button to watch that run, then run the cells below.")
        raise PreconditionFailed(
            f"Not dispatched: a {what}. A second promote would race it.",
            hint("Watch it instead: re-run with ", Option("watch_in_flight", True),
                 ", or wait for it to finish and re-run."))

    def _watch_instead(self, run: WorkflowRun, how: str) -> Decision:
        decision = self.ctx.decide(f"watch the in-flight run {run.id} instead of dispatching",
                                   how, "dispatch")
        self.run = run
        self._dispatched(run, f"watched the in-flight run {run.id}")
        return decision

    def watch(self, target: RollbackTarget | None, status: AppStatus | None, *,
              gate_counted: bool = False) -> Report:
        """Watch the run to its end (WorkflowFailed unless it succeeded). ``gate_counted``:
        GitHub's Environment gate stands for the second person, so a bypass fails the run."""
        if self.run is None and status is not None and target is not None \
                and status.running_digests() == {target.image.digest}:
            return Report("Watch: nothing dispatched (the target already runs)", status="skipped")
        run = require(self.run, "dispatch")
        progress = Progress(f"workflow run {run.id}", total=None, stages=WORKFLOW_STAGES,
                            interactive=self.ctx.interactive)

        gate = NativeGate(self.ctx, self.github.access,  # a run waiting on an Environment's
                          needed=gate_counted)           # reviewers, maybe the second person

        def update(r: WorkflowRun, elapsed: float) -> None:
            progress.update(elapsed, r.status)
            self.ctx.lifecycle.keep_alive()
            gate.update(r, elapsed)

        final = self.github.actions.watch_run(
            run.id, timeout=self.ctx.cfg.workflow_timeout, interval=self.ctx.cfg.poll_interval,
            on_update=update)
        gate.after(final)
        progress.close(final.conclusion or final.status, ok=final.succeeded)
        self.run = final
        self.ctx.log(f"workflow run {final.id}: {final.conclusion}")
        if not final.succeeded:
            raise WorkflowFailed(
                f"The {self.ctx.cfg.workflow} run {final.id} for {self.ctx.env.name} ended "
                f"{final.conclusion!r}: {final.html_url}",
                hint("Open the run's logs; nothing was rolled back. Fix the cause and ", Rerun(),
                     ", or escalate."))
        return Report("Workflow run completed").fact("conclusion", final.conclusion).fact(
            "run", final.html_url)

    def wait_for_rollout(self, fly: Fly, digest: str) -> AppStatus:
        """Once the workflow ended: flyctl status at a fixed rate until every machine runs
        ``digest`` or the rollout timeout passes (verify then says which machines are off)."""
        schedule = PollSchedule(self.ctx.backends.clock, self.ctx.cfg.poll_interval)
        deadline = schedule.start + self.ctx.cfg.rollout_timeout
        while True:
            status = fly.status(self.ctx.env.app)
            if status.running_digests() == {digest} or schedule.clock.now() >= deadline:
                return status
            schedule.wait(until=deadline)
