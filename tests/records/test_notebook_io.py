"""notebook_io: a record's own timeline and each step's start and end, read back."""

from __future__ import annotations

import nbformat

from rollback_helpers.records.notebook_io import run_identity, step_times
from rollback_helpers.ui.display import METADATA_KEY


def _code(source: str, start: str = "", end: str = "", **metadata: object) -> nbformat.NotebookNode:
    cell = nbformat.v4.new_code_cell(source)
    if start:
        cell.metadata["papermill"] = {"start_time": start, "end_time": end}
    cell.metadata.update(metadata)
    return cell


def test_steps_take_the_first_start_and_last_end_of_their_cells() -> None:
    """Cells under one heading make one step; a cell that never ran adds nothing."""
    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_markdown_cell("## 4. Plan"),
                _code("run.plan()", "2026-06-10T09:30:01+00:00", "2026-06-10T09:30:02+00:00"),
                _code("run.show()", "2026-06-10T09:30:02+00:00", "2026-06-10T09:30:05+00:00"),
                nbformat.v4.new_markdown_cell("## 5. Dispatch"),
                _code("run.dispatch()", execution={
                    "iopub.execute_input": "2026-06-10T09:31:00Z",
                    "shell.execute_reply": "2026-06-10T09:31:09Z"}),
                nbformat.v4.new_markdown_cell("## 6. Watch"),
                _code("run.watch()")]
    assert step_times(nb) == [
        {"step": "4. Plan", "started_at": "2026-06-10T09:30:01+00:00",
         "ended_at": "2026-06-10T09:30:05+00:00"},
        {"step": "5. Dispatch", "started_at": "2026-06-10T09:31:00Z",
         "ended_at": "2026-06-10T09:31:09Z"}]


def test_the_summary_events_become_the_records_timeline() -> None:
    """The summary's events (the run's clock) are the record's timeline, with its steps."""
    nb = nbformat.v4.new_notebook()
    cell = _code("run.summary()", "2026-06-10T09:32:00+00:00", "2026-06-10T09:32:01+00:00")
    cell.outputs = [nbformat.v4.new_output("display_data", data={"text/plain": "Summary"},
                                           metadata={METADATA_KEY: {"run": {
                                               "id": "r1", "timeline": 2, "events": [
                                                   {"at": "2026-06-10T09:30:00Z", "event": "a"},
                                                   {"at": "2026-06-10T09:31:00Z", "event": "b"}]}}})]
    nb.cells = [nbformat.v4.new_markdown_cell("## Summary"), cell]
    found = run_identity(nb)
    assert found["run_id"] == "r1"
    assert found["timeline"] == [{"at": "2026-06-10T09:30:00Z", "event": "a"},
                                 {"at": "2026-06-10T09:31:00Z", "event": "b"}]
    assert found["steps"][0]["step"] == "Summary"
