"""Execute a runbook notebook with papermill and archive it as the incident record.

The executed notebook is written even when a step fails (papermill marks the
failing cell); its metadata gains a ``rollback_runbook`` block with the path,
environment, outcome, exit code, failing step, parameters and decisions, so
records from headless and interactive runs read the same.

An interactive walkthrough (JupyterLab) is archived by its last cell instead:
:func:`archive_walkthrough` reads the notebook as the engineer saved it, derives
the same block from it (the first error output plays papermill's failing cell)
and writes it under the same name rules.
"""

from __future__ import annotations

import ast
import logging
import os
import time
from dataclasses import asdict, dataclass, field, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import nbformat
import papermill
from papermill.exceptions import PapermillExecutionError

if TYPE_CHECKING:
    from rollback_helpers.runs import RunContext

from rollback_helpers.display import METADATA_KEY, Report
from rollback_helpers.errors import ConfigError, error_class_named
from rollback_helpers.headless import papermill_options
from rollback_helpers.secrets import redact

REPO_ROOT = Path(__file__).resolve().parent.parent
NOTEBOOKS = {
    "path-a": "path_a_image_rollback.ipynb",
    "path-b": "path_b_database_breakglass.ipynb",
    "verify-flip": "path_b_verify_flip.ipynb",
}


@dataclass(frozen=True)
class Outcome:
    path: str
    env: str
    archive: str
    exit_code: int
    outcome: str               # "success", or the error class's outcome ("workflow-failed", …)
    error: str = ""            # ErrorClass: message (redacted)
    failed_step: str = ""      # the heading of the step whose cell failed
    failed_cell: int | None = None
    mode: str = "headless"     # "headless" (papermill) or "interactive" (JupyterLab)
    dry_run: bool = True
    backend: str = "sandbox"
    started_at: str = ""
    finished_at: str = ""
    seconds: float = 0.0
    parameters: dict[str, Any] = field(default_factory=dict)   # as the notebook was given them
    decisions: list[dict[str, str]] = field(default_factory=list)  # what, who, at, how, step

    @property
    def ok(self) -> bool:
        return self.exit_code == 0


def notebooks_dir() -> Path:
    return REPO_ROOT / "notebooks"


def archive_path(incidents_dir: str | Path, env: str, path: str, *, dry_run: bool,
                 now: datetime | None = None) -> Path:
    """``<dir>/<UTC timestamp>-<env>-<path>[-dry-run].ipynb``, never overwriting one."""
    stamp = (now or datetime.now(UTC)).strftime("%Y%m%dT%H%M%SZ")
    base = f"{stamp}-{env}-{path}" + ("-dry-run" if dry_run else "")
    candidate = Path(incidents_dir) / f"{base}.ipynb"
    n = 2
    while candidate.exists():
        candidate = Path(incidents_dir) / f"{base}-{n}.ipynb"
        n += 1
    return candidate


def execute(path: str, output: Path, parameters: dict[str, Any], *, cwd: Path | None = None,
            log_output: bool = True) -> Outcome:
    """Run the notebook for ``path`` into ``output``; never raises for a failed step."""
    output.parent.mkdir(parents=True, exist_ok=True)
    parameters = {**parameters, "interactive": False}  # headless: never wait on a widget
    started, began = datetime.now(UTC), time.monotonic()
    common: dict[str, Any] = {
        "path": path, "env": str(parameters.get("env")), "archive": str(output),
        "dry_run": bool(parameters.get("dry_run", True)),
        "backend": str(parameters.get("backend", "sandbox")),
        "started_at": started.isoformat(timespec="seconds")}
    try:
        papermill.execute_notebook(str(notebooks_dir() / NOTEBOOKS[path]), str(output),
                                   parameters=parameters, progress_bar=False,
                                   log_output=log_output, cwd=str(cwd or REPO_ROOT),
                                   kernel_name="python3", **papermill_options())
        outcome = Outcome(exit_code=0, outcome="success", **common)
    except PapermillExecutionError as exc:
        outcome = _failed(exc, output, common)
    outcome = _finish(outcome, time.monotonic() - began)
    return stamp_metadata(output, outcome)


def _failed(exc: PapermillExecutionError, output: Path, common: dict[str, Any]) -> Outcome:
    return _failed_at(exc.ename, exc.evalue, exc.cell_index, output, common)


