"""Benchmark: the operator's critical path at real-world latency, on the sandbox's virtual clock.

A live Path A run on the ``default`` scenario and a live Path B run on ``b-default``,
in this process, step by step as their notebooks run them, with every GitHub request
taking 250 ms and every flyctl command 1.5 s (``sandbox/core/latency.py``). Kernel
start-up is not included: "Enter" is the moment the first step's cell starts.

Figures, from the world's call log (each call's virtual ``span``):

- **Enter → dispatch**: until GitHub has accepted the ``promote-image.yml`` dispatch;
  **Enter → verified**: until the verify step has seen every machine on the target and
  the app healthy (the workflow run's own queue and duration, 95 s in the scenario, included);
- **serial GitHub requests before the dispatch**: the longest chain of GitHub requests
  of which each starts after the previous one ended (requests in flight together count once);
- **Path B, Enter → restore request**: until ``flyctl mpg restore`` was answered;
- a **breakdown**: every call before the dispatch (or the restore), when it started and ended.

    .venv/bin/python -m benchmarks.critical_path [--baseline REV]

``--baseline REV`` measures that revision too (its package from ``git archive``, in a
child process); it must have the latency model.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from benchmarks.common import ROOT, baseline_tree, child_env, write_result

LATENCY = {"github": 0.25, "flyctl": 1.5}
TARGET_SERIAL = 5
TARGET_DISPATCH_SECONDS = 2.5


def serial_requests(calls: Sequence[dict[str, Any]]) -> int:
    """The longest chain of calls each starting once the previous one has ended."""
    chain, free_at = 0, float("-inf")
    for call in sorted(calls, key=lambda c: (c["span"][1], c["span"][0])):
        if call["span"][0] >= free_at - 1e-9:
            chain, free_at = chain + 1, call["span"][1]
    return chain


def _timeline(calls: Sequence[dict[str, Any]], t0: float) -> list[dict[str, Any]]:
    return [{"seam": c["seam"], "call": c["call"], "start": round(c["span"][0] - t0, 3),
             "end": round(c["span"][1] - t0, 3)} for c in calls]


def _world(scenario: str, tmp: Path) -> float:
    from rollback_helpers.sandbox.scenarios import create_world

    return create_world(scenario, tmp, latency=LATENCY).now


def _quietly(steps: Sequence[Callable[[], object]]) -> None:
    with contextlib.redirect_stdout(io.StringIO()):  # progress lines of the waits
        for step in steps:
            step()


def measure_path_a() -> dict[str, Any]:
    from rollback_helpers.runbook import path_a
    from rollback_helpers.sandbox import shutdown
    from rollback_helpers.sandbox.core.world import read_calls
    from rollback_helpers.ui.interactive import RecordingScreen

    tmp = Path(tempfile.mkdtemp(prefix="rollback-bench-"))
    try:
        t0 = _world("default", tmp)
        run = path_a.start({"env": "staging", "dry_run": False, "sandbox_dir": str(tmp)},
                           screen=RecordingScreen())
        _quietly([run.preflight, run.current_state, run.recent_records, run.resolve_target,
                  run.plan, run.dispatch, run.watch, run.verify])
        verified = run.ctx.backends.clock.now() - t0
        calls = [c for c in read_calls(tmp) if "span" in c]
        run.summary()
    finally:
        shutdown(tmp)
        shutil.rmtree(tmp, ignore_errors=True)
    index = next(i for i, c in enumerate(calls) if c["call"].endswith("/dispatches"))
    before = calls[:index]
    return {"enter_to_dispatch_seconds": round(calls[index]["span"][1] - t0, 3),
            "enter_to_verified_seconds": round(verified, 3),
            "serial_github_requests_before_dispatch": serial_requests(
                [c for c in before if c["seam"] == "github"]),
            "github_requests_before_dispatch": sum(c["seam"] == "github" for c in before),
            "flyctl_commands_before_dispatch": sum(c["seam"] == "flyctl" for c in before),
            "timeline": _timeline(calls[:index + 1], t0)}


def measure_path_b() -> dict[str, Any]:
    from rollback_helpers.runbook import path_b
    from rollback_helpers.sandbox import discard
    from rollback_helpers.sandbox.core.world import read_calls
    from rollback_helpers.ui.interactive import RecordingScreen

    tmp = Path(tempfile.mkdtemp(prefix="rollback-bench-"))
    tmp.chmod(0o755)
    try:
        t0 = _world("b-default", tmp)
        run = path_b.start({"env": "staging", "dry_run": False, "sandbox_dir": str(tmp)},
                           screen=RecordingScreen())
        _quietly([run.preflight, run.resolve, run.plan, run.restore])
        calls = [c for c in read_calls(tmp) if "span" in c]
        run.summary()
    finally:
        discard(tmp)
        shutil.rmtree(tmp, ignore_errors=True)
    index = next(i for i, c in enumerate(calls) if c["call"].startswith("mpg restore"))
    before = calls[:index]
    return {"enter_to_restore_seconds": round(calls[index]["span"][1] - t0, 3),
            "serial_github_requests_before_restore": serial_requests(
                [c for c in before if c["seam"] == "github"]),
            "github_requests_before_restore": sum(c["seam"] == "github" for c in before),
            "flyctl_commands_before_restore": sum(c["seam"] == "flyctl" for c in before),
            "timeline": _timeline(calls[:index + 1], t0)}


def _here() -> dict[str, Any]:
    return {"latency": LATENCY, "path_a": measure_path_a(), "path_b": measure_path_b()}


def _at(rev: str) -> dict[str, Any]:
    """The same figures for ``rev``, measured by a child importing that revision's package."""
    with tempfile.TemporaryDirectory(prefix="rollback-baseline-") as tmp:
        tree = baseline_tree(rev, Path(tmp))
        env = {**child_env(), "PYTHONPATH": f"{tree}{os.pathsep}{ROOT}"}
        done = subprocess.run([sys.executable, "-m", "benchmarks.critical_path", "--child"],
                              cwd=tree, env=env, capture_output=True, text=True, timeout=600)
    if done.returncode != 0:
        raise RuntimeError(f"measuring {rev} failed:\n{done.stderr[-2000:]}")
    figures: dict[str, Any] = json.loads(done.stdout)
    return figures


def measure(baseline: str = "") -> dict[str, Any]:
    figures = {**_here(), "target_serial_requests": TARGET_SERIAL,
               "target_dispatch_seconds": TARGET_DISPATCH_SECONDS}
    if baseline:
        figures["baseline"] = baseline
        before = _at(baseline)
        figures["baseline_path_a"], figures["baseline_path_b"] = before["path_a"], before["path_b"]
    return figures


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--baseline", default="", help="a git revision to measure alongside")
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(_here()))
        return
    figures = measure(args.baseline)
    print(json.dumps({k: v for k, v in figures.items() if "path" not in k}, indent=2))
    for key in ("path_a", "path_b", "baseline_path_a", "baseline_path_b"):
        if key in figures:
            print(key, {k: v for k, v in figures[key].items() if k != "timeline"})
    print(f"written to {write_result('critical_path', figures)}")


if __name__ == "__main__":
    main()
