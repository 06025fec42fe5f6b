"""Execute a runbook notebook with papermill and archive it as the incident record.

The executed notebook is written even when a step fails (papermill marks the
failing cell); its metadata gains a ``rollback_runbook`` block with the path,
environment, outcome, exit code, failing step, parameters and decisions, so
records from headless and interactive runs read the same.

An interactive walkthrough (JupyterLab) is archived by its last cell instead
(:mod:`rollback_helpers.run.walkthrough`), under the same name rules.
"""

from __future__ import annotations

import logging
import tempfile
from dataclasses import asdict, dataclass, field, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import papermill
from nbclient.exceptions import DeadKernelError
from papermill.exceptions import PapermillExecutionError

from rollback_helpers.clock import Clock, RealClock
from rollback_helpers.domain.paths import path_spec
from rollback_helpers.errors import (
    OUTCOMES,
    ConfigError,
    Interrupted,
    KernelDied,
    OutcomeName,
    Terminated,
    error_class_named,
    outcome_of,
)
from rollback_helpers.records.notebook_io import (
    decisions_in,
    heading_above,
    notebook_parameters,
    read_notebook,
    run_identity,
    step_heading,
    write_notebook,
)
from rollback_helpers.run.headless import papermill_options
from rollback_helpers.run.interrupt import CellLog, StopSignals, mark_interrupted, run_interruptibly
from rollback_helpers.secrets import redact
from rollback_helpers.ui.decisions import default_operator
from rollback_helpers.ui.display import METADATA_KEY
from rollback_helpers.version import runbook_commit, runbook_version

NOTEBOOK_DIR = Path(__file__).resolve().parents[1] / "notebooks"  # shipped in the package


@dataclass(frozen=True)
class Outcome:
    path: str
    env: str
    archive: str
    exit_code: int
    outcome: OutcomeName       # "success", or the error class's ("workflow-failed", …)
    error: str = ""            # ErrorClass: message (redacted)
    failed_step: str = ""      # the heading of the step whose cell failed
    failed_cell: int | None = None
    last_step: str = ""        # the heading of the last step that completed
    mode: str = "headless"     # "headless" (papermill) or "interactive" (JupyterLab)
    dry_run: bool = True
    backend: str = "sandbox"
    started_at: str = ""
    finished_at: str = ""
    seconds: float = 0.0
    parameters: dict[str, Any] = field(default_factory=dict)   # as the notebook was given them
    decisions: list[dict[str, str]] = field(default_factory=list)  # what, who, at, how, step
    run_id: str = ""                # the run's id (its record comment's marker names it)
    record_issue: int | None = None  # the deployment-record issue the run's comment is on
    account: str = ""               # the GitHub account the run wrote its comment as
    facts: dict[str, str] = field(default_factory=dict)  # from/to image, workflow run, new cluster
    timeline: list[dict[str, str]] = field(default_factory=list)  # at, event: the run's own clock
    steps: list[dict[str, str]] = field(default_factory=list)  # step, started_at, ended_at (UTC)
    operator: str = ""              # who ran it (the parameter, else the login name)
    runbook_version: str = ""       # which runbook ran it: the package's version
    runbook_commit: str = ""        # and, from a checkout, its commit ("" from a wheel)

    @property
    def ok(self) -> bool:
        return self.exit_code == 0


def notebooks_dir() -> Path:
    """The runbook's notebooks, inside the installed package (a clone links ``notebooks/`` here)."""
    return NOTEBOOK_DIR


def notebook_of(path: str) -> Path:
    """The notebook of the runbook path named ``path`` (``domain.paths``)."""
    return notebooks_dir() / path_spec(path).notebook


def archive_name(env: str, path: str, *, dry_run: bool, now: datetime | None = None) -> str:
    """``<UTC timestamp>-<env>-<path>[-dry-run].ipynb`` (a store adds ``-2``… when it is taken)."""
    stamp = (now or datetime.now(UTC)).strftime("%Y%m%dT%H%M%SZ")
    return f"{stamp}-{env}-{path}" + ("-dry-run" if dry_run else "") + ".ipynb"


def archive_path(incidents_dir: str | Path, env: str, path: str, *, dry_run: bool,
                 now: datetime | None = None, reserve: bool = False) -> Path:
    """``<dir>/<UTC timestamp>-<env>-<path>[-dry-run].ipynb`` in a local folder, never
    overwriting one.

    ``reserve`` creates the (empty) file at once, so two runs started in the same
    second on one machine cannot choose the same name. (A records store instead
    gives a taken name a suffix when the record is written.)"""
    base = archive_name(env, path, dry_run=dry_run, now=now).removesuffix(".ipynb")
    candidate = Path(incidents_dir) / f"{base}.ipynb"
    n = 2
    while not _free(candidate, reserve=reserve):
        candidate = Path(incidents_dir) / f"{base}-{n}.ipynb"
        n += 1
    return candidate


def _free(candidate: Path, *, reserve: bool) -> bool:
    if not reserve:
        return not candidate.exists()
    candidate.parent.mkdir(parents=True, exist_ok=True)
    try:
        candidate.open("x").close()
    except FileExistsError:
        return False
    return True


def ensure_writable_dir(directory: Path, *, source: str = "incidents_dir") -> Path:
    """``directory``, created if need be and proven writable; else a ConfigError naming ``source``."""
    try:
        directory.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=directory, prefix=".writable-"):
            pass
    except OSError as exc:
        raise ConfigError(
            f"The incidents directory {directory} cannot be created or written "
            f"({exc.strerror or type(exc).__name__}); the run's archive would be lost.",
            f"Set {source} to a directory you can write, then re-run. Nothing was started.") \
            from None
    return directory