def _failed_at(ename: str, evalue: str, cell_index: int, notebook: Path,
               common: dict[str, Any]) -> Outcome:
    cls = error_class_named(ename)
    exit_code, outcome = (cls.exit_code, cls.outcome) if cls else (1, "error")
    return Outcome(exit_code=exit_code, outcome=outcome, error=redact(f"{ename}: {evalue}"),
                   failed_step=step_heading(notebook, cell_index), failed_cell=cell_index,
                   **common)


def _finish(outcome: Outcome, seconds: float) -> Outcome:
    data = asdict(outcome) | {"finished_at": datetime.now(UTC).isoformat(timespec="seconds"),
                              "seconds": round(seconds, 2)}
    return Outcome(**data)


def read_notebook(path: Path) -> nbformat.NotebookNode:
    return nbformat.read(str(path), as_version=4)  # type: ignore[no-untyped-call,no-any-return]


def write_notebook(nb: nbformat.NotebookNode, path: Path) -> None:
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
    cells = read_notebook(notebook).cells
    for cell in reversed(cells[: cell_index + 1]):
        if cell.cell_type == "markdown":
            for line in cell.source.splitlines():
                if line.startswith("#"):
                    return str(line.lstrip("#").strip())
    return f"cell {cell_index}"


def stamp_metadata(notebook: Path, outcome: Outcome) -> Outcome:
    """Write the ``rollback_runbook`` block, with the notebook's parameters and decisions."""
    nb = read_notebook(notebook)
    outcome = replace(outcome, parameters=notebook_parameters(nb), decisions=decisions_in(nb))
    nb.metadata[METADATA_KEY] = asdict(outcome)
    write_notebook(nb, notebook)
    return outcome


# -- reading a record ---------------------------------------------------------------------
def _runbook_metadata(nb: nbformat.NotebookNode) -> list[dict[str, Any]]:
    """The ``rollback_runbook`` blocks of every output, in notebook order."""
    return [dict(output.get("metadata", {}).get(METADATA_KEY))
            for cell in nb.cells if cell.cell_type == "code"
            for output in cell.get("outputs", [])
            if isinstance(output.get("metadata", {}).get(METADATA_KEY), dict)]


def decisions_in(nb: nbformat.NotebookNode) -> list[dict[str, str]]:
    """Every decision the notebook's outputs record, once each, in notebook order."""
    seen: dict[str, dict[str, str]] = {}
    for block in _runbook_metadata(nb):
        for decision in block.get("decisions", []):
            seen.setdefault(str(decision.get("id")), dict(decision))
    return list(seen.values())


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


# -- archiving an interactive walkthrough ---------------------------------------------------
WIDGET_MIME = "application/vnd.jupyter.widget-view+json"
SAVE_FIRST = "Save the notebook (Ctrl+S), then run this cell again."


def saved_notebook(explicit: str | None = None) -> Path:
    """The notebook file this kernel runs: explicit, else what jupyter-server told the kernel."""
    name = explicit or os.environ.get("JPY_SESSION_NAME", "")
    path = Path(name) if name else None
    if path is not None and not path.is_absolute() and not path.is_file():
        path = Path.cwd() / path.name
    if path is None or path.suffix != ".ipynb" or not path.is_file():
        raise ConfigError(f"Cannot find this notebook's file ({name or 'JupyterLab did not say'}).",
                          "Pass it: run.finish('path_a_image_rollback.ipynb'), its path relative "
                          "to this notebook's folder.")
    return path


def unsaved_work(nb: nbformat.NotebookNode, ctx: RunContext) -> str:
    """Why the saved file does not yet hold this run's story, or ``""``."""
    runs = [block["run"] for block in _runbook_metadata(nb) if isinstance(block.get("run"), dict)]
    if not any(run.get("id") == ctx.run_id for run in runs):
        return "The saved file does not show this run yet."
    summaries = [r for r in runs if "timeline" in r]
    mine = [r for r in summaries if r.get("id") == ctx.run_id]
    ended_in_error = first_error(nb) is not None  # a failed run's story ends at its error
    if summaries and not ended_in_error and (not mine or mine[-1]["timeline"] != len(ctx.timeline)):
        return ("The saved Summary is older than the run: run the Summary cell again, "
                "then save.")
    saved = {d.get("id") for d in decisions_in(nb)}
    missing = [d for d in ctx.decisions if d.id not in saved]
    if missing:
        return f"{len(missing)} decision(s) of this run are not in the saved file."
    return ""


