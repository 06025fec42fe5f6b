"""Start the kernel of a headless run: ``ipykernel_launcher``, without the debugger.

    python -m rollback_helpers.run.kernel_launcher -f <connection file> [ipykernel options]

ipykernel imports debugpy as it starts (about 0.1 s) so that a front end can
attach a debugger; papermill never does. Marking ``debugpy`` unavailable makes
ipykernel behave as it does when debugpy is not installed: the kernel starts
without a debugger and says so in ``kernel_info`` (no ``"debugger"`` feature).

pydantic looks for plugins (the ``pydantic`` entry-point group) when the first
model is built, the run's parameters, by reading the entry points of every
installed distribution: about 25 ms of the first step, for plugins the runbook
has none of (and a validation plugin would see every parameter). The kernel sets
pydantic's own switch, ``PYDANTIC_DISABLE_PLUGINS=__all__``, unless the
environment already sets it.

Once ipykernel has started (its modules, IPython's shell, the sockets), the launcher
moves every object the garbage collector tracks into its permanent generation
(:func:`gc.freeze`): they live as long as the kernel, and a full collection no
longer walks them. One such collection falls inside the import of the Path A step
module, where walking them cost about a tenth of the import.

Started with ``--wait MODULE…`` (:mod:`rollback_helpers.run.prestart`), the launcher
imports ipykernel and the named modules (the step module the notebook imports first), then
waits for one line on its stdin: the launch it is handed (a JSON object: ``args``, the
kernel's arguments after ``-m``; ``env``, its environment; ``cwd``, its working folder).
It then starts as if it had been launched that way. End of input instead (the command
line stopped before its run started): it exits, having started nothing.

Only :mod:`rollback_helpers.run.headless` starts kernels this way; JupyterLab starts
its kernels from the usual ``python3`` kernel spec and keeps its debugger.
"""

from __future__ import annotations

import gc
import importlib
import json
import os
import sys
from pathlib import Path

WITHOUT = ("debugpy",)
NO_PYDANTIC_PLUGINS = ("PYDANTIC_DISABLE_PLUGINS", "__all__")
WAIT = "--wait"


def main() -> None:
    # As ipykernel_launcher: the working directory leaves sys.path while ipykernel loads
    # (IPython puts it back for the notebook's own imports).
    if sys.path and (sys.path[0] == "" or Path(sys.path[0]) == Path.cwd()):
        del sys.path[0]
    for name in WITHOUT:
        sys.modules.setdefault(name, None)  # type: ignore[arg-type]  # None: "not importable"
    os.environ.setdefault(*NO_PYDANTIC_PLUGINS)
    from ipykernel.kernelapp import IPKernelApp

    if sys.argv[1:2] == [WAIT] and not _handed_a_launch(sys.argv[2:]):
        return  # the command line stopped before its run: nothing was started
    app = IPKernelApp.instance()
    app.initialize()  # type: ignore[no-untyped-call]
    gc.freeze()  # the kernel's start-up objects live as long as it: collections skip them
    app.start()  # type: ignore[no-untyped-call]


def _handed_a_launch(modules: list[str]) -> bool:
    """Import ``modules`` while the command line gets ready, then take the launch it hands
    over: the kernel's arguments, environment and working folder, as a fresh launch has."""
    for module in modules:
        try:
            importlib.import_module(module)
        except Exception:  # noqa: BLE001  (the notebook's own import raises it, in the record)
            break
    line = sys.stdin.readline()
    if not line.strip():
        return False
    launch = json.loads(line)
    os.chdir(launch["cwd"])
    os.environ.clear()
    os.environ.update(launch["env"])
    os.environ.setdefault(*NO_PYDANTIC_PLUGINS)
    sys.argv[1:] = launch["args"]
    return True


if __name__ == "__main__":
    main()
