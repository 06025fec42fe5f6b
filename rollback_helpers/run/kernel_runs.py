"""A walkthrough's runs in one kernel: a new run ends the one before it, and so does the kernel.

JupyterLab's own instructions say "Run All Cells", and the first cell starts a run:
running it again (after the plan's button was pressed) starts a new run in the same
kernel. The run before it must not keep the environment's lock, nor leave its record
comment at "started": :func:`replace` ends it as *interrupted* — its lease released, its
record comment saying so and how to carry on — and the new run's look-back
(:mod:`rollback_helpers.runbook.resume`) finds that comment and carries on from it,
as a headless re-run does, instead of acting twice.

The kernel's end does the same for its last run: shutting the kernel down, restarting
it, or stopping ``rollback-runbook lab`` (whose server shuts its kernels down: a
shutdown request, then SIGTERM) releases the lease the kernel holds and finishes its
record comment (:func:`install_exit_hooks`). A restarted kernel then finishes the run
with a new run that carries on from the interrupted one.

Only the kernel's own runs are ended: another kernel's lease (another pid, on this host
or elsewhere) is never touched here.
"""

from __future__ import annotations

import atexit
import logging
import os
import signal
import threading
from collections.abc import Callable
from types import FrameType
from typing import Protocol

from rollback_helpers.errors import RollbackError
from rollback_helpers.run.lifecycle import Lifecycle

log = logging.getLogger(__name__)

KERNEL_END = ("the kernel was shut down (JupyterLab stopped, or the kernel was shut down or "
              "restarted)")


class KernelRun(Protocol):
    """What ending a walkthrough's run needs of it (the run's context satisfies it)."""

    @property
    def path(self) -> str: ...

    run_id: str

    def end_lifecycle(self) -> Lifecycle | None: ...

    def log(self, event: str) -> None: ...


def resume_hint(path: str) -> str:
    """The record comment's next step, in the walkthrough's own terms."""
    return (f"run {path}'s notebook again (Run All Cells) and press the plan's button: the "
            "new run finds this comment and carries on (watches a dispatched workflow run) "
            "instead of acting twice")


_current: list[KernelRun] = []  # this kernel's newest walkthrough run (one at most)
_hooks: list[bool] = []
_ending = threading.Lock()


def current() -> KernelRun | None:
    """This kernel's newest walkthrough run, if any."""
    return _current[0] if _current else None


def replace(run: KernelRun) -> list[str]:
    """``run`` is now the kernel's walkthrough run; the one before it, if it still holds the
    lock or a record comment that has not ended, is ended as interrupted. Lines to show."""
    before = current()
    _current[:] = [run]
    if in_kernel():
        install_exit_hooks()
    if before is None or before is run:
        return []
    lines = end_run(before, f"the walkthrough was run again from its first cell (run {run.run_id})")
    for line in lines:
        run.log(line)
    return lines


def in_kernel() -> bool:
    """Whether this process is an IPython kernel (JupyterLab's), not a test or a command."""
    from IPython import get_ipython

    return getattr(get_ipython(), "kernel", None) is not None


def forget() -> None:
    """Drop the kernel's run without ending it (tests, between two worlds)."""
    _current.clear()


def end_run(run: KernelRun, why: str) -> list[str]:
    """Release the lease ``run`` holds and mark its record comment interrupted (with how to
    carry on); nothing when it holds neither. Never raises: what failed is a line."""
    life = run.end_lifecycle()
    if life is None:
        return []
    lines: list[str] = []
    if life.lease is not None:  # first: the lock matters most when the kernel has seconds left
        try:
            released = life.release()
        except RollbackError as exc:  # release() logs its own failures; this is belt and braces
            released = False
            log.warning("lease of run %s not released: %s", run.run_id, exc.what)
        lines.append(f"run {run.run_id}: lock of {life.env} released" if released else
                     f"run {run.run_id}: lock of {life.env} NOT released (it expires on its own)")
    record = life.record
    if record is not None and not record.record.ended and record.record.state != "interrupted":
        reached = record.record.last_step
        # the archive reserved at the approval is never written: this run (its kernel, or the
        # notebook's `run`) is gone, so the comment stops naming it
        record.update(state="interrupted", next_step=resume_hint(run.path),
                      last_step=(f"{reached}; then " if reached else "") + f"interrupted: {why}",
                      archive=record.record.archive if record.record.sha256 else "")
        lines.append(f"run {run.run_id}: record comment on #{record.number} marked interrupted "
                     f"({why})" if not record.last_error else
                     f"run {run.run_id}: record comment on #{record.number} not updated "
                     f"({record.last_error})")
    return lines


def end_current(why: str = KERNEL_END) -> list[str]:
    """The kernel is ending: end its run (once, even if SIGTERM comes during the atexit)."""
    if not _ending.acquire(blocking=False):
        return []
    try:
        run = current()
        return end_run(run, why) if run is not None else []
    except Exception as exc:  # the kernel is going away: say it in its log, never raise
        log.warning("the walkthrough's run could not be ended: %s", exc)
        return []
    finally:
        _ending.release()


SignalHandler = Callable[[int, FrameType | None], None]


def install_exit_hooks(*, on: Callable[[int, SignalHandler], object] = signal.signal) -> None:
    """Once per kernel: at a normal exit (JupyterLab's shutdown request) and on SIGTERM (the
    server's next step when the kernel does not stop in time), end the kernel's run."""
    if _hooks:
        return
    _hooks.append(True)
    atexit.register(end_current)
    if threading.current_thread() is threading.main_thread():
        on(signal.SIGTERM, _on_sigterm)


def _on_sigterm(signum: int, _frame: FrameType | None) -> None:
    if _ending.locked():  # the exit hook is ending the run now: let it finish (SIGKILL may come)
        return
    end_current()
    signal.signal(signum, signal.SIG_DFL)
    os.kill(os.getpid(), signum)  # then end as SIGTERM would have
