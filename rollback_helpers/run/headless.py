"""How a headless run executes its notebook: a papermill engine with a leaner kernel.

:func:`papermill_options` is what :func:`rollback_helpers.archive.execute` passes
to ``papermill.execute_notebook``. Compared with papermill's default engine:

``HeadlessKernelManager``
    The kernel talks to the CLI over IPC (Unix sockets in a fresh 0700 directory,
    removed afterwards) instead of TCP on localhost, where any local user could
    connect to its ports and read its IOPub stream (signed, not encrypted): now
    only this user can, and ipykernel no longer warns on every run that it is
    "running over TCP without encryption". The ``python3`` kernel is this environment's own Python (the one
    that has ``rollback_helpers``), started by :mod:`rollback_helpers.run.kernel_launcher`
    (no debugger), so no kernel spec is searched for on the Jupyter paths (which
    also imported IPython into the CLI only to find ``~/.ipython/kernels``). Its
    provisioner, :class:`PrestartedProvisioner`, launches the kernel the command line
    started early when one is waiting (:mod:`rollback_helpers.run.prestart`).

``HeadlessKernelClient``
    jupyter_client's start-up handshake (``kernel_info`` until it is answered and
    IOPub delivers), without its last step: reading IOPub until 0.2 s pass in
    silence, to throw away the status messages of the handshake itself. nbclient
    reads IOPub by the id of the request it waits for and ignores those messages
    anyway, so the handshake ends as soon as the kernel is known to be ready.

``SavesBeforeCodeCells``
    papermill saves the output notebook when every cell starts and again when it
    ends, Markdown cells included, each save validated: 53 writes for a Path A dry
    run. This manager saves when a code cell starts (by then every earlier cell's
    outputs are complete), while a long cell runs (papermill's
    ``autosave_cell_every``) and when the notebook ends, so a run that dies
    mid-cell leaves the same partial record on disk as before: 16 writes. Each write
    goes to a file beside the notebook, renamed over it once whole, so a run killed
    mid-write leaves its last whole save, never a cut-off notebook. The
    final write and the write of a failed run (with papermill's error banner) are
    papermill's own, unchanged. Given a ``record_clock`` (a drill's world's virtual clock),
    its times (each cell's start and end, the notebook's) are read from that clock, and the
    kernel's own wall-clock timings (nbclient's ``record_timing``) are left out: a drill's
    record is told in one clock. Autosaving still counts real seconds.
"""

from __future__ import annotations

import os
import shutil
import sys
import tempfile
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path
from queue import Empty
from typing import Any

from jupyter_client.asynchronous.client import AsyncKernelClient
from jupyter_client.connect import KernelConnectionInfo
from jupyter_client.kernelspec import NATIVE_KERNEL_NAME, KernelSpec
from jupyter_client.manager import AsyncKernelManager
from jupyter_client.provisioning.local_provisioner import LocalProvisioner
from papermill.engines import NBClientEngine, NotebookExecutionManager, papermill_engines
from traitlets import default

from rollback_helpers.clock import Clock, RealClock
from rollback_helpers.run import prestart
from rollback_helpers.run.owner import process_start
from rollback_helpers.run.prestart import LAUNCHER

ENGINE_NAME = "rollback-runbook"


def papermill_options() -> dict[str, Any]:
    """Keyword arguments for ``papermill.execute_notebook``: this module's engine."""
    papermill_engines.register(ENGINE_NAME, HeadlessEngine)  # idempotent
    return {"engine_name": ENGINE_NAME}


def kernel_spec() -> KernelSpec:
    """``python3`` as this process runs it: ``sys.executable`` and the launcher, no debugger."""
    from ipykernel.kernelspec import RESOURCES, get_kernel_dict, make_ipkernel_cmd

    spec = get_kernel_dict()
    spec["argv"] = make_ipkernel_cmd(mod=LAUNCHER, executable=sys.executable)
    spec["metadata"] = {**spec.get("metadata", {}), "debugger": False}
    return KernelSpec(resource_dir=RESOURCES, **spec)


