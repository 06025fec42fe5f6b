"""What a headless run's first steps read, started at once, beside the environment's lock.

Headless, the notebook's cells run back to back, so what runs on Fly now and the
newest deployment records do not wait for the lock, nor for each other: both reads
start when the run opens (on the real backend, a thread each; on the sandbox, each
on a lane of the virtual clock) and the steps that need them wait for them. A
person in JupyterLab may run the steps minutes apart, so an interactive run reads
each when its step runs. Every result is used only once the lock is held: a read
made while it was being taken could only be outdated by a run holding the lock,
which would have made taking it fail.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Generic, Protocol, TypeVar

from rollback_helpers.clients.fly import AppStatus
from rollback_helpers.clock import Clock, Started, started
from rollback_helpers.domain.parameters import AnyParameters
from rollback_helpers.run.context import RunContext, open_run
from rollback_helpers.ui.interactive import Screen

T = TypeVar("T")


class Reading(Protocol):
    """A path's run object whose first reads may be under way (``reads``)."""

    @property
    def reads(self) -> Settles: ...


class Settles(Protocol):
    def settle(self) -> None: ...


R = TypeVar("R", bound=Reading)


def open_reading(params: AnyParameters, screen: Screen | None,
                 make: Callable[[RunContext], R]) -> R:
    """:func:`open_run`, with the path's object made as the run opens, so that its first
    reads overlap with taking the lock (waited for if the lock is refused)."""
    made: list[R] = []

    def beside(ctx: RunContext) -> Callable[[], None]:
        made.append(make(ctx))
        return made[0].reads.settle

    open_run(params, screen=screen, beside=beside)
    return made[0]


class FirstReads:
    """The first read of what runs now and of the newest records, under way or done."""

    def __init__(self, clock: Clock, status: Callable[[], AppStatus], records: Iterable[object],
                 *, ahead: bool) -> None:
        self._status = ReadAhead(clock, status, ahead=ahead)
        # interactive: no read ahead; the records are read where they are used
        self._records = ReadAhead(clock, lambda: next(iter(records), None), ahead=True) \
            if ahead else None

    def status(self) -> AppStatus:
        """What Fly runs now: the read started with the run the first time, then a fresh one."""
        return self._status.result()

    def records(self) -> None:
        """The newest records' first page is in (its error, if it failed, raised here)."""
        read, self._records = self._records, None
        if read is not None:
            read.result()

    def settle(self) -> None:
        """Wait for the reads still under way, whatever they gave (a run that ended first)."""
        self._status.settle()
        if self._records is not None:
            self._records.settle()


class ReadAhead(Generic[T]):
    """One read: started at once (``ahead``, a headless run), else made when first asked for."""

    def __init__(self, clock: Clock, read: Callable[[], T], *, ahead: bool) -> None:
        self._read = read
        self._started: Started[T] | None = started(clock, read) if ahead else None

    def result(self) -> T:
        """The read started ahead (its error raised here), or one made now."""
        under_way, self._started = self._started, None
        return under_way.result() if under_way is not None else self._read()

    def settle(self) -> None:
        """Wait for a read still under way, whatever it gave (a run that ended first)."""
        under_way, self._started = self._started, None
        if under_way is not None:
            under_way.settle()
