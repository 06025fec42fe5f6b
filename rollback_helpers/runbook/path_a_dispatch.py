"""Path A's steps that promote: dispatch (or carry on, or watch a run already in flight), watch.

Never two promotes: a run an earlier run of this rollback dispatched is watched
again, an image already running is not promoted, and a ``promote-image.yml`` run
in flight for the environment — whoever started it — is shown and, if asked,
watched instead of dispatching over it.
"""

from __future__ import annotations

from typing import Any

from rollback_helpers.clients.fly import AppStatus
from rollback_helpers.clients.github import GitHubClient, WorkflowRun
from rollback_helpers.domain.rollback_target import RollbackTarget
from rollback_helpers.errors import PreconditionFailed, WorkflowFailed
from rollback_helpers.run.context import RunContext
from rollback_helpers.runbook.resume import LookBack
from rollback_helpers.runbook.second_person import NativeGate, SecondPerson
from rollback_helpers.ui.display import Report, short
from rollback_helpers.ui.interactive import Decision, Gate
from rollback_helpers.ui.progress import Progress

__all__ = ["DispatchSteps", "SecondPerson"]
WORKFLOW_STAGES = ("queued", "in_progress", "completed")


class DispatchSteps:
    """Path A's dispatch and watch cells (mixed into :class:`~rollback_helpers.runbook.path_a.PathA`)."""

    ctx: RunContext
    github: GitHubClient
    run: WorkflowRun | None
    status: AppStatus | None
    target: RollbackTarget | None
    back: LookBack
    second: SecondPerson
    watch_in_flight: bool
    outcome: str

    def _not_cleared(self, step: str) -> Report | None:
        raise NotImplementedError

    @staticmethod
    def _require(value: Any, step: str) -> Any:
        raise NotImplementedError

    def dispatch(self) -> Report:
        if (stop := self._not_cleared("Dispatch")) is not None:
            return stop
        if self.run is not None:  # a second click on this cell must not promote twice
            return Report("Dispatch: already dispatched", status="skipped").fact(
                "workflow run", self.run.html_url).note("Not dispatched again.")
        target = self._require(self.target, "resolve_target")
        if (carried := self._carry_on(target)) is not None:
            return carried
        cfg = self.ctx.cfg
        in_flight = self.github.in_flight_runs(cfg.workflow, self.ctx.env.name)
        if in_flight:
            return self._in_flight(in_flight[0])
        inputs = {cfg.workflow_env_input: self.ctx.env.name,
                  cfg.workflow_image_input: str(target.image)}
        self.run = self.github.dispatch_workflow(cfg.workflow, cfg.workflow_ref, inputs)
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

    def _carry_on(self, target: RollbackTarget) -> Report | None:
        """An earlier run's dispatch is watched, and a target already running is not promoted."""
        earlier = self.back.earlier if self.back.carry_on else None
        run_id = earlier.record.workflow_run_id if earlier else None
        if earlier is not None and run_id is not None:
            self.run = self.github.get_run(run_id)
            self._dispatched(self.run, f"carried on run {earlier.record.run_id}'s dispatch")
            return Report("Dispatch: not dispatched again", status="skipped").fact(
                "workflow run", f"{self.run.html_url} (dispatched by run {earlier.record.run_id})"
            ).fact("status", self.run.status)
        if self.status is not None and self.status.running_digests() == {target.image.digest}:
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
                            "parameter watch_in_flight=True", "dispatch")
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
            "Watch it instead: re-run with --watch-in-flight (notebook: watch_in_flight=True), "
            "or wait for it to finish and re-run.")

    def _watch_instead(self, run: WorkflowRun, how: str) -> Decision:
        decision = self.ctx.decide(f"watch the in-flight run {run.id} instead of dispatching",
                                   how, "dispatch")
        self.run = run
        self._dispatched(run, f"watched the in-flight run {run.id}")
        return decision

    def watch(self) -> Report:
        if (stop := self._not_cleared("Watch the workflow run")) is not None:
            return stop
        if self.run is None and self.status is not None and self.target is not None \
                and self.status.running_digests() == {self.target.image.digest}:
            return Report("Watch: nothing dispatched (the target already runs)", status="skipped")
        run = self._require(self.run, "dispatch")
        progress = Progress(f"workflow run {run.id}", total=None, stages=WORKFLOW_STAGES,
                            interactive=self.ctx.interactive)

        gate = NativeGate(self.ctx, self.github,  # a run waiting on an Environment's reviewers
                          needed=self.second.gate_counted)

        def update(r: WorkflowRun, elapsed: float) -> None:
            progress.update(elapsed, r.status)
            self.ctx.lifecycle.keep_alive()
            gate.update(r, elapsed)

        final = self.github.watch_run(
            run.id, timeout=self.ctx.cfg.workflow_timeout, interval=self.ctx.cfg.poll_interval,
            on_update=update)
        gate.after(final)
        progress.close(final.conclusion or final.status, ok=final.succeeded)
        self.run = final
        self.ctx.log(f"workflow run {final.id}: {final.conclusion}")
        if not final.succeeded:
            self.outcome = "workflow failed"
            raise WorkflowFailed(
                f"The {self.ctx.cfg.workflow} run {final.id} for {self.ctx.env.name} ended "
                f"{final.conclusion!r}: {final.html_url}",
                "Open the run's logs; nothing was rolled back. Fix the cause and re-run this "
                "notebook, or escalate.")
        return Report("Workflow run completed").fact("conclusion", final.conclusion).fact(
            "run", final.html_url)

