"""How long each seam of the world takes to answer, spent on the world's virtual clock.

A scenario's ``[latency]`` table (or a drill's ``--latency github=0.25,flyctl=1.5``)
gives seconds per call for each seam: ``github`` per REST request, ``flyctl`` per
command, ``health`` per readiness request and ``metrics`` per Prometheus query.
The world keeps them in ``state["latency"]``; none given costs nothing.

A call starts at its caller's "now" — the lane of a thread that overlaps with other
work (:func:`rollback_helpers.clock.lane_now`), else the world's time — and ends
``latency`` seconds later; the world's time becomes the latest end any caller has
reached. So two requests in flight at once cost the longer of the two, not their
sum, in whatever order the threads really ran, and the runbook's critical path can
be measured without a network. The call log gives each such call its ``span``
(virtual start and end), from which the benchmark counts the serial requests.
"""

from __future__ import annotations

import math
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager

from rollback_helpers.clock import lane_now, set_lane
from rollback_helpers.sandbox.core.world import World, call_span

SEAMS = ("github", "flyctl", "health", "metrics")
MAX_LATENCY = 600.0


def checked_latency(latency: Mapping[str, object]) -> dict[str, float]:
    """Seconds per seam, each checked; ValueError naming an unknown seam or a bad number."""
    unknown = sorted(set(latency) - set(SEAMS))
    if unknown:
        raise ValueError(f"unknown seam(s) {', '.join(unknown)}: the seams are {', '.join(SEAMS)}")
    return {seam: checked_seconds(seam, value) for seam, value in latency.items()}


def checked_seconds(seam: str, value: object) -> float:
    """``value`` as seconds for ``seam``: a finite number from 0 to 600, else ValueError."""
    try:
        seconds = float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        raise ValueError(f"the latency of {seam} must be a number of seconds, not {value!r}"
                         ) from None
    if not (math.isfinite(seconds) and 0 <= seconds <= MAX_LATENCY):
        raise ValueError(f"the latency of {seam} must be 0 to {MAX_LATENCY:.0f} seconds, "
                         f"not {value!r}")
    return seconds


def set_latency(world: World, latency: Mapping[str, float]) -> None:
    """Give ``world``'s seams these latencies (the others keep theirs)."""
    with world.transaction():
        world.state["latency"] = {**world.state.get("latency", {}), **latency}


def latency_of(world: World, seam: str) -> float:
    return float(world.state.get("latency", {}).get(seam, 0.0))


@contextmanager
def spent(world: World, seam: str) -> Iterator[None]:
    """Spend ``seam``'s latency, then let the call be answered (logged with its span)."""
    seconds = latency_of(world, seam)  # fixed when the world is built: no transaction to read it
    if seconds <= 0:
        yield
        return
    key = world.lane_key
    lane = lane_now(key)
    with world.transaction():
        start = world.now if lane is None else lane
        speed = float(world.state.get("speed", 0))
    end = start + seconds
    if speed > 0:
        time.sleep(seconds / speed)  # outside the world's lock: calls in flight overlap for real
    with world.transaction():
        world.state["now"] = max(world.now, end)
        world.advance()
    set_lane(key, end)
    with call_span(start, end):
        yield
