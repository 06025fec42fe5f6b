"""Time, injected.

Everything that waits asks a :class:`Clock`. Incidents use :class:`RealClock`;
tests use :class:`VirtualClock`, whose ``sleep`` moves time forward at once; drills
use a virtual clock with a speed factor, so a five-minute restore is watchable in
a few seconds. Polling loops wait through a :class:`PollSchedule`, whose polls keep
a fixed rate whatever work is done between them.

Independent reads overlap: :func:`started` runs one in a thread and :meth:`Started.result`
waits for it. On a virtual clock each thread of such work keeps its own *lane*, a
virtual "now" of its own (:func:`lane_now`), so two requests in flight at once cost
the longer of the two, not their sum, whatever order the threads really ran in.
"""

from __future__ import annotations

import contextlib
import math
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Generic, Protocol, TypeVar

T = TypeVar("T")


class Clock(Protocol):
    def now(self) -> float:
        """Seconds since the epoch (UTC)."""

    def sleep(self, seconds: float) -> None: ...


class RealClock:
    def now(self) -> float:
        return time.time()

    def sleep(self, seconds: float) -> None:
        if seconds > 0:
            time.sleep(seconds)


class VirtualClock:
    """A clock whose time moves only when someone sleeps.

    ``speed`` > 0 also sleeps for real, ``seconds / speed``: a drill at speed 60
    shows a one-minute wait as one second. ``speed = 0`` is instant (tests).
    """

    def __init__(self, start: float, speed: float = 0.0) -> None:
        self._now = start
        self.speed = speed

    def now(self) -> float:
        return self._now

    def sleep(self, seconds: float) -> None:
        if seconds <= 0:
            return
        if self.speed > 0:
            time.sleep(seconds / self.speed)
        self._now += seconds

    def advance(self, seconds: float) -> None:
        self._now += seconds


class PollSchedule:
    """Polls at a fixed rate: poll k is due at ``start + k × interval``.

    Work done between two polls (a lease renewal, a record-comment edit, a slow
    read) does not push the later polls back: :meth:`wait` sleeps until the next
    point of the grid. A poll or a write that overran a point skips it, so the
    next poll goes at the following point, never right after the previous poll.
    The moment the schedule is made counts as a poll (the first poll is not waited for).
    """

    # Within a millionth of an interval of a grid point counts as on it (a real clock drifts).
    TOLERANCE = 1e-6

    def __init__(self, clock: Clock, interval: float, *, start: float | None = None) -> None:
        if not (math.isfinite(interval) and interval > 0):
            raise ValueError(f"a poll interval is a finite number of seconds > 0, not {interval!r}")
        self.clock, self.interval = clock, interval
        self.start = clock.now() if start is None else start
        self._last = self._at_or_before(clock.now())  # the grid point of the latest poll

    def _at_or_before(self, moment: float) -> int:
        return math.floor((moment - self.start) / self.interval + self.TOLERANCE)

    def _at_or_after(self, moment: float) -> int:
        return math.ceil((moment - self.start) / self.interval - self.TOLERANCE)

    def next_poll(self) -> float:
        """When the next poll is due: the first grid point after the latest poll, not before now."""
        index = max(self._last + 1, self._at_or_after(self.clock.now()))
        return self.start + index * self.interval

    def wait(self, *, until: float | None = None) -> float:
        """Sleep until the next poll is due (or until ``until``, if that is sooner); when that is."""
        due = self.next_poll() if until is None else min(self.next_poll(), until)
        self.clock.sleep(due - self.clock.now())
        self._last = self._at_or_before(max(due, self.clock.now()))
        return due


def utc_iso(epoch: float) -> str:
    """GitHub's timestamp form: ``2026-06-10T09:14:03Z``."""
    return datetime.fromtimestamp(epoch, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def parse_iso(text: str) -> float:
    return datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()


# -- overlapping work ---------------------------------------------------------------------------
# A lane is a thread's own virtual "now" in one virtual world while work started beside it is in
# flight. Only a clock with a ``lane_key`` (the sandbox world's) keeps lanes, one set per world;
# on any other clock the threads simply overlap.
_LANES: dict[tuple[str, int], float] = {}
_OUTSTANDING: dict[tuple[str, int], int] = {}  # work a thread started and has not waited for
_LANES_LOCK = threading.Lock()


def lane_now(key: str) -> float | None:
    """The calling thread's virtual "now" in the world ``key`` while it overlaps with other
    work, else None (the world's own time holds)."""
    return _LANES.get((key, threading.get_ident()))


def set_lane(key: str, moment: float) -> None:
    """Move the calling thread's lane in the world ``key`` to ``moment`` (a call answered, a
    wait done); a thread without a lane there keeps none."""
    lane = (key, threading.get_ident())
    with _LANES_LOCK:
        if lane in _LANES:
            _LANES[lane] = moment


class Started(Generic[T]):
    """Work running in a thread of its own since :func:`started`; :meth:`result` waits for it
    and returns its value or raises its error, in the thread that asks."""

    def __init__(self, clock: Clock, work: Callable[[], T]) -> None:
        self._work = work
        self._value: T | None = None
        self._error: BaseException | None = None
        self._waited = False
        self._key = str(getattr(clock, "lane_key", "") or "")
        self._parent = (self._key, threading.get_ident())
        self._begun = self._ended = 0.0
        if self._key:
            with _LANES_LOCK:
                self._begun = _LANES.setdefault(self._parent, clock.now())
                _OUTSTANDING[self._parent] = _OUTSTANDING.get(self._parent, 0) + 1
        self._thread = threading.Thread(target=self._run, name="rollback-overlap", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        lane = (self._key, threading.get_ident())
        if self._key:
            with _LANES_LOCK:
                _LANES[lane] = self._begun
        try:
            self._value = self._work()
        except BaseException as exc:  # handed to the thread that waits for it
            self._error = exc
        finally:
            if self._key:
                with _LANES_LOCK:
                    self._ended = _LANES.pop(lane, self._begun)

    def result(self) -> T:
        """Wait for the work; its value, or its error raised here."""
        self._thread.join()
        if self._key and not self._waited:
            self._waited = True
            with _LANES_LOCK:
                left = _OUTSTANDING.get(self._parent, 1) - 1
                if self._parent in _LANES:
                    _LANES[self._parent] = max(_LANES[self._parent], self._ended)
                if left <= 0:  # nothing beside it any more: the world's time holds again
                    _OUTSTANDING.pop(self._parent, None)
                    _LANES.pop(self._parent, None)
                else:
                    _OUTSTANDING[self._parent] = left
        if self._error is not None:
            raise self._error
        return self._value  # type: ignore[return-value]

    def settle(self) -> None:
        """Wait for the work, whatever it gave (a run ending before it used the value)."""
        with contextlib.suppress(Exception):  # the value was not needed, nor is its error
            self.result()


def started(clock: Clock, work: Callable[[], T]) -> Started[T]:
    """Start ``work`` (a read that depends on nothing the caller does next) in a thread."""
    return Started(clock, work)


def together(clock: Clock, first: Callable[[], T], *others: Callable[[], object]
             ) -> tuple[T, list[object]]:
    """Run ``first`` here and ``others`` beside it; every value once all are done (the first
    error raised, after every one has ended)."""
    running = [started(clock, work) for work in others]
    try:
        value = first()
    finally:
        outcomes: list[object] = []
        errors: list[BaseException] = []
        for job in running:
            try:
                outcomes.append(job.result())
            except BaseException as exc:
                errors.append(exc)
    if errors:
        raise errors[0]
    return value, outcomes
