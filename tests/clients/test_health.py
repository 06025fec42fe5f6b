"""The readiness check: retries on virtual time, stops after grace, redacts what it shows."""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator

import httpx
import pytest
from hypothesis import given
from hypothesis import strategies as st

from rollback_helpers.clients.health import HealthResult, check_health
from rollback_helpers.clock import VirtualClock, parse_iso, utc_iso
from rollback_helpers.secrets import MASK

URL = "https://renewa-one-staging.fly.dev/api/health/ready"
START = 1_780_000_000.0

Handler = Callable[[httpx.Request], httpx.Response]
ClientFor = Callable[[Handler], httpx.Client]


class Recorder:
    """Answers from a list of responses (the last one repeats), noting the virtual time of each."""

    def __init__(self, clock: VirtualClock, answers: list[httpx.Response | Exception]) -> None:
        self.clock = clock
        self.answers = answers
        self.times: list[float] = []
        self.urls: list[str] = []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.times.append(self.clock.now())
        self.urls.append(str(request.url))
        answer = self.answers[min(len(self.times), len(self.answers)) - 1]
        if isinstance(answer, Exception):
            raise answer
        return answer


@pytest.fixture
def clock() -> VirtualClock:
    return VirtualClock(START)


@pytest.fixture
def client_for() -> Iterator[ClientFor]:
    opened: list[httpx.Client] = []

    def make(handler: Handler) -> httpx.Client:
        client = httpx.Client(transport=httpx.MockTransport(handler))
        opened.append(client)
        return client

    yield make
    for client in opened:
        client.close()


def run(client_for: ClientFor, clock: VirtualClock, answers: list[httpx.Response | Exception],
        **kwargs: float) -> tuple[HealthResult, Recorder]:
    recorder = Recorder(clock, answers)
    return check_health(client_for(recorder), URL, clock=clock, **kwargs), recorder


def test_healthy_first_time_takes_one_attempt(client_for: ClientFor, clock: VirtualClock) -> None:
    """A 200 on the first GET returns at once: one attempt, no virtual time spent."""
    result, recorder = run(client_for, clock, [httpx.Response(200, text="ok")])
    assert result.healthy and result.status_code == 200
    assert (result.attempts, result.waited_s) == (1, 0)
    assert clock.now() == START
    assert recorder.urls == [URL]
    assert result.url == URL and result.detail == "ok"
    assert result.latency_ms >= 0


def test_503_then_200_retries_after_one_interval(
        client_for: ClientFor, clock: VirtualClock) -> None:
    """A 503 is retried after exactly one interval of virtual time, then 200 ends the wait."""
    result, recorder = run(client_for, clock,
                           [httpx.Response(503, text="starting"), httpx.Response(200, text="ok")],
                           grace=60, interval=5)
    assert result.healthy
    assert result.attempts == 2
    assert recorder.times == [START, START + 5]
    assert result.waited_s == 5 and clock.now() == START + 5


def test_never_healthy_stops_after_the_grace_period(
        client_for: ClientFor, clock: VirtualClock) -> None:
    """Always 503: attempts every interval until the next would pass grace, then give up."""
    result, recorder = run(client_for, clock, [httpx.Response(503, text="down")],
                           grace=60, interval=5)
    assert not result.healthy and result.status_code == 503
    assert result.attempts == 13  # at 0, 5, …, 60
    assert recorder.times == [START + 5 * i for i in range(13)]
    assert result.waited_s == 60 and result.detail == "down"


@given(grace=st.integers(0, 600), interval=st.integers(1, 120))
def test_attempts_follow_grace_over_interval(grace: int, interval: int) -> None:
    """For any grace and interval: grace // interval + 1 attempts, never waiting past grace."""
    clock = VirtualClock(START)
    with httpx.Client(transport=httpx.MockTransport(lambda _: httpx.Response(503))) as http:
        result = check_health(http, URL, clock=clock, grace=grace, interval=interval)
    assert result.attempts == grace // interval + 1
    assert result.waited_s <= grace
    assert result.waited_s == (result.attempts - 1) * interval


