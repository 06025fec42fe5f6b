"""Path A's critical path at 250 ms per GitHub request and 1.5 s per flyctl command (virtual):
the first reads beside the lock, the in-flight guard's listing beside the record comment."""

from __future__ import annotations

import contextlib
import io
from pathlib import Path
from typing import Any

import pytest

from rollback_helpers.clock import lane_now
from rollback_helpers.errors import LockHeld
from rollback_helpers.runbook import path_a
from rollback_helpers.sandbox.core.world import read_calls
from rollback_helpers.sandbox.scenarios import create_world
from rollback_helpers.ui.interactive import RecordingScreen

LATENCY = {"github": 0.25, "flyctl": 1.5}
PARAMS = {"env": "staging", "dry_run": False}


def serial(calls: list[dict[str, Any]]) -> int:
    """The longest chain of calls each starting once the previous one ended."""
    chain, free_at = 0, float("-inf")
    for call in sorted(calls, key=lambda c: (c["span"][1], c["span"][0])):
        if call["span"][0] >= free_at:
            chain, free_at = chain + 1, call["span"][1]
    return chain


def up_to_dispatch(tmp_path: Path, **params: Any) -> tuple[path_a.PathA, float]:
    began = create_world("default", tmp_path, latency=LATENCY).now
    run = path_a.start({**PARAMS, "sandbox_dir": str(tmp_path), **params}, screen=RecordingScreen())
    with contextlib.redirect_stdout(io.StringIO()):
        for step in (run.preflight, run.current_state, run.recent_records, run.resolve_target,
                     run.plan, run.dispatch):
            step()
    return run, began


def test_a_live_run_dispatches_within_two_and_a_half_seconds_of_round_trips(
        tmp_path: Path) -> None:
    run, began = up_to_dispatch(tmp_path)
    assert run.promotion.run is not None
    calls = read_calls(tmp_path)
    dispatch = next(i for i, c in enumerate(calls) if c["call"].endswith("/dispatches"))
    before = [c for c in calls[:dispatch] if c["seam"] == "github"]
    assert calls[dispatch]["span"][1] - began <= 2.5
    assert serial(before) <= 5 < len(before)  # more requests than round trips: they overlap
    # every read and write of before still happens, and the lock is held before the dispatch
    assert sum("/git/refs" in c["call"] for c in before) == 1
    assert sum(c["call"].endswith("/runs") for c in before) == 1
    assert sum(c["call"].startswith("POST") and c["call"].endswith("/comments") for c in before) == 1
    assert lane_now(run.ctx.backends.clock.lane_key) is None  # type: ignore[attr-defined]


def test_an_interactive_run_reads_nothing_ahead(tmp_path: Path) -> None:
    create_world("default", tmp_path, latency=LATENCY)
    path_a.start({"env": "staging", "interactive": True, "sandbox_dir": str(tmp_path)},
                 screen=RecordingScreen())
    assert not any(c["seam"] == "flyctl" or c["call"].endswith("/issues")
                   for c in read_calls(tmp_path))


def test_a_refused_lock_waits_for_the_reads_started_beside_it(tmp_path: Path) -> None:
    create_world("default", tmp_path, latency=LATENCY)
    first = path_a.start({**PARAMS, "sandbox_dir": str(tmp_path), "run_id": "first"},
                         screen=RecordingScreen())
    first.reads.settle()  # that run holds the lock and goes no further
    with pytest.raises(LockHeld):
        path_a.start({**PARAMS, "sandbox_dir": str(tmp_path), "run_id": "second"},
                     screen=RecordingScreen())
    assert lane_now(str(tmp_path.resolve())) is None  # nothing left running beside this thread
    assert sum(c["seam"] == "flyctl" for c in read_calls(tmp_path)) == 2


def test_a_listing_of_runs_in_flight_made_long_before_the_dispatch_is_made_again(
        tmp_path: Path) -> None:
    began = create_world("default", tmp_path, latency=LATENCY).now
    run = path_a.start({**PARAMS, "sandbox_dir": str(tmp_path)}, screen=RecordingScreen())
    with contextlib.redirect_stdout(io.StringIO()):
        for step in (run.current_state, run.recent_records, run.resolve_target, run.plan):
            step()
        run.ctx.backends.clock.sleep(60.0)  # e.g. waiting for a second person's approval
        run.dispatch()
    listings = [c["span"][0] - began for c in read_calls(tmp_path) if c["call"].endswith("/runs")]
    assert len(listings) == 2 and listings[1] - listings[0] >= 60.0
