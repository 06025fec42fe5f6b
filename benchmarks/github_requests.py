"""Benchmark: what Path A asks of GitHub, counted on the sandbox (no timings).

``resolve``: a staging history of 10,000 deployment records; Path A's steps 1–3
(what runs, recent records, rollback target) as the notebook runs them. The
figure is the number of GitHub requests in the sandbox's call log.

``watch``: a live drill whose ``promote-image.yml`` run takes 10 minutes (virtual
time, so it is instant). The figure is the rate-limit points the watch step
cost, read from the ``x-ratelimit-used`` header of GitHub's answers, with the
call log's count of polls and of free ``304 Not Modified`` answers beside it.

    .venv/bin/python -m benchmarks.github_requests [--records 10000] [--minutes 10]
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import shutil
import tempfile
from collections import Counter
from pathlib import Path
from typing import Any

import httpx

from benchmarks.common import write_result
from rollback_helpers.clock import utc_iso
from rollback_helpers.runbook import path_a
from rollback_helpers.sandbox import shutdown
from rollback_helpers.sandbox.core.world import World, digest_for, read_calls
from rollback_helpers.sandbox.scenarios import create_world, record_body
from rollback_helpers.ui.interactive import RecordingScreen

TARGET_RESOLVE_REQUESTS = 2
TARGET_WATCH_POINTS = 5
DAY = 86400.0


def _older_records(world: World, count: int) -> None:
    """``count`` valid staging records, all older than the scenario's own."""
    gh = world.state["github"]
    oldest = world.now - 30 * DAY  # the scenario's records are the last few days'
    for n in range(count):
        created = oldest - (count - n) * 3600
        image = f"registry.fly.io/renewa-one@{digest_for(f'old{n}')}"
        gh["issues"].append({
            "number": 100_000 + n, "title": f"Deploy old{n} to staging", "state": "open",
            "body": record_body("staging", "renewa-one-staging", image, "",
                                sha=digest_for(f"git-old{n}")[7:14], at=created,
                                workflow_run=f"https://github.com/{gh['repo']}/actions/runs/"
                                             f"{8_000_000 + n}"),
            "labels": ["deployment-record", "env:staging"], "user": "deploy-bot",
            "created_at": utc_iso(created), "updated_at": utc_iso(created)})


def _world(tmp: Path, *, extra_records: int = 0, workflow_seconds: float | None = None) -> Path:
    world = create_world("default", tmp)
    if extra_records:
        _older_records(world, extra_records)
    if workflow_seconds is not None:
        world.state["github"]["workflow"]["duration"] = workflow_seconds
    world.save()
    return tmp


def _github_calls(state_dir: Path, since: int = 0) -> list[dict[str, Any]]:
    return [c for c in read_calls(state_dir)[since:] if c["seam"] == "github"]


def measure_resolve(records: int = 10_000) -> dict[str, Any]:
    tmp = Path(tempfile.mkdtemp(prefix="rollback-bench-"))
    try:
        _world(tmp, extra_records=records - 4)  # the default scenario has 4 staging records
        run = path_a.start({"env": "staging", "dry_run": True, "sandbox_dir": str(tmp)},
                           screen=RecordingScreen())
        staging = sum("env:staging" in i["labels"] for i in World.load(tmp).state["github"]["issues"])
        before = len(read_calls(tmp))
        run.current_state()
        run.recent_records()
        run.resolve_target()
        calls = _github_calls(tmp, before)
        target = run.target
    finally:
        shutdown(tmp)
        shutil.rmtree(tmp, ignore_errors=True)
    return {"staging_records": staging, "requests": len(calls),
            "calls": dict(Counter(c["call"] for c in calls)),
            "records_examined": len(target.examined) if target else None,
            "target_requests": TARGET_RESOLVE_REQUESTS}


def measure_watch(minutes: float = 10.0) -> dict[str, Any]:
    tmp = Path(tempfile.mkdtemp(prefix="rollback-bench-"))
    used: list[int] = []

    def remember(response: httpx.Response) -> None:
        if "x-ratelimit-used" in response.headers:
            used.append(int(response.headers["x-ratelimit-used"]))

    try:
        _world(tmp, workflow_seconds=minutes * 60)
        run = path_a.start({"env": "staging", "dry_run": False, "sandbox_dir": str(tmp)},
                           screen=RecordingScreen())
        http = run.ctx.backends.http
        http.event_hooks = {**http.event_hooks, "response": [*http.event_hooks["response"], remember]}
        for step in (run.current_state, run.recent_records, run.resolve_target, run.plan,
                     run.dispatch):
            step()
        used_before, calls_before = used[-1], len(read_calls(tmp))
        with contextlib.redirect_stdout(io.StringIO()):  # the watch's progress lines
            report = run.watch()
        polls = _github_calls(tmp, calls_before)
    finally:
        shutdown(tmp)
        shutil.rmtree(tmp, ignore_errors=True)
    return {"workflow_minutes": minutes, "poll_interval_seconds": run.ctx.cfg.poll_interval,
            "conclusion": dict(report.facts).get("conclusion"), "polls": len(polls),
            "free_304_polls": sum(c["status"] == 304 for c in polls),
            "rate_limit_points": used[-1] - used_before, "target_points": TARGET_WATCH_POINTS}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--records", type=int, default=10_000)
    parser.add_argument("--minutes", type=float, default=10.0)
    args = parser.parse_args()
    for name, figures in (("github_resolve", measure_resolve(args.records)),
                          ("github_watch", measure_watch(args.minutes))):
        print(json.dumps(figures, indent=2))
        print(f"written to {write_result(name, figures)}")


if __name__ == "__main__":
    main()