class HeadlessKernelClient(AsyncKernelClient):
    """A client whose :meth:`wait_for_ready` returns once the kernel answers and IOPub works."""

    async def wait_for_ready(self, timeout: float | None = None) -> None:
        deadline = time.monotonic() + (float("inf") if timeout is None else timeout)
        while True:
            self.kernel_info()
            try:
                reply = await self.shell_channel.get_msg(timeout=1)
            except Empty:
                reply = None
            if reply is not None and reply["msg_type"] == "kernel_info_reply":
                try:  # IOPub is subscribed once a message (this request's status) arrives on it
                    await self.iopub_channel.get_msg(timeout=0.2)
                except Empty:
                    pass
                else:
                    self._handle_kernel_info_reply(reply)  # the protocol version to speak
                    return
            if not await self.is_alive():
                raise RuntimeError("Kernel died before replying to kernel_info")
            if time.monotonic() > deadline:
                raise RuntimeError(f"Kernel didn't respond in {timeout:.0f} seconds")


SOCKET_PATH_MAX = 100  # bytes of a Unix socket's path (sun_path holds 104-108), with room to spare


def _fits_a_socket(folder: Path) -> bool:
    return len(os.fsencode(folder / "kernel-ipc-99")) <= SOCKET_PATH_MAX


KERNEL_PREFIX = "rollback-kernel-"
OWNER = "owner"  # "<pid> <start time>" of the process that made the folder


def _private_dir() -> Path:
    """A private folder in the temp folder, or in /tmp when $TMPDIR's path is too long for the
    kernel's sockets (a Unix socket's path is limited to about 104 bytes). It names its maker,
    so a folder left by a process killed outright can be told apart and removed."""
    folder = Path(tempfile.mkdtemp(prefix=KERNEL_PREFIX))
    if not (_fits_a_socket(folder) or _temp_is_tmp()):
        folder.rmdir()
        folder = Path(tempfile.mkdtemp(prefix=KERNEL_PREFIX, dir="/tmp"))
    (folder / OWNER).write_text(f"{os.getpid()} {process_start(os.getpid())}")
    return folder


def _temp_is_tmp() -> bool:
    return not Path("/tmp").is_dir() or Path(tempfile.gettempdir()) == Path("/tmp")


def sweep_kernel_dirs() -> int:
    """Remove kernel folders whose maker has gone (killed outright: nothing else removes them);
    the number removed. Folders without an owner, or of a live maker, are left alone."""
    removed = 0
    for root in {Path(tempfile.gettempdir()), Path("/tmp")}:
        for folder in root.glob(KERNEL_PREFIX + "*"):
            try:
                pid, started = (folder / OWNER).read_text().split()
                if str(process_start(int(pid))) == started:
                    continue
            except (OSError, ValueError):
                continue
            shutil.rmtree(folder, ignore_errors=True)
            removed += 1
    return removed


class PrestartedProvisioner(LocalProvisioner):
    """jupyter_client's local provisioner, launching the waiting kernel when there is one."""

    async def launch_kernel(self, cmd: list[str], **kwargs: Any) -> KernelConnectionInfo:
        env = dict(kwargs.get("env") or os.environ)
        env["JPY_PARENT_PID"] = str(os.getpid())  # as jupyter_client's launcher sets it
        cwd = str(kwargs.get("cwd") or Path.cwd())
        process = prestart.take([os.path.expanduser(part) for part in cmd], env, cwd)
        if process is None:
            return await super().launch_kernel(cmd, **kwargs)
        self.process, self.pid, self.cwd = process, process.pid, cwd
        try:
            self.pgid = os.getpgid(process.pid)
        except OSError:
            self.pgid = None
        return self.connection_info


class HeadlessKernelManager(AsyncKernelManager):
    """One kernel for one headless run, reached over IPC in a private directory."""

    def __init__(self, **kwargs: Any) -> None:
        self._private_dir = _private_dir()  # mode 0700
        kwargs.setdefault("connection_file", str(self._private_dir / "kernel.json"))
        super().__init__(**kwargs)
        # jupyter_client's local provisioner, which launches a kernel already waiting if there
        # is one (jupyter_client creates a provisioner only where none is set)
        self.kernel_id = self.kernel_id or str(uuid.uuid4())
        self.provisioner = PrestartedProvisioner(kernel_id=self.kernel_id,
                                                 kernel_spec=self.kernel_spec, parent=self)

    @default("client_factory")
    def _client_factory_default(self) -> type[HeadlessKernelClient]:
        return HeadlessKernelClient

    @default("transport")
    def _transport_default(self) -> str:
        # Unix sockets <dir>/kernel-ipc-<n>, next to the connection file; TCP where there are none
        # or where no private folder has a path short enough for a socket.
        return "ipc" if os.name == "posix" and _fits_a_socket(self._private_dir) else "tcp"

    @property
    def kernel_spec(self) -> KernelSpec | None:
        if self._kernel_spec is None and self.kernel_name == NATIVE_KERNEL_NAME:
            self._kernel_spec = kernel_spec()
        return super().kernel_spec

    async def cleanup_resources(self, restart: bool = False) -> None:  # type: ignore[override]
        await super().cleanup_resources(restart=restart)
        if not restart:
            shutil.rmtree(self._private_dir, ignore_errors=True)


