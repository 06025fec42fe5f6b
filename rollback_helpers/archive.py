"""Execute a runbook notebook with papermill and archive it as the incident record.

The executed notebook is written even when a step fails (papermill marks the
failing cell); its metadata gains a ``rollback_runbook`` block with the path,
environment, outcome, exit code and failing step, so records from headless and
interactive runs read the same.
"""

from __future__ import annotations

import logging
import time
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import nbformat
import papermill
from papermill.exceptions import PapermillExecutionError

from rollback_helpers.errors import error_class_named
from rollback_helpers.secrets import redact

REPO_ROOT = Path(__file__).resolve().parent.parent
NOTEBOOKS = {
    "path-a": "path_a_image_rollback.ipynb",
    "path-b": "path_b_database_breakglass.ipynb",
    "verify-flip": "path_b_verify_flip.ipynb",
}
METADATA_KEY = "rollback_runbook"


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
    started, began = datetime.now(UTC), time.monotonic()
    common = {"path": path, "env": str(parameters.get("env")), "archive": str(output),
              "dry_run": bool(parameters.get("dry_run", True)),
              "backend": str(parameters.get("backend", "sandbox")),
              "started_at": started.isoformat(timespec="seconds")}
    try:
        papermill.execute_notebook(str(notebooks_dir() / NOTEBOOKS[path]), str(output),
                                   parameters=parameters, progress_bar=False,
                                   log_output=log_output, cwd=str(cwd or REPO_ROOT),
                                   kernel_name="python3")
        outcome = Outcome(exit_code=0, outcome="success", **common)
    except PapermillExecutionError as exc:
        outcome = _failed(exc, output, common)
    outcome = _finish(outcome, time.monotonic() - began)
    stamp_metadata(output, outcome)
    return outcome


def _failed(exc: PapermillExecutionError, output: Path, common: dict[str, Any]) -> Outcome:
    cls = error_class_named(exc.ename)
    exit_code, outcome = (cls.exit_code, cls.outcome) if cls else (1, "error")
    return Outcome(exit_code=exit_code, outcome=outcome,
                   error=redact(f"{exc.ename}: {exc.evalue}"),
                   failed_step=step_heading(output, exc.cell_index), failed_cell=exc.cell_index,
                   **common)


def _finish(outcome: Outcome, seconds: float) -> Outcome:
    data = asdict(outcome) | {"finished_at": datetime.now(UTC).isoformat(timespec="seconds"),
                              "seconds": round(seconds, 2)}
    return Outcome(**data)


def step_heading(notebook: Path, cell_index: int) -> str:
    """The Markdown heading nearest above a cell: the step's name as the reader sees it."""
    if not notebook.is_file():
        return f"cell {cell_index}"
    cells = nbformat.read(str(notebook), as_version=4).cells
    for cell in reversed(cells[: cell_index + 1]):
        if cell.cell_type == "markdown":
            for line in cell.source.splitlines():
                if line.startswith("#"):
                    return line.lstrip("#").strip()
    return f"cell {cell_index}"


def stamp_metadata(notebook: Path, outcome: Outcome) -> None:
    nb = nbformat.read(str(notebook), as_version=4)
    nb.metadata[METADATA_KEY] = asdict(outcome)
    nbformat.write(nb, str(notebook))


def read_outcome(notebook: Path) -> dict[str, Any]:
    return dict(nbformat.read(str(notebook), as_version=4).metadata.get(METADATA_KEY, {}))


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
