"""Benchmark: a Path A dry-run drill against a bare papermill run of a 2-cell notebook.

Both run as an engineer runs them, as commands of this environment, alternated
round by round so both see the same load on the machine's cores; the first round
of each warms the disk and bytecode caches and is dropped. The drill does all of
Path A up to the plan on the sandbox (a world, a kernel, 13 code cells, the
archive); papermill only starts a kernel and runs ``x = 1`` and ``print(x + 1)``.

    .venv/bin/python -m benchmarks.drill_vs_papermill [--rounds 7] [--baseline REV]

With ``--baseline REV`` the drill of that git revision (its package and notebooks,
imported through ``PYTHONPATH``) runs in every round as well: before and after,
measured under the same load.
"""

from __future__ import annotations

import json
import sys
import tempfile
from pathlib import Path
from typing import Any

from benchmarks.common import alternate, baseline_env, baseline_tree, load, median, timed_main

TARGET_RATIO = 0.75
TWO_CELLS = {
    "cells": [
        {"cell_type": "code", "execution_count": None, "id": "parameters",
         "metadata": {"tags": ["parameters"]}, "outputs": [], "source": ["x = 1"]},
        {"cell_type": "code", "execution_count": None, "id": "work", "metadata": {},
         "outputs": [], "source": ["print(x + 1)"]},
    ],
    "metadata": {"kernelspec": {"display_name": "Python 3", "language": "python",
                                "name": "python3"},
                 "language_info": {"name": "python"}},
    "nbformat": 4, "nbformat_minor": 5,
}


def commands(tmp: Path) -> dict[str, list[str]]:
    bin_dir = Path(sys.executable).parent
    notebook = tmp / "two_cells.ipynb"
    notebook.write_text(json.dumps(TWO_CELLS))
    return {
        "drill": [str(bin_dir / "rollback-runbook"), "drill", "path-a", "--env", "staging",
                  "--dry-run", "--speed", "0", "--incidents-dir", str(tmp / "incidents")],
        "papermill": [str(bin_dir / "papermill"), str(notebook), str(tmp / "out.ipynb")],
    }


def measure(rounds: int = 7, baseline: str = "") -> dict[str, Any]:
    """Alternated rounds; with ``baseline`` (a git revision) its drill runs in each round too."""
    with tempfile.TemporaryDirectory(prefix="rollback-bench-") as tmp:
        runs, envs = commands(Path(tmp)), {}
        if baseline:
            runs["baseline_drill"] = runs["drill"]
            envs["baseline_drill"] = baseline_env(baseline_tree(baseline, Path(tmp) / "baseline"))
        load_before = load()
        times = alternate(runs, rounds=rounds, envs=envs)
        load_after = load()
    drill, bare = median(times["drill"]), median(times["papermill"])
    figures = {"rounds": rounds, "drill_seconds": times["drill"],
               "papermill_seconds": times["papermill"], "drill_median_seconds": drill,
               "papermill_median_seconds": bare, "ratio": round(drill / bare, 2),
               "target_ratio": TARGET_RATIO, "load_before": load_before, "load_after": load_after}
    if baseline:
        before = median(times["baseline_drill"])
        figures.update(baseline=baseline, baseline_drill_seconds=times["baseline_drill"],
                       baseline_drill_median_seconds=before, baseline_ratio=round(before / bare, 2))
    return figures


if __name__ == "__main__":
    timed_main("drill_vs_papermill", measure, __doc__)
