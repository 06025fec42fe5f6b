"""Archived runs made from the runbook's real notebooks, without running them.

Each record is the shipped notebook of its path with the outputs a run leaves
where that run leaves them (the plan's decisions, the dispatch's facts, the
summary's and finish's timeline), papermill's cell times, and the metadata block
:func:`rollback_helpers.run.archive.stamp_metadata` writes from them.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import nbformat

from rollback_helpers.records.archive import located
from rollback_helpers.records.store import RecordStore
from rollback_helpers.run.archive import Outcome, notebook_of, stamp_metadata
from rollback_helpers.ui.display import METADATA_KEY


def iso(when: datetime) -> str:
    return when.isoformat().replace("+00:00", "Z")


@dataclass
class Run:
    path: str
    env: str
    start: datetime
    issue: int | None
    outcome: str = "success"
    live: bool = True
    drill: bool = False
    events: list[tuple[datetime, str]] = field(default_factory=list)
    decisions: list[dict[str, str]] = field(default_factory=list)
    facts: dict[str, str] = field(default_factory=dict)
    run_id: str = "0123456789ab"

    def at(self, minutes: float, event: str) -> Run:
        self.events.append((self.start + timedelta(minutes=minutes), event))
        return self

    def decided(self, minutes: float, step: str, who: str, what: str) -> Run:
        self.decisions.append({"id": f"d{len(self.decisions)}{self.run_id[:6]}", "step": step,
                               "who": who, "what": what, "how": "parameter dry_run=False",
                               "at": iso(self.start + timedelta(minutes=minutes)),
                               "run_id": self.run_id})
        return self


def _output(block: dict[str, Any]) -> Any:
    return nbformat.v4.new_output("display_data", data={"text/plain": "…"},
                                  metadata={METADATA_KEY: block})


def notebook(run: Run) -> Any:
    """The path's shipped notebook with this run's outputs and cell times."""
    nb = nbformat.read(str(notebook_of(run.path)), as_version=4)
    events = [{"at": iso(at), "event": text} for at, text in sorted(run.events)]
    for index, cell in enumerate(nb.cells):
        begin = run.start + timedelta(seconds=index)
        cell.metadata["papermill"] = {"start_time": begin.isoformat(),
                                      "end_time": (begin + timedelta(seconds=1)).isoformat()}
        if cell.cell_type != "code":
            continue
        blocks: list[dict[str, Any]] = []
        if "run.plan()" in cell.source and run.decisions:
            blocks.append({"decisions": run.decisions})
            if run.issue is not None:
                blocks.append({"record_comment": {"issue": run.issue, "comment_id": 1,
                                                  "url": f"https://github.com/o/r/issues/"
                                                         f"{run.issue}#issuecomment-1"}})
        if ("run.dispatch()" in cell.source or "run.restore()" in cell.source) and run.facts:
            blocks.append({"run": {"id": run.run_id, "facts": run.facts}})
        if "run.summary()" in cell.source or "run.finish()" in cell.source:
            blocks.append({"run": {"id": run.run_id, "events": events,
                                   "record_issue": run.issue}})
        cell.outputs = [_output(b) for b in blocks]
    return nb


def archive(store: RecordStore, tmp: Path, name: str, run: Run) -> str:
    """The record of ``run``, written to ``store`` (``drills/`` for a drill): its location."""
    working = tmp / name
    nbformat.write(notebook(run), str(working))
    finished = (max(at for at, _ in run.events) if run.events else run.start)
    stamp_metadata(working, Outcome(
        path=run.path, env=run.env, archive="", exit_code=0 if run.outcome == "success" else 5,
        outcome=run.outcome, dry_run=not run.live,  # type: ignore[arg-type]
        backend="sandbox" if run.drill else "real", started_at=iso(run.start),
        finished_at=iso(finished), seconds=(finished - run.start).total_seconds()))
    target = store.child("drills") if run.drill else store
    stored, _ = target.put_new(name, lambda location: located(working.read_bytes(), location))
    return stored.location
