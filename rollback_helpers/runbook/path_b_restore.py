"""What earlier Path B runs on the same record mean for this one, and the restore's inputs.

A run that ended with its cluster prepared (flip pending) is done; one that did not end
(Ctrl-C, a crash) or that failed while its cluster still restores or is ready (a readiness
timeout) is carried on with that cluster: a re-run never restores twice.
"""

from __future__ import annotations

from rollback_helpers.clients.fly import Fly
from rollback_helpers.run.context import RunContext
from rollback_helpers.runbook.path_b_facts import still_usable
from rollback_helpers.runbook.resume import LookBack, earlier_runs


def look_back_b(ctx: RunContext, fly: Fly, number: int) -> tuple[LookBack, str | None]:
    """How the newest earlier run on record #number relates to this one, and its cluster."""
    found = earlier_runs(ctx, [number])
    earlier = found[0] if found else None
    if earlier is None:
        return LookBack(), None
    record = earlier.record
    if record.ended and not record.succeeded:
        if record.new_cluster and still_usable(fly, record.new_cluster):
            return LookBack(earlier, carry_on=True), record.new_cluster
        return LookBack(earlier), None
    return (LookBack(earlier, done=record.succeeded, carry_on=not record.ended),
            record.new_cluster or None)
