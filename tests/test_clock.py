"""PollSchedule: polls at a fixed rate from its start, whatever is done between them."""

from __future__ import annotations

import pytest
from clocks import RecordingClock

from rollback_helpers.clock import PollSchedule, VirtualClock


def test_a_write_between_polls_does_not_move_the_next_poll_off_the_grid() -> None:
    """A 2 s write after each poll: the polls stay at 0, 3, 6, 9 (a fixed delay gives 0, 5, 10)."""
    clock = RecordingClock(1000.0)
    schedule = PollSchedule(clock, 3.0)
    polls = [clock.now()]
    for _ in range(3):
        clock.advance(2.0)  # a lease renewal: two spaced requests
        polls.append(schedule.wait())
        assert clock.now() == polls[-1]
    assert [p - 1000.0 for p in polls] == [0.0, 3.0, 6.0, 9.0]
    assert clock.sleeps == [1.0, 1.0, 1.0]


def test_an_overrun_skips_to_the_next_grid_point_never_back_to_back() -> None:
    """Work from 3 s to 7 s overran the point at 6: the next poll is at 9, not at 7."""
    clock = RecordingClock(0.0)
    schedule = PollSchedule(clock, 3.0)
    clock.advance(3.0)
    assert schedule.wait() == 3.0
    clock.advance(4.0)
    assert schedule.wait() == 9.0 and clock.now() == 9.0
    assert schedule.wait() == 12.0  # nothing done since the poll at 9: a full interval, not 0


def test_work_that_ends_on_a_grid_point_polls_at_once() -> None:
    """A 45 s read from 3 s ends on the point at 48: that poll is due now, no sleep."""
    clock = RecordingClock(0.0)
    schedule = PollSchedule(clock, 3.0)
    clock.advance(3.0)
    schedule.wait()
    clock.advance(45.0)
    sleeps_before = list(clock.sleeps)
    assert schedule.wait() == 48.0 and clock.sleeps == sleeps_before


def test_the_grid_is_anchored_at_the_start_given_not_at_the_first_poll() -> None:
    """Started 2 s after the restore (a lock note first): polls at 3, 6, … after the restore."""
    clock = RecordingClock(102.0)
    schedule = PollSchedule(clock, 3.0, start=100.0)
    assert schedule.next_poll() == 103.0
    assert [schedule.wait() - 100.0 for _ in range(3)] == [3.0, 6.0, 9.0]


def test_a_deadline_before_the_next_point_is_waited_for_instead() -> None:
    clock = RecordingClock(0.0)
    schedule = PollSchedule(clock, 3.0)
    assert schedule.wait(until=1.5) == 1.5 and clock.now() == 1.5
    assert schedule.wait(until=10.0) == 3.0


def test_a_real_clocks_rounding_counts_as_on_the_grid() -> None:
    """A moment a hair before or after a point (float sums) is that point, not the next one."""
    start = 1_780_000_000.123
    clock = RecordingClock(start)
    schedule = PollSchedule(clock, 3.0)
    clock.advance(5.999_999_999)
    assert schedule.wait() == pytest.approx(start + 6.0)
    clock.advance(3.000_000_001)
    assert schedule.wait() == pytest.approx(start + 9.0)
    assert clock.now() == pytest.approx(start + 9.0)


@pytest.mark.parametrize("interval", [0.0, -3.0, float("inf"), float("nan")])
def test_an_unusable_interval_is_refused(interval: float) -> None:
    with pytest.raises(ValueError, match="finite number of seconds > 0"):
        PollSchedule(VirtualClock(0.0), interval)


def test_together_returns_every_value_and_raises_the_first_error_once_all_ended() -> None:
    from rollback_helpers.clock import together

    clock = VirtualClock(0.0)
    ended: list[str] = []

    def slow() -> str:
        ended.append("slow")
        return "b"

    assert together(clock, lambda: "a", slow, lambda: 3) == ("a", ["b", 3])

    def broken() -> None:
        raise ValueError("no answer")

    with pytest.raises(ValueError, match="no answer"):
        together(clock, lambda: "a", broken, slow)
    assert ended == ["slow", "slow"]  # the other work was waited for


def test_work_started_on_a_clock_without_lanes_leaves_none() -> None:
    from rollback_helpers.clock import lane_now, started

    read = started(VirtualClock(5.0), lambda: 42)
    assert read.result() == 42 and read.result() == 42
    assert lane_now("") is None
