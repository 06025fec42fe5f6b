"""Reading and writing runbook notebooks: parameters, decisions, errors, step headings.

What an archived record says about itself is read here, whoever wrote it
(papermill or an interactive walkthrough).
"""

from __future__ import annotations

import ast
from pathlib import Path
from typing import TYPE_CHECKING, Any

from rollback_helpers.secrets import redact
from rollback_helpers.ui.display import METADATA_KEY

if TYPE_CHECKING:  # nbformat brings jsonschema: loaded by the first read or write, not by import
    import nbformat


def read_notebook(path: Path) -> nbformat.NotebookNode:
    import nbformat

    return nbformat.read(str(path), as_version=4)  # type: ignore[no-untyped-call,no-any-return]


def write_notebook(nb: nbformat.NotebookNode, path: Path) -> None:
    import nbformat

    nbformat.write(nb, str(path))  # type: ignore[no-untyped-call]


def parameterized(nb: nbformat.NotebookNode, parameters: dict[str, Any],
                  comment: str) -> nbformat.NotebookNode:
    """``nb`` with papermill's injected-parameters cell (as a headless run would have it)."""
    from papermill.parameterize import parameterize_notebook

    nb.metadata.setdefault("papermill", {})
    for cell in nb.cells:  # papermill expects every cell to have tags
        cell.metadata.setdefault("tags", [])
    nb = parameterize_notebook(nb, parameters, comment=comment)
    for cell in nb.cells:
        if not cell.metadata.get("tags"):
            cell.metadata.pop("tags", None)
    return nb


def step_heading(notebook: Path, cell_index: int) -> str:
    """The Markdown heading nearest above a cell: the step's name as the reader sees it."""
    if not notebook.is_file():
        return f"cell {cell_index}"
    return heading_above(read_notebook(notebook), cell_index)


def heading_above(nb: nbformat.NotebookNode, cell_index: int) -> str:
    """The Markdown heading nearest above cell ``cell_index`` of ``nb``."""
    cells = nb.cells
    for cell in reversed(cells[: cell_index + 1]):
        if cell.cell_type == "markdown":
            for line in cell.source.splitlines():
                if line.startswith("#"):
                    return str(line.lstrip("#").strip())
    return f"cell {cell_index}"


def runbook_metadata(nb: nbformat.NotebookNode) -> list[dict[str, Any]]:
    """The ``rollback_runbook`` blocks of every output, in notebook order."""
    return [dict(output.get("metadata", {}).get(METADATA_KEY))
            for cell in nb.cells if cell.cell_type == "code"
            for output in cell.get("outputs", [])
            if isinstance(output.get("metadata", {}).get(METADATA_KEY), dict)]


def decisions_in(nb: nbformat.NotebookNode) -> list[dict[str, str]]:
    """Every decision the notebook's outputs record, once each, in notebook order."""
    seen: dict[str, dict[str, str]] = {}
    for block in runbook_metadata(nb):
        for decision in block.get("decisions", []):
            seen.setdefault(str(decision.get("id")), dict(decision))
    return list(seen.values())


def _dict(value: Any) -> dict[str, Any]:
    return dict(value) if isinstance(value, dict) else {}


def run_identity(nb: nbformat.NotebookNode) -> dict[str, Any]:
    """The run's id, its record issue and what it changed, as the outputs' metadata name them."""
    found: dict[str, Any] = {}
    for block in runbook_metadata(nb):
        run = _dict(block.get("run"))
        comment = _dict(block.get("record_comment"))
        if run.get("id"):
            found["run_id"] = str(run["id"])
        if isinstance(run.get("events"), list):
            found["timeline"] = [{"at": str(e.get("at", "")), "event": str(e.get("event", ""))}
                                 for e in run["events"] if isinstance(e, dict)]
        if isinstance(run.get("facts"), dict):
            found.setdefault("facts", {}).update({str(k): str(v) for k, v in run["facts"].items()})
        if comment.get("account"):
            found["account"] = str(comment["account"])
        issue = comment.get("issue", run.get("record_issue"))
        if isinstance(issue, int) and not isinstance(issue, bool):
            found["record_issue"] = issue
    steps = step_times(nb)
    if steps:
        found["steps"] = steps
    return found


