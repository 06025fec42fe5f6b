"""Carrying on from an earlier run, read from its record comment on the deployment record.

A re-run of the same path on the same environment looks at the record comments
of the newest deployment records before it acts:

- the earlier run succeeded and what it put there still runs → nothing to do;
- the earlier run did not end (crashed, interrupted) → carry on: watch its
  workflow run (Path A) or use its restored cluster (Path B), never act twice;
- the earlier run failed after promoting its image → that image is this
  rollback's doing, not drift.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, replace

from rollback_helpers.domain.deployments import BadRecord, DeploymentRecord
from rollback_helpers.domain.images import parse_image_ref
from rollback_helpers.domain.rollback_target import RollbackTarget
from rollback_helpers.errors import ImageRefError, RollbackError
from rollback_helpers.run.context import RunContext
from rollback_helpers.run.run_comment import FoundRun, PostedRunComment
from rollback_helpers.ui.display import Report, short

Record = DeploymentRecord | BadRecord
LOOK_BACK = 5  # records whose comments are read: the bad deploy's is among the newest


@dataclass(frozen=True)
class LookBack:
    """What the earlier runs of this path on this environment mean for this one."""

    earlier: FoundRun | None = None   # the newest earlier run, if any
    done: bool = False                # it succeeded and its result still stands
    carry_on: bool = False            # it did not end: this run continues it
    put_there: bool = False           # it failed, but the running image is its doing
    ignored: tuple[FoundRun, ...] = ()  # markers written by anyone but the runbook's account
    unconfirmed: str = ""             # why a success its comment claims is not believed

    def note(self, report: Report) -> Report:
        for forged in self.ignored:
            report.note(forged.ignored())
        if self.unconfirmed:
            report.note(self.unconfirmed)
        run = self.earlier
        if run is None:
            return report
        rec = run.record
        if self.done:
            report.note(f"Already done by run {rec.run_id} ({rec.state}, {rec.updated_at}): "
                        f"{run.html_url}. Nothing is changed again.")
        elif self.carry_on:
            report.note(f"Carries on from run {rec.run_id} ({rec.state} at "
                        f"{rec.last_step or rec.updated_at}): {run.html_url}")
        elif self.put_there:
            report.note(f"What runs now was put there by run {rec.run_id} (which ended "
                        f"{rec.state}): this rollback's doing, not drift.")
        return report


def earlier_runs(ctx: RunContext, numbers: Iterable[int]) -> list[FoundRun]:
    """Earlier runs of this path on this environment (newest first), from their comments."""
    return ctx.lifecycle.previous(list(numbers)[:LOOK_BACK])


def digest_of(image: str) -> str:
    try:
        return parse_image_ref(image, what="target").digest
    except ImageRefError:
        return ""


def look_back_a(ctx: RunContext, records: Iterable[Record], running: str) -> LookBack:
    """Path A: how the newest earlier run relates to what runs now."""
    numbers = [r.number for r in _until_running(records, running)]
    found = earlier_runs(ctx, numbers)
    ignored = tuple(ctx.lifecycle.ignored)
    if not found:
        return LookBack(ignored=ignored)
    earlier = found[0]
    put_there = digest_of(earlier.record.target) == running
    if earlier.record.succeeded:
        why = "" if not put_there else workflow_unconfirmed(ctx, earlier)
        return LookBack(earlier, done=put_there and not why, ignored=ignored, unconfirmed=why)
    if not earlier.record.ended:
        return LookBack(earlier, carry_on=True, put_there=put_there, ignored=ignored)
    return LookBack(earlier, put_there=put_there, ignored=ignored)


def workflow_unconfirmed(ctx: RunContext, earlier: FoundRun) -> str:
    """Why an earlier run's "succeeded" is not believed ("" when GitHub confirms it): its
    workflow run must exist, be for this environment's workflow and have succeeded."""
    run_id = earlier.record.workflow_run_id
    claim = f"Run {earlier.record.run_id}'s comment says {earlier.record.state}"
    if run_id is None:
        return f"{claim}, but names no workflow run: not believed, the rollback goes on."
    try:
        run = ctx.lifecycle.github.actions.get_run(run_id)
    except RollbackError as exc:
        return f"{claim}, but its workflow run {run_id} cannot be read ({exc.what}): not believed."
    if not run.succeeded:
        return (f"{claim}, but its workflow run {run_id} is {run.status}/{run.conclusion}: "
                "not believed, the rollback goes on.")
    return ""


def _until_running(records: Iterable[Record], running: str) -> list[Record]:
    """The newest records, down to the first whose image is what runs now."""
    chosen: list[Record] = []
    for record in records:
        chosen.append(record)
        if len(chosen) >= LOOK_BACK or (isinstance(record, DeploymentRecord)
                                        and record.image.digest == running):
            break
    return chosen


def not_bad(records: Iterable[Record], number: int) -> list[Record]:
    """The records, with the earlier run's bad deploy read as rolled back (it was)."""
    return [replace(r, rolled_back=True) if isinstance(r, DeploymentRecord) and r.number == number
            else r for r in records]


def target_in_place(records: Iterable[Record], env: str, earlier: FoundRun,
                    running: str) -> RollbackTarget | None:
    """The earlier run's target, which already runs: what is left is to verify and record it."""
    listed = list(records)
    bad = next((r for r in listed if isinstance(r, DeploymentRecord)
                and r.number == earlier.issue), None)
    target = next((r for r in listed if isinstance(r, DeploymentRecord)
                   and r.image.digest == running and r.number != earlier.issue), None)
    if bad is None:
        return None
    image = target.image if target is not None else parse_image_ref(earlier.record.target,
                                                                     what="target")
    return RollbackTarget(env, running, bad, target, image, False, tuple(listed), ())


def mark_carried_on(ctx: RunContext, earlier: FoundRun) -> None:
    """The earlier run's comment says that this run carries it on."""
    comment = PostedRunComment(ctx.lifecycle.github.comments, earlier.issue, earlier.record, log=ctx.log,
                            now=lambda: ctx.started_at)
    comment.comment_id, comment.html_url = earlier.comment_id, earlier.html_url
    comment.update(state="interrupted" if not earlier.record.ended else earlier.record.state,
                   next_step=f"carried on by run {ctx.run_id}")
    ctx.log(f"carries on from run {earlier.record.run_id} ({short(earlier.record.target)})")
