"""Benchmark: `rollback-runbook stats` over 10,000 records in a local folder and 1,000 in a
`github://` store (the sandbox's GitHub).

One real Path A drill is run and its record copied N times, each copy another
environment, path, outcome and start, half of them drills (``drills/``). The
local folder holds the record as archived; the GitHub folder holds it without its
cells' display data (its metadata block whole), because the sandbox keeps every
file of its repository in one JSON state file that each request re-reads. Then
`stats --format json` runs in-process, as the command line does, and its time and the
process's peak resident memory are measured.

    .venv/bin/python -m benchmarks.stats [--local 10000] [--github 1000]

Writes benchmarks/results/stats.json.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import resource
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from benchmarks.common import machine, write_result
from rollback_helpers.cli import main as cli
from rollback_helpers.sandbox.core.world import World

ENVS = ("staging", "production", "development")
PATHS = ("path-a", "path-b", "verify-flip")
OUTCOMES = ("success", "success", "success", "workflow-failed")
GITHUB_FOLDER = "incident-records"


def template(work: Path) -> tuple[dict[str, Any], Path]:
    sandbox, incidents = work / "sandbox", work / "template"
    with contextlib.redirect_stdout(io.StringIO()):
        code = cli.main(["drill", "path-a", "--env", "staging", "--speed", "0", "--quiet",
                         "--sandbox-dir", str(sandbox), "--incidents-dir", str(incidents)])
    assert code == 0, f"the template drill failed with exit code {code}"
    return json.loads(next(incidents.glob("*.ipynb")).read_text()), sandbox


def variant(nb: dict[str, Any], i: int, *, slim: bool = False) -> str:
    block = nb["metadata"]["rollback_runbook"]
    start = datetime(2026, 1, 1, tzinfo=UTC) + timedelta(hours=3 * i)
    shifted = [{"at": (start + timedelta(seconds=20 * k)).isoformat().replace("+00:00", "Z"),
                "event": e["event"]} for k, e in enumerate(block.get("timeline", []))]
    meta = dict(block, env=ENVS[i % 3], path=PATHS[i % 3], outcome=OUTCOMES[i % 4],
                started_at=start.isoformat(), record_issue=1000 + i, timeline=shifted,
                backend="sandbox" if i % 2 else "real")
    copy = dict(nb, metadata=dict(nb["metadata"], rollback_runbook=meta))
    if slim:
        copy["cells"] = [dict(c, outputs=[dict(o, data={}) for o in c.get("outputs", [])
                                          if "rollback_runbook" in o.get("metadata", {})])
                         if c["cell_type"] == "code" else c for c in nb["cells"]]
    return json.dumps(copy, indent=1) + "\n"


def fill_local(folder: Path, nb: dict[str, Any], count: int) -> int:
    (folder / "drills").mkdir(parents=True)
    size = 0
    for i in range(count):
        text = variant(nb, i)
        size += len(text)
        (folder / ("drills" if i % 2 else "") / f"rec-{i:05d}.ipynb").write_text(text)
    return size // max(count, 1)


def fill_github(sandbox: Path, nb: dict[str, Any], count: int) -> int:
    world = World.load(sandbox)
    size = 0
    with world.transaction() as w:
        files = w.state["github"]["files"]
        for i in range(count):
            text = variant(nb, i, slim=True)
            size += len(text)
            files[f"{GITHUB_FOLDER}/{'drills/' if i % 2 else ''}rec-{i:05d}.ipynb"] = text
    return size // max(count, 1)


def timed_stats(*args: str) -> dict[str, Any]:
    began = time.monotonic()
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        code = cli.main(["stats", "--format", "json", *args])
    seconds = time.monotonic() - began
    assert code == 0, f"stats exited {code}"
    figures = json.loads(out.getvalue())
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    return {"seconds": round(seconds, 2), "peak_rss_mib": round(rss, 1),
            "drills_counted": figures["drills"]["drills"],
            "incidents_counted": sum(e["rollbacks"] for e in figures["environments"]),
            "unattributed": len(figures["unattributed_runs"])}


def measure(local: int = 10_000, github: int = 1_000) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="bench-stats-") as tmp:
        work = Path(tmp)
        nb, sandbox = template(work)
        local_bytes = fill_local(work / "incidents", nb, local)
        github_bytes = fill_github(sandbox, nb, github)
        sandbox_args = ("--sandbox-dir", str(sandbox))
        local_run = timed_stats("--incidents-dir", str(work / "incidents"), *sandbox_args)
        github_run = timed_stats("--incidents-dir",
                                 f"github://renewa/renewa-one@main/{GITHUB_FOLDER}", *sandbox_args)
        requests = sum(1 for c in World.load(sandbox).calls()
                       if c.get("seam") == "github" and GITHUB_FOLDER in json.dumps(c))
    return {"local_records": local, "local_record_bytes": local_bytes, "local": local_run,
            "github_records": github, "github_record_bytes": github_bytes, "github": github_run,
            "github_store_requests": requests, "machine": machine()}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--local", type=int, default=10_000)
    parser.add_argument("--github", type=int, default=1_000)
    args = parser.parse_args()
    figures = measure(args.local, args.github)
    print(json.dumps(figures, indent=2))
    print(f"written to {write_result('stats', figures)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
