"""An interrupted run's archive: the cell that was running, the cells that never ran."""

from __future__ import annotations

import nbformat

from rollback_helpers.run.interrupt import CellLog, mark_interrupted


def notebook(code_cells: int) -> nbformat.NotebookNode:
    nb = nbformat.v4.new_notebook()
    for i in range(code_cells):
        nb.cells.append(nbformat.v4.new_markdown_cell(f"## {i}. Step {i}"))
        cell = nbformat.v4.new_code_cell(f"run.step_{i}()")
        cell.execution_count = i + 1  # papermill leaves counts and "completed" on every cell
        cell.metadata["papermill"] = {"status": "completed", "start_time": "t", "end_time": "t"}
        cell.outputs = [nbformat.v4.new_output("stream", name="stdout", text=f"out {i}")]
        nb.cells.append(cell)
    return nb


def statuses(nb: nbformat.NotebookNode) -> list[str]:
    return [c.metadata["papermill"]["status"] for c in nb.cells if c.cell_type == "code"]


def test_the_running_cell_is_interrupted_and_later_cells_did_not_run() -> None:
    """Papermill would call every cell completed; the archive must not."""
    nb = notebook(4)
    cells = CellLog(started=[1, 3, 5], finished=[1, 3])
    assert mark_interrupted(nb, cells, "SIGTERM") == 5
    assert statuses(nb) == ["completed", "completed", "interrupted", "not run"]
    unrun = [c for c in nb.cells if c.cell_type == "code"][3]
    assert unrun.outputs == [] and unrun.execution_count is None


def test_a_banner_says_where_the_run_stopped_and_how_to_resume() -> None:
    nb = notebook(3)
    mark_interrupted(nb, CellLog(started=[1, 3], finished=[1]), "SIGINT")
    banner = next(c for c in nb.cells if "interrupted" in c.metadata.get("tags", []))
    assert "SIGINT" in banner.source and "Re-run the same command" in banner.source
    assert nb.cells.index(banner) == 3  # right above the interrupted cell


def test_stopped_between_cells_marks_the_rest_not_run() -> None:
    """A signal between two cells: nothing is interrupted mid-way, the rest did not run."""
    nb = notebook(3)
    assert mark_interrupted(nb, CellLog(started=[1], finished=[1]), "SIGTERM") is None
    assert statuses(nb) == ["completed", "not run", "not run"]


def test_a_failed_cell_is_not_finished() -> None:
    """Only a cell whose reply was ok counts as completed."""
    log = CellLog()
    hooks = log.hooks()
    hooks["on_cell_start"](cell=None, cell_index=1)
    hooks["on_cell_executed"](cell=None, cell_index=1,
                              execute_reply={"content": {"status": "error"}})
    assert log.finished == [] and log.running == 1