class SavesBeforeCodeCells(NotebookExecutionManager):  # type: ignore[misc]
    """papermill's execution manager, saving before each code cell rather than around every cell."""

    _hold_save = False
    clock: Clock = RealClock()
    _saved_at = 0.0  # time.monotonic() of the last save
    output_path: str | None   # papermill's: where the notebook is saved
    autosave_cell_every: int  # papermill's: seconds between saves while a cell runs
    max_autosave_pct: int     # papermill's: a save slower than this % of that backs off

    def now(self) -> datetime:
        """papermill's timestamps, on the run's clock."""
        return datetime.fromtimestamp(self.clock.now(), UTC)

    def autosave_cell(self) -> None:
        """A long cell's output saved every ``autosave_cell_every`` real seconds (whatever clock
        the record is told in: a virtual one may jump), less often if saving is slow (as
        papermill's own does)."""
        every = self.autosave_cell_every
        if not every or time.monotonic() - self._saved_at < every:
            return
        began = time.monotonic()
        self.save()
        if time.monotonic() - began > every * self.max_autosave_pct / 100:
            self.autosave_cell_every = every * 2

    def cell_start(self, cell: Any, cell_index: int | None = None, **kwargs: Any) -> None:
        self._hold_save = cell.cell_type != "code"
        try:
            super().cell_start(cell, cell_index, **kwargs)
        finally:
            self._hold_save = False

    def cell_complete(self, cell: Any, cell_index: int | None = None, **kwargs: Any) -> None:
        self._hold_save = True  # the next code cell's start, or the notebook's end, saves it
        try:
            super().cell_complete(cell, cell_index, **kwargs)
        finally:
            self._hold_save = False

    def save(self, **kwargs: Any) -> None:
        """papermill's save, made whole or not at all on a local path: written beside the
        notebook, then renamed over it, so a run killed mid-save leaves its last whole save."""
        if self._hold_save:
            return
        final = self.output_path
        if not final or "://" in str(final):
            super().save(**kwargs)
        else:
            here = Path(final)
            self.output_path = partial = str(here.with_name(f".{here.stem}.saving.ipynb"))
            if here.exists():  # the notebook's own mode (a working copy's is 0600) from the start
                mode = here.stat().st_mode & 0o777
                os.close(os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode))
                os.chmod(partial, mode)  # papermill's write truncates it and keeps the mode
            try:
                super().save(**kwargs)
            finally:
                self.output_path = final
            if os.path.exists(partial):
                os.replace(partial, final)
        self._saved_at = time.monotonic()


class HeadlessEngine(NBClientEngine):  # type: ignore[misc]
    """papermill's nbclient engine with :class:`SavesBeforeCodeCells` and :class:`HeadlessKernelManager`."""

    @classmethod
    def execute_notebook(cls, nb: Any, kernel_name: str, output_path: str | None = None,
                         progress_bar: bool = True, log_output: bool = False,
                         autosave_cell_every: int = 30, record_clock: Clock | None = None,
                         **kwargs: Any) -> Any:
        # papermill's Engine.execute_notebook, with this module's execution manager.
        nb_man = SavesBeforeCodeCells(nb, output_path=output_path, progress_bar=progress_bar,
                                      log_output=log_output, autosave_cell_every=autosave_cell_every)
        if record_clock is not None:
            nb_man.clock = record_clock
            kwargs["record_timing"] = False  # the kernel's timings are the real clock's
        nb_man.notebook_start()
        try:
            cls.execute_managed_notebook(nb_man, kernel_name, log_output=log_output, **kwargs)
        finally:
            nb_man.cleanup_pbar()
            nb_man.notebook_complete()
        return nb_man.nb

    @classmethod
    def execute_managed_notebook(cls, nb_man: Any, kernel_name: str, **kwargs: Any) -> Any:
        kwargs.setdefault("kernel_manager_class", HeadlessKernelManager)
        return super().execute_managed_notebook(nb_man, kernel_name, **kwargs)