def step_times(nb: nbformat.NotebookNode) -> list[dict[str, str]]:
    """Each step's first start and last end (UTC, ISO 8601), in notebook order.

    A headless run's times are papermill's (``metadata.papermill.start_time`` /
    ``end_time`` of each cell); a walkthrough's are JupyterLab's when it records
    timing (``metadata.execution``). A step is the heading above its cells; a cell
    that never ran has no times and adds nothing.
    """
    steps: dict[str, dict[str, str]] = {}
    for index, cell in enumerate(nb.cells):
        if cell.cell_type != "code":
            continue
        start, end = _cell_times(cell.get("metadata", {}))
        if not start or not end:
            continue
        step = steps.setdefault(heading_above(nb, index), {"started_at": start, "ended_at": end})
        step["ended_at"] = max(step["ended_at"], end)
    return [{"step": name, **times} for name, times in steps.items()]


def _cell_times(metadata: Any) -> tuple[str, str]:
    timing = _dict(_dict(metadata).get("papermill"))
    start, end = timing.get("start_time"), timing.get("end_time")
    if not start:
        execution = _dict(_dict(metadata).get("execution"))
        start, end = execution.get("iopub.execute_input"), execution.get("shell.execute_reply")
    return (str(start), str(end)) if start and end else ("", "")


def notebook_parameters(nb: nbformat.NotebookNode) -> dict[str, Any]:
    """The parameters as given: the ``parameters`` cell, overridden by papermill's injected one."""
    values: dict[str, Any] = {}
    for cell in nb.cells:
        tags = cell.get("metadata", {}).get("tags", [])
        if cell.cell_type == "code" and {"parameters", "injected-parameters"} & set(tags):
            values.update(_assignments(cell.source))
    return values


def _assignments(source: str) -> dict[str, Any]:
    try:
        tree = ast.parse(source)
    except SyntaxError:
        return {}
    found: dict[str, Any] = {}
    for node in tree.body:
        if isinstance(node, ast.Assign) and len(node.targets) == 1 \
                and isinstance(node.targets[0], ast.Name):
            try:
                value = ast.literal_eval(node.value)
            except ValueError:
                value = ast.unparse(node.value)
            found[node.targets[0].id] = redact(value) if isinstance(value, str) else value
    return found


def first_error(nb: nbformat.NotebookNode) -> tuple[int, str, str] | None:
    """``(cell index, ename, evalue)`` of the first error output, as papermill would report it."""
    for index, cell in enumerate(nb.cells):
        for output in cell.get("outputs", []) if cell.cell_type == "code" else []:
            if output.get("output_type") == "error":
                return index, str(output.get("ename", "")), str(output.get("evalue", ""))
    return None


def record_structure(nb: nbformat.NotebookNode) -> dict[str, Any]:
    """What any record of a path has, whatever ran it: compare two records with ``==``.

    Parameter names, step headings, code cells (papermill's injected cell aside),
    the metadata block's keys, the outcome, and the decisions (step and what).
    """
    block = dict(nb.metadata.get(METADATA_KEY, {}))
    cells = [c for c in nb.cells if "injected-parameters" not in c.get("metadata", {}).get(
        "tags", [])]
    return {
        "parameters": sorted(block.get("parameters", {})),
        "headings": [line for c in cells if c.cell_type == "markdown"
                     for line in c.source.splitlines() if line.startswith("#")],
        "code": [c.source for c in cells if c.cell_type == "code"],
        "metadata keys": sorted(block),
        "outcome": (block.get("outcome"), block.get("exit_code"), block.get("dry_run")),
        "decisions": [(d.get("step"), d.get("what")) for d in block.get("decisions", [])],
    }