def archive_walkthrough(ctx: RunContext, notebook: str | None = None) -> Report:
    """Archive the saved notebook of an interactive run, with a headless run's metadata block."""
    try:
        saved = saved_notebook(notebook)
    except ConfigError as exc:  # not JupyterLab (nbval, another editor): say how, do not fail
        return Report("Finish: not archived", status="stopped").note(exc.what).note(exc.next_step)
    nb = read_notebook(saved)
    problem = unsaved_work(nb, ctx)
    if problem:
        return Report("Finish: not archived yet", status="stopped").note(problem).note(SAVE_FIRST)
    target = Path(ctx.reserve_archive_path())
    outcome = stamp_walkthrough(nb, saved, ctx, target)
    report = Report("Finish: archived", status="ok" if outcome.ok else "warning")
    report.fact("archive", str(target)).fact("outcome", f"{outcome.outcome} (exit code "
                                                        f"{outcome.exit_code})")
    report.fact("decisions", len(outcome.decisions))
    if outcome.failed_step:
        report.note(f"Failed step: {outcome.failed_step} — {outcome.error}")
    report.note("Running this cell again (after saving) updates this archive.")
    _replace_finish_output(nb, report)
    target.parent.mkdir(parents=True, exist_ok=True)
    write_notebook(nb, target)
    ctx.log(f"archived at {target}")
    return report


def stamp_walkthrough(nb: nbformat.NotebookNode, saved: Path, ctx: RunContext,
                      target: Path) -> Outcome:
    """The metadata block for an interactive run, set on ``nb`` (widgets are dropped)."""
    _drop_widgets(nb)
    common: dict[str, Any] = {
        "path": ctx.path, "env": ctx.env.name, "archive": str(target), "mode": "interactive",
        "dry_run": ctx.dry_run, "backend": ctx.backends.name,
        "started_at": ctx.opened_at.isoformat(timespec="seconds")}
    error = first_error(nb)
    outcome = _failed_at(error[1], error[2], error[0], saved, common) if error \
        else Outcome(exit_code=0, outcome="success", **common)
    seconds = (datetime.now(UTC) - ctx.opened_at).total_seconds()
    outcome = replace(_finish(outcome, seconds), parameters=notebook_parameters(nb),
                      decisions=decisions_in(nb))
    nb.metadata[METADATA_KEY] = asdict(outcome)
    return outcome


def _drop_widgets(nb: nbformat.NotebookNode) -> None:
    """Widgets are controls, not the record: the decision lines they wrote are."""
    nb.metadata.pop("widgets", None)
    for cell in nb.cells:
        if cell.cell_type == "code":
            cell.outputs = [o for o in cell.get("outputs", [])
                            if WIDGET_MIME not in o.get("data", {})]


def _replace_finish_output(nb: nbformat.NotebookNode, report: Report) -> None:
    for cell in nb.cells:
        if cell.cell_type == "code" and "finish" in cell.get("metadata", {}).get("tags", []):
            data = {"text/plain": repr(report), "text/html": report._repr_html_()}
            cell.outputs = [nbformat.from_dict(  # type: ignore[no-untyped-call]
                {"output_type": "display_data", "data": data, "metadata": {}})]


def read_outcome(notebook: Path) -> dict[str, Any]:
    return dict(read_notebook(notebook).metadata.get(METADATA_KEY, {}))


class _CellOutput(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        return redact(record.getMessage().rstrip("\n"))


_BOOKKEEPING = ("Executing", "Ending Cell", "Input Notebook", "Output Notebook", "Black",
                "Kernel")


def quiet_papermill_logs() -> None:
    """Show the cells' own output on the terminal, not papermill's bookkeeping."""
    logger = logging.getLogger("papermill")
    handler = logging.StreamHandler()
    handler.setFormatter(_CellOutput())
    handler.addFilter(lambda record: not record.getMessage().startswith(_BOOKKEEPING))
    logger.handlers[:] = [handler]
    logger.setLevel(logging.INFO)
    logger.propagate = False