def execute(path: str, output: Path, parameters: dict[str, Any], *, cwd: Path | None = None,
            log_output: bool = True, stop: StopSignals | None = None,
            location: str = "", clock: Clock | None = None) -> Outcome:
    """Run the notebook for ``path`` into ``output``; never raises for a failed step.

    ``location`` is where the record will be stored (default: ``output`` itself).
    ``clock``: the run's clock, which every time in the record comes from (a drill's:
    its world's virtual clock, ``run.backends.record_clock``); the real one by default.
    SIGINT and SIGTERM (while ``stop`` is in use) and a dead kernel end the run as
    ``interrupted``: the archive names the last completed step and marks the cells
    that never ran.
    """
    output.parent.mkdir(parents=True, exist_ok=True)
    parameters = {**parameters, "interactive": False}  # headless: never wait on a widget
    clock = clock or RealClock()
    began = clock.now()
    started = datetime.fromtimestamp(began, UTC)
    common: dict[str, Any] = {
        "path": path, "env": str(parameters.get("env")), "archive": location or str(output),
        "dry_run": bool(parameters.get("dry_run", True)),
        "backend": str(parameters.get("backend", "sandbox")),
        "started_at": started.isoformat(timespec="seconds"),
        "operator": str(parameters.get("operator") or default_operator()),
        "runbook_version": runbook_version(), "runbook_commit": runbook_commit()}
    cells, stop = CellLog(), stop or StopSignals()

    def run() -> None:
        papermill.execute_notebook(str(notebook_of(path)), str(output),
                                   parameters=parameters, progress_bar=False,
                                   log_output=log_output, cwd=str(cwd or Path.cwd()),
                                   kernel_name="python3", **papermill_options(), **cells.hooks(),
                                   **({} if isinstance(clock, RealClock) else
                                      {"record_clock": clock}),
                                   # Stopped, not asked to stop: a kernel asked mid-cell (Ctrl-C)
                                   # logs a ZMQ traceback while its sockets close under it.
                                   shutdown_kernel="immediate")

    error = KeyboardInterrupt() if stop.signum else run_interruptibly(run, stop)
    if error is None:
        outcome = Outcome(exit_code=0, outcome=OUTCOMES[0], **common)
    elif stop.signum or isinstance(error, DeadKernelError) or (
            isinstance(error, PapermillExecutionError) and error.ename == "KeyboardInterrupt"):
        outcome = _interrupted(stop, error, cells, path, output, common)
    elif isinstance(error, PapermillExecutionError):
        outcome = _failed(error, output, common)
    else:
        raise error
    ended = clock.now()
    outcome = finished(outcome, ended - began, at=ended)
    return stamp_metadata(output, outcome)


def _interrupted(stop: StopSignals, error: BaseException, cells: CellLog, path: str,
                 output: Path, common: dict[str, Any]) -> Outcome:
    cls: type[Interrupted] = Terminated if stop.name == "SIGTERM" else \
        Interrupted if stop.signum or isinstance(error, PapermillExecutionError) else KernelDied
    why = stop.name or ("SIGINT" if cls is Interrupted else "the kernel died")
    if not output.is_file() or not output.stat().st_size:  # stopped before papermill wrote
        write_notebook(read_notebook(notebook_of(path)), output)
    nb = read_notebook(output)
    done = [i for i in cells.finished if i < len(nb.cells)]
    last = heading_above(nb, max(done)) if done else "none"
    at = cells.running
    step = heading_above(nb, at) if at is not None else "between steps"
    mark_interrupted(nb, cells, why)
    write_notebook(nb, output)
    return Outcome(exit_code=cls.exit_code, outcome=cls.outcome, failed_cell=at,
                   error=f"{cls.__name__}: interrupted ({why}) during {step!r}; the last "
                         f"completed step was {last!r}.",
                   failed_step=step, last_step=last, **common)


def _failed(exc: PapermillExecutionError, output: Path, common: dict[str, Any]) -> Outcome:
    return failed_at(exc.ename, exc.evalue, exc.cell_index, output, common)


def failed_at(ename: str, evalue: str, cell_index: int, notebook: Path,
              common: dict[str, Any]) -> Outcome:
    """The outcome of a run whose cell ``cell_index`` raised ``ename`` (headless: papermill's
    failing cell; a walkthrough: its first error output)."""
    cls = error_class_named(ename)
    exit_code = cls.exit_code if cls else 1
    outcome = outcome_of(exit_code)
    return Outcome(exit_code=exit_code, outcome=outcome, error=redact(f"{ename}: {evalue}"),
                   failed_step=step_heading(notebook, cell_index), failed_cell=cell_index,
                   last_step=step_heading(notebook, max(cell_index - 1, 0)), **common)


def finished(outcome: Outcome, seconds: float, *, at: float | None = None) -> Outcome:
    """``outcome`` stamped with when the run ended (``at``, else now) and how long it took."""
    end = datetime.now(UTC) if at is None else datetime.fromtimestamp(at, UTC)
    data = asdict(outcome) | {"finished_at": end.isoformat(timespec="seconds"),
                              "seconds": round(seconds, 2)}
    return Outcome(**data)


def stamp_metadata(notebook: Path, outcome: Outcome) -> Outcome:
    """Write the ``rollback_runbook`` block, with the notebook's parameters and decisions."""
    nb = read_notebook(notebook)
    outcome = replace(outcome, parameters=notebook_parameters(nb), decisions=decisions_in(nb),
                      **run_identity(nb))
    nb.metadata[METADATA_KEY] = asdict(outcome)
    write_notebook(nb, notebook)
    return outcome


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
