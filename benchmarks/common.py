"""What every benchmark shares: the children's environment, timing, load and results."""

from __future__ import annotations

import argparse
import io
import json
import os
import platform
import statistics
import subprocess
import sys
import tarfile
import time
from collections.abc import Callable, Mapping, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "benchmarks" / "results"


def child_env() -> dict[str, str]:
    """This environment, with this venv's scripts first and Python's bytecode cache on.

    ``PYTHONDONTWRITEBYTECODE`` (set in some shells and CI images) would make every
    run recompile the package's sources; a user's runbook has its ``.pyc`` files.
    """
    env = dict(os.environ)
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
    return env


def load() -> float:
    """The 1-minute load average: other work on this machine's cores during a run."""
    return round(os.getloadavg()[0], 2)


def machine() -> dict[str, Any]:
    return {"cpus": os.cpu_count(), "python": platform.python_version(),
            "platform": platform.platform(terse=True),
            "date": datetime.now(UTC).strftime("%Y-%m-%d")}


def run_timed(argv: Sequence[str], *, cwd: Path = ROOT, env: Mapping[str, str] | None = None,
              timeout: float = 300.0) -> float:
    """Wall seconds of one command, which must succeed; its output is discarded."""
    began = time.monotonic()
    done = subprocess.run(list(argv), cwd=cwd, env=dict(env or child_env()), timeout=timeout,
                          stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    seconds = time.monotonic() - began
    if done.returncode != 0:
        raise RuntimeError(f"{' '.join(argv)} exited {done.returncode}:\n{done.stderr[-2000:]}")
    return seconds


def alternate(commands: Mapping[str, Sequence[str]], *, rounds: int, warmup: int = 1,
              envs: Mapping[str, Mapping[str, str]] | None = None,
              cwd: Path = ROOT) -> dict[str, list[float]]:
    """Each command once per round, in turn, so all see the same load; warm-up rounds dropped.

    ``envs`` gives a command its own environment (a baseline's ``PYTHONPATH``).
    """
    times: dict[str, list[float]] = {name: [] for name in commands}
    env = child_env()
    for n in range(warmup + rounds):
        for name, argv in commands.items():
            seconds = run_timed(argv, cwd=cwd, env=(envs or {}).get(name, env))
            if n >= warmup:
                times[name].append(round(seconds, 3))
    return times


def baseline_tree(rev: str, into: Path) -> Path:
    """The package and notebooks of ``rev`` (``git archive``) under ``into``, to import instead."""
    archive = subprocess.run(["git", "-C", str(ROOT), "archive", "--format=tar", rev,
                              "rollback_helpers", "notebooks"], capture_output=True, check=True)
    with tarfile.open(fileobj=io.BytesIO(archive.stdout)) as tar:
        if hasattr(tarfile, "data_filter"):  # Python ≥ 3.11.4
            tar.extractall(into, filter="data")
        else:
            tar.extractall(into)
    return into


def baseline_env(tree: Path) -> dict[str, str]:
    """:func:`child_env` importing ``rollback_helpers`` from a baseline tree (CLI and kernel)."""
    return {**child_env(), "PYTHONPATH": str(tree)}


def median(values: Sequence[float]) -> float:
    return round(statistics.median(values), 3)


def write_result(name: str, figures: Mapping[str, Any]) -> Path:
    """``benchmarks/results/<name>.json``: the figures and the machine they were measured on."""
    RESULTS.mkdir(parents=True, exist_ok=True)
    path = RESULTS / f"{name}.json"
    path.write_text(json.dumps({**figures, "machine": machine()}, indent=2) + "\n")
    return path


def timed_main(name: str, measure: Callable[[int, str], dict[str, Any]], doc: str | None) -> None:
    """A timed benchmark's own command line (``--rounds``, ``--baseline``); figures to results/."""
    parser = argparse.ArgumentParser(description=doc,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--baseline", default="", help="a git revision to measure alongside")
    args = parser.parse_args()
    figures = measure(args.rounds, args.baseline)
    print(json.dumps(figures, indent=2))
    print(f"written to {write_result(name, figures)}")
