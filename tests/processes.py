"""Processes the tests start or inspect: who is below whom, who is still running, waiting
for them to end. Waits are event-driven (a pidfd per process), never a sleep loop."""

from __future__ import annotations

import contextlib
import os
import select
import signal
import time
from collections.abc import Iterable

import psutil


def descendants(pid: int) -> set[int]:
    """Every process below ``pid``, whatever session it moved to."""
    try:
        return {child.pid for child in psutil.Process(pid).children(recursive=True)}
    except psutil.NoSuchProcess:
        return set()


def children(pid: int) -> set[int]:
    """The processes directly below ``pid``."""
    try:
        return {child.pid for child in psutil.Process(pid).children()}
    except psutil.NoSuchProcess:
        return set()


def alive(pid: int) -> bool:
    """Running: a zombie has exited and only waits for its parent to reap it."""
    try:
        return psutil.Process(pid).status() not in (psutil.STATUS_ZOMBIE, psutil.STATUS_DEAD)
    except psutil.NoSuchProcess:
        return False


def kill(pids: Iterable[int], sig: int = signal.SIGKILL) -> None:
    """Signal each process; one that has already gone is fine (it may have followed its
    parent out)."""
    for pid in pids:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, sig)


def wait_gone(pids: Iterable[int], timeout: float) -> set[int]:
    """Wait until every process has ended, or ``timeout`` seconds; returns those still running.

    A pidfd becomes readable when its process terminates, zombie or not, child of ours or not.
    """
    fds: dict[int, int] = {}
    for pid in pids:
        with contextlib.suppress(ProcessLookupError):
            fds[os.pidfd_open(pid)] = pid
    deadline = time.monotonic() + timeout
    try:
        while fds and (left := deadline - time.monotonic()) > 0:
            ready, _, _ = select.select(list(fds), [], [], left)
            for fd in ready:
                os.close(fd)
                del fds[fd]
        return set(fds.values())
    finally:
        for fd in fds:
            os.close(fd)
