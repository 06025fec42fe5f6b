"""A run stopped part-way: Ctrl-C, SIGTERM or a dead kernel, and what its archive then says.

The notebook runs in a worker thread while the main thread waits, so SIGINT and
SIGTERM reach our handlers (papermill's kernel client would otherwise take them).
A signal ends the run's kernel, with every process the kernel started (tunnels),
so the worker returns, papermill writes the notebook as far as it got, and
:func:`mark_interrupted` says in it which cell was interrupted and which never ran.
"""

from __future__ import annotations

import contextlib
import signal
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from types import FrameType
from typing import Any

import nbformat
import psutil

from rollback_helpers.run import prestart

# On a run kernel's command line: `-m rollback_helpers.run.kernel_launcher` (headless runs)
# or `-m ipykernel_launcher`.
KERNEL_MARK = "kernel_launcher"
STOP_GRACE = 3.0        # seconds a kernel gets between SIGTERM and SIGKILL
WORKER_DEADLINE = 60.0  # seconds the worker gets to write the notebook after a stop
SIGNAL_NAMES = {signal.SIGINT: "SIGINT", signal.SIGTERM: "SIGTERM"}


@dataclass
class CellLog:
    """Which cells started and which finished, from nbclient's hooks (papermill marks
    every cell "completed" when a run ends early, so its own statuses cannot tell)."""

    started: list[int] = field(default_factory=list)
    finished: list[int] = field(default_factory=list)

    def hooks(self) -> dict[str, Callable[..., None]]:
        return {"on_cell_start": self._start, "on_cell_executed": self._executed}

    def _start(self, cell: Any, cell_index: int, **_: Any) -> None:
        self.started.append(cell_index)

    def _executed(self, cell: Any, cell_index: int, execute_reply: Any = None, **_: Any) -> None:
        if (execute_reply or {}).get("content", {}).get("status", "ok") == "ok":
            self.finished.append(cell_index)

    @property
    def running(self) -> int | None:
        """The cell that started and did not finish, if any."""
        pending = [i for i in self.started if i not in self.finished]
        return pending[-1] if pending else None


class StopSignals:
    """While in use, SIGINT and SIGTERM stop the run instead of killing this process."""

    def __init__(self) -> None:
        self.signum: int | None = None
        self._previous: dict[int, Any] = {}

    @property
    def name(self) -> str:
        return SIGNAL_NAMES.get(signal.Signals(self.signum), str(self.signum)) \
            if self.signum else ""

    def _handle(self, signum: int, _frame: FrameType | None) -> None:
        if self.signum is None:
            self.signum = signum
            print(f"\n{SIGNAL_NAMES.get(signal.Signals(signum), signum)} received: stopping the "
                  "run, archiving it as interrupted, releasing what it holds…", flush=True)

    def __enter__(self) -> StopSignals:
        if threading.current_thread() is threading.main_thread():
            for sig in SIGNAL_NAMES:
                self._previous[sig] = signal.signal(sig, self._handle)
        return self

    def __exit__(self, *_: object) -> None:
        for sig, handler in self._previous.items():
            signal.signal(sig, handler)

    @contextlib.contextmanager
    def held(self) -> Iterator[None]:
        """Ignore further signals while cleaning up (a second Ctrl-C must not skip it)."""
        previous: dict[int, Any] = {}
        if threading.current_thread() is threading.main_thread():
            previous = {sig: signal.signal(sig, signal.SIG_IGN) for sig in SIGNAL_NAMES}
        try:
            yield
        finally:
            for sig, handler in previous.items():
                signal.signal(sig, handler)


def run_interruptibly(work: Callable[[], None], stop: StopSignals) -> BaseException | None:
    """Run ``work`` in a thread; on a stop signal, end the kernels it started. Its error, if any."""
    errors: list[BaseException] = []
    began = time.time()

    def worker() -> None:
        try:
            work()
        except BaseException as exc:  # noqa: BLE001 - handed to the main thread
            errors.append(exc)

    thread = threading.Thread(target=worker, name="runbook-notebook", daemon=True)
    thread.start()
    stopped_at: float | None = None
    while thread.is_alive():
        thread.join(0.2)
        if stop.signum is not None:
            stopped_at = stopped_at or time.monotonic()
            end_kernels(since=began)
            if time.monotonic() - stopped_at > WORKER_DEADLINE:
                break
    return errors[0] if errors else None


def end_kernels(*, since: float) -> list[int]:
    """End the notebook kernels this process started (since ``since``, or early for this run:
    :mod:`.prestart`) and their children."""
    ended: list[int] = []
    early = prestart.handed()
    for child in psutil.Process().children():
        with contextlib.suppress(psutil.Error):
            if (child.create_time() >= since - 1 or child.pid == early) \
                    and KERNEL_MARK in " ".join(child.cmdline()):
                tree = [*child.children(recursive=True), child]
                for process in tree:
                    with contextlib.suppress(psutil.Error):
                        process.terminate()
                _, alive = psutil.wait_procs(tree, timeout=STOP_GRACE)
                for process in alive:
                    with contextlib.suppress(psutil.Error):
                        process.kill()
                ended.append(child.pid)
    return ended


def mark_interrupted(nb: nbformat.NotebookNode, cells: CellLog, why: str) -> int | None:
    """Say in the notebook where the run stopped: the cell that was running is marked
    ``interrupted`` (with a banner above it), the cells after it ``not run``. Returns
    the index of the interrupted cell (None if the run stopped between cells)."""
    running = cells.running
    first_unrun = running if running is not None else \
        max(cells.started, default=-1) + 1
    for index, cell in enumerate(nb.cells):
        if cell.cell_type != "code" or index < first_unrun:
            continue
        meta = cell.metadata.setdefault("papermill", {})
        if index == running:
            meta["status"] = "interrupted"
        else:
            meta.update(status="not run", start_time=None, end_time=None, duration=None)
            cell.execution_count = None
            cell.outputs = []
    at = running if running is not None else first_unrun
    if at < len(nb.cells):
        banner = nbformat.v4.new_markdown_cell(  # type: ignore[no-untyped-call]
            f'<span style="color:red;font-weight:bold">Interrupted ({why}) '
            + ("while this step ran" if running is not None else "before this step")
            + ". The cells below did not run. Re-run the same command to resume.</span>")
        banner.metadata["tags"] = ["interrupted"]
        nb.cells.insert(at, banner)
    return running