@given(grace=st.floats(0, 300), interval=st.floats(0.1, 60))
def test_fractional_grace_and_interval_stay_within_grace(grace: float, interval: float) -> None:
    """With fractional values the count is about grace/interval + 1 and the wait stays ≤ grace."""
    clock = VirtualClock(START)
    with httpx.Client(transport=httpx.MockTransport(lambda _: httpx.Response(500))) as http:
        result = check_health(http, URL, clock=clock, grace=grace, interval=interval)
    assert abs(result.attempts - (math.floor(grace / interval) + 1)) <= 1
    assert result.waited_s <= grace + 1e-6


def test_connection_error_gives_no_status_and_a_detail(
        client_for: ClientFor, clock: VirtualClock) -> None:
    """Nobody answering is status None, with the error named in the detail, retried until grace."""
    result, _ = run(client_for, clock, [httpx.ConnectError("connection refused")],
                    grace=10, interval=5)
    assert result.status_code is None and not result.healthy
    assert result.detail == "ConnectError: connection refused"
    assert result.attempts == 3


def test_connection_error_then_200_recovers(client_for: ClientFor, clock: VirtualClock) -> None:
    """A connection error is retried like any unhealthy answer."""
    result, _ = run(client_for, clock,
                    [httpx.ConnectError("refused"), httpx.Response(200, text="ok")],
                    grace=30, interval=3)
    assert result.healthy and result.attempts == 2 and result.waited_s == 3


def test_answer_detail_is_redacted(client_for: ClientFor, clock: VirtualClock) -> None:
    """An answer that prints a database URL with its password shows the password as ****."""
    body = "db check failed: postgresql://app-user:leaky-pw-1234@db.internal:5432/fly-db"
    result, _ = run(client_for, clock, [httpx.Response(503, text=body)], grace=0)
    assert "leaky-pw-1234" not in result.detail
    assert f"postgresql://app-user:{MASK}@db.internal:5432/fly-db" in result.detail


def test_error_detail_is_redacted(client_for: ClientFor, clock: VirtualClock) -> None:
    """A transport error whose text holds a password is redacted too."""
    result, _ = run(client_for, clock,
                    [httpx.ConnectError("cannot reach postgres://u:err-pw-5678@h/db")], grace=0)
    assert "err-pw-5678" not in result.detail and MASK in result.detail


def test_detail_is_a_short_excerpt(client_for: ClientFor, clock: VirtualClock) -> None:
    """Only the first 200 characters of a long answer are kept."""
    result, _ = run(client_for, clock, [httpx.Response(503, text="x" * 5000)], grace=0)
    assert result.detail == "x" * 200


def test_password_cut_by_the_excerpt_is_not_shown(
        client_for: ClientFor, clock: VirtualClock) -> None:
    """A password straddling the 200-character cut does not leak its first characters."""
    body = "x" * 170 + "postgresql://app:hunter2hunter2@db.internal/x"
    result, _ = run(client_for, clock, [httpx.Response(503, text=body)], grace=0)
    assert "hunter2" not in result.detail


def test_redirects_are_followed(client_for: ClientFor, clock: VirtualClock) -> None:
    """A redirect to the real endpoint is followed, and its 200 counts."""
    def handler(request: httpx.Request) -> httpx.Response:
        if request.url.path == "/ready":
            return httpx.Response(200, text="ok")
        return httpx.Response(307, headers={"Location": "/ready"})

    result = check_health(client_for(handler), URL, clock=clock)
    assert result.healthy and result.attempts == 1


# -- the virtual clock the check waits on -------------------------------------------------------
def test_virtual_clock_moves_only_when_slept_or_advanced() -> None:
    """Virtual time stands still until sleep or advance moves it; negative sleeps do nothing."""
    clock = VirtualClock(100.0)
    assert clock.now() == 100.0
    clock.sleep(2.5)
    clock.sleep(-4)
    clock.sleep(0)
    clock.advance(1)
    assert clock.now() == 103.5


def test_utc_iso_round_trips_through_parse_iso() -> None:
    """GitHub's timestamp form prints and parses back to the same second."""
    assert utc_iso(START) == "2026-05-28T20:26:40Z"
    assert parse_iso(utc_iso(START)) == START
