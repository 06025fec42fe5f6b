"""Benchmark: importing the Path A step module in the kernel of a headless run.

A fresh kernel per round (the one ``rollback-runbook`` starts), asked to time
``import rollback_helpers.runbook.path_a`` itself: what the first step's cell waits for
before it can do anything. The kernel reports, too, whether pandas came with it.

    .venv/bin/python -m benchmarks.kernel_import [--rounds 7] [--baseline REV]
"""

from __future__ import annotations

import asyncio
import tempfile
from pathlib import Path
from typing import Any

from jupyter_client.manager import AsyncKernelManager

from benchmarks.common import baseline_env, baseline_tree, child_env, load, median, timed_main

TARGET_MS = 150.0
CODE = """\
import sys as _sys, time as _time
_began = _time.perf_counter()
import rollback_helpers.runbook.path_a
print(_time.perf_counter() - _began, "pandas" in _sys.modules, len(_sys.modules))
"""


def manager_class() -> type[AsyncKernelManager]:
    try:  # the kernel of a headless run
        from rollback_helpers.run.headless import HeadlessKernelManager
    except ImportError:  # a tree from before rollback_helpers.run.headless: papermill's default
        return AsyncKernelManager
    return HeadlessKernelManager


def baseline_manager(tree: Path) -> type[AsyncKernelManager]:
    """A tree with its own kernel launcher had its CLI start it (through ``PYTHONPATH`` the
    kernel runs the tree's launcher); an older tree's CLI used papermill's default manager."""
    if (tree / "rollback_helpers" / "run" / "kernel_launcher.py").is_file():
        return manager_class()
    return AsyncKernelManager


async def one_kernel(manager: type[AsyncKernelManager], env: dict[str, str]
                     ) -> tuple[float, bool, int]:
    km = manager(kernel_name="python3")
    # A neutral working directory: the package comes from the environment, as for a user.
    await km.start_kernel(env=env, cwd=tempfile.gettempdir())
    kc = km.client()
    kc.start_channels()
    printed: list[str] = []
    try:
        await kc.wait_for_ready(timeout=120)
        reply = await kc.execute_interactive(
            CODE, timeout=120, output_hook=lambda msg: printed.append(
                msg["content"].get("text", "")) if msg["msg_type"] == "stream" else None)
        if reply["content"]["status"] != "ok":
            raise RuntimeError(f"the import failed in the kernel: {reply['content']}")
    finally:
        kc.stop_channels()
        await km.shutdown_kernel()
        await km.cleanup_resources()
    seconds, pandas, modules = "".join(printed).split()
    return float(seconds), pandas == "True", int(modules)


def measure(rounds: int = 7, baseline: str = "") -> dict[str, Any]:
    """A fresh kernel per round, first round dropped; with ``baseline``, its kernel too, in turn."""
    kernels = {"current": (manager_class(), child_env())}
    with tempfile.TemporaryDirectory(prefix="rollback-bench-") as tmp:
        if baseline:  # the baseline's kernel as its CLI started it
            tree = baseline_tree(baseline, Path(tmp))
            kernels["baseline"] = (baseline_manager(tree), baseline_env(tree))
        load_before = load()
        runs: dict[str, list[tuple[float, bool, int]]] = {name: [] for name in kernels}
        for n in range(1 + rounds):
            for name, (manager, env) in kernels.items():
                result = asyncio.run(one_kernel(manager, env))
                if n:
                    runs[name].append(result)
        load_after = load()
    figures: dict[str, Any] = {"rounds": rounds, "kernel_manager": manager_class().__name__,
                               "target_milliseconds": TARGET_MS, "load_before": load_before,
                               "load_after": load_after}
    for name, results in runs.items():
        prefix = "" if name == "current" else "baseline_"
        milliseconds = [round(seconds * 1000, 1) for seconds, _, _ in results]
        figures.update({f"{prefix}import_milliseconds": milliseconds,
                        f"{prefix}median_milliseconds": median(milliseconds),
                        f"{prefix}pandas_imported": any(p for _, p, _ in results),
                        f"{prefix}modules_in_kernel_after": results[-1][2]})
    if baseline:
        figures["baseline"] = baseline
        figures["baseline_kernel_manager"] = kernels["baseline"][0].__name__
    return figures


if __name__ == "__main__":
    timed_main("kernel_import", measure, __doc__)
