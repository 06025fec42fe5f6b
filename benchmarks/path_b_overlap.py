"""Benchmark: Path B's readiness wait overlaps the app-URL reads.

On the sandbox, with a set restore time and ssh latency, it measures how long the
restore + wait step takes (virtual and wall time) and compares it with the
restore time alone and with reading the URLs after the wait (sequential).
Writes its figures to benchmarks/results/path_b_overlap.json.

    .venv/bin/python benchmarks/path_b_overlap.py [--restore 300] [--ssh 45] [--speed 60]
"""

from __future__ import annotations

import argparse
import json
import shutil
import tempfile
import time
from pathlib import Path

from rollback_helpers.runbook import path_b
from rollback_helpers.sandbox import discard
from rollback_helpers.sandbox.scenarios import create_world

RESULTS = Path(__file__).parent / "results" / "path_b_overlap.json"


def measure(restore: float, ssh: float, speed: float) -> dict[str, float]:
    state_dir = Path(tempfile.mkdtemp(prefix="rollback-bench-"))
    state_dir.chmod(0o755)
    try:
        world = create_world("b-default", state_dir, speed=speed)
        world.state["fly"].update(restore_seconds=restore, ssh_latency=ssh)
        world.save()
        run = path_b.start({"env": "staging", "dry_run": False, "sandbox_dir": str(state_dir)})
        run.resolve()
        began_virtual, began_wall = run.ctx.backends.clock.now(), time.monotonic()
        run.restore()
        run.wait_until_ready()
        virtual = run.ctx.backends.clock.now() - began_virtual
        wall = time.monotonic() - began_wall
    finally:
        discard(state_dir)  # the servers (and their data, wherever it lives), then the world
        shutil.rmtree(state_dir, ignore_errors=True)
    reads = 2 * ssh
    return {"restore_seconds": restore, "ssh_latency_seconds": ssh, "url_reads": 2,
            "speed": speed, "restore_and_wait_virtual_seconds": round(virtual, 1),
            "restore_and_wait_wall_seconds": round(wall, 2),
            "sequential_virtual_seconds": restore + reads,
            "overhead_over_restore_alone_seconds": round(virtual - restore, 1),
            "saved_vs_sequential_seconds": round(restore + reads - virtual, 1)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--restore", type=float, default=300.0)
    parser.add_argument("--ssh", type=float, default=45.0)
    parser.add_argument("--speed", type=float, default=60.0)
    args = parser.parse_args()
    figures = measure(args.restore, args.ssh, args.speed)
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(figures, indent=2) + "\n")
    print(json.dumps(figures, indent=2))
    print(f"written to {RESULTS}")


if __name__ == "__main__":
    main()
