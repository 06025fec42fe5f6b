"""The readiness check: stable means consecutive 200s, on virtual time within grace; bad numbers
are refused before any request; what it shows is redacted."""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator

import httpx
import pytest
from hypothesis import given
from hypothesis import strategies as st

from rollback_helpers.clients.health import HealthResult, check_health, validate_health_check
from rollback_helpers.clock import VirtualClock, parse_iso, utc_iso
from rollback_helpers.errors import ConfigError
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


def always(code: int) -> httpx.Client:
    return httpx.Client(transport=httpx.MockTransport(lambda _: httpx.Response(code)))


def never_healthy(code: int, *, grace: float, interval: float) -> HealthResult:
    """The check of an endpoint that always answers ``code``, on a fresh virtual clock."""
    with always(code) as http:
        return check_health(http, URL, clock=VirtualClock(START), grace=grace, interval=interval,
                            consecutive=1)


# -- one 200 is enough (consecutive=1): the retry mechanics ----------------------------------
def test_healthy_first_time_takes_one_attempt(client_for: ClientFor, clock: VirtualClock) -> None:
    """A 200 on the first GET returns at once: one attempt, no virtual time spent."""
    result, recorder = run(client_for, clock, [httpx.Response(200, text="ok")], consecutive=1)
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
                           grace=60, interval=5, consecutive=1)
    assert result.healthy
    assert result.attempts == 2
    assert recorder.times == [START, START + 5]
    assert result.waited_s == 5 and clock.now() == START + 5


def test_never_healthy_stops_after_the_grace_period(
        client_for: ClientFor, clock: VirtualClock) -> None:
    """Always 503: attempts every interval until the next would pass grace, then give up."""
    result, recorder = run(client_for, clock, [httpx.Response(503, text="down")],
                           grace=60, interval=5, consecutive=1)
    assert not result.healthy and result.status_code == 503
    assert result.attempts == 13  # at 0, 5, …, 60
    assert recorder.times == [START + 5 * i for i in range(13)]
    assert result.waited_s == 60 and result.detail == "down"


@given(grace=st.integers(0, 600), interval=st.integers(1, 120))
def test_attempts_follow_grace_over_interval(grace: int, interval: int) -> None:
    """For any grace and interval: grace // interval + 1 attempts, never waiting past grace."""
    result = never_healthy(503, grace=grace, interval=interval)
    assert result.attempts == grace // interval + 1
    assert result.waited_s <= grace
    assert result.waited_s == (result.attempts - 1) * interval


@given(grace=st.floats(0, 300), interval=st.floats(0.1, 60))
def test_fractional_grace_and_interval_stay_within_grace(grace: float, interval: float) -> None:
    """With fractional values the count is about grace/interval + 1 and the wait stays ≤ grace."""
    result = never_healthy(500, grace=grace, interval=interval)
    assert abs(result.attempts - (math.floor(grace / interval) + 1)) <= 1
    assert result.waited_s <= grace + 1e-6


def test_connection_error_gives_no_status_and_a_detail(
        client_for: ClientFor, clock: VirtualClock) -> None:
    """Nobody answering is status None, with the error named in the detail, retried until grace."""
    result, _ = run(client_for, clock, [httpx.ConnectError("connection refused")],
                    grace=10, interval=5, consecutive=1)
    assert result.status_code is None and not result.healthy
    assert result.detail == "ConnectError: connection refused"
    assert result.attempts == 3 and result.pattern == "err err err"


def test_connection_error_then_200_recovers(client_for: ClientFor, clock: VirtualClock) -> None:
    """A connection error is retried like any unhealthy answer."""
    result, _ = run(client_for, clock,
                    [httpx.ConnectError("refused"), httpx.Response(200, text="ok")],
                    grace=30, interval=3, consecutive=1)
    assert result.healthy and result.attempts == 2 and result.waited_s == 3


# -- healthy means stable: consecutive 200s (3 by default) -----------------------------------
def test_default_needs_three_consecutive_200s_one_interval_apart(
        client_for: ClientFor, clock: VirtualClock) -> None:
    """By default a 200 must be seen three times in a row, 5 s apart, before it counts."""
    result, recorder = run(client_for, clock, [httpx.Response(200, text="ok")])
    assert result.healthy and (result.required, result.streak) == (3, 3)
    assert recorder.times == [START, START + 5, START + 10]
    assert result.pattern == "200 200 200" and not result.flapping
    assert result.summary == "stable: 3 consecutive 200s after 3 attempt(s) (200 200 200)"


def test_flapping_endpoint_fails_and_shows_its_pattern(
        client_for: ClientFor, clock: VirtualClock) -> None:
    """503, 200, 503, 200 … never gives three 200s in a row: not healthy, and it says so."""
    flapping = [httpx.Response(503, text="db down"), httpx.Response(200, text="ok")] * 20
    result, recorder = run(client_for, clock, flapping, grace=30, interval=5)
    assert not result.healthy and result.flapping
    assert result.pattern == "503 200 503 200 503"  # at 0…20 s; at 25 s three 200s cannot fit
    assert result.detail == "db down"  # the last failure, not the last 200's body
    assert result.summary == (
        "flapping: needed 3 consecutive 200s within 20s, saw 503 200 503 200 503")
    assert len(recorder.times) == result.attempts == 5


def test_a_flap_resets_the_count(client_for: ClientFor, clock: VirtualClock) -> None:
    """200 200 503 200 200 200: the 503 starts the count again; healthy after the sixth."""
    answers = [httpx.Response(c) for c in (200, 200, 503, 200, 200, 200)]
    result, recorder = run(client_for, clock, answers, grace=60, interval=5)
    assert result.healthy and result.attempts == 6 and result.flapping
    assert result.pattern == "200 200 503 200 200 200"


def test_long_runs_are_shown_compactly(client_for: ClientFor, clock: VirtualClock) -> None:
    """A long wait shows as counted runs: 503×8 200 200 200."""
    answers = [httpx.Response(503)] * 8 + [httpx.Response(200)]
    result, _ = run(client_for, clock, answers, grace=60, interval=5)
    assert result.healthy and result.pattern == "503×8 200 200 200"


def test_stops_as_soon_as_enough_200s_can_no_longer_fit(
        client_for: ClientFor, clock: VirtualClock) -> None:
    """Always 503, grace 60, 3 needed 5 s apart: after the attempt at 50 s it gives up."""
    result, recorder = run(client_for, clock, [httpx.Response(503)], grace=60, interval=5)
    assert not result.healthy and not result.flapping
    assert recorder.times[-1] == START + 50 and result.attempts == 11


ANSWERS = st.lists(st.sampled_from([200, 200, 503, None]), min_size=1, max_size=30)


@given(answers=ANSWERS, consecutive=st.integers(1, 5), interval=st.integers(1, 10),
       extra=st.integers(0, 60))
def test_healthy_exactly_when_enough_200s_in_a_row_fit_in_grace(
        answers: list[int | None], consecutive: int, interval: int, extra: int) -> None:
    """Healthy iff some run of `consecutive` 200s ends at an attempt within grace; it stops there."""
    grace = (consecutive - 1) * interval + extra
    clock = VirtualClock(START)

    def handler(request: httpx.Request) -> httpx.Response:
        code = answers[min(int((clock.now() - START) / interval), len(answers) - 1)]
        if code is None:
            raise httpx.ConnectError("refused")
        return httpx.Response(code)

    with httpx.Client(transport=httpx.MockTransport(handler)) as http:
        result = check_health(http, URL, clock=clock, grace=grace, interval=interval,
                              consecutive=consecutive)
    seen = [answers[min(k, len(answers) - 1)] for k in range(grace // interval + 1)]
    ends = [k for k in range(consecutive - 1, len(seen))
            if all(code == 200 for code in seen[k - consecutive + 1:k + 1])]
    assert result.healthy == bool(ends)
    if ends:
        assert result.attempts == ends[0] + 1
    assert list(result.statuses) == seen[:result.attempts]
    assert result.waited_s <= grace


# -- bad numbers never start a loop ------------------------------------------------------------
@pytest.mark.parametrize("kwargs, named", [
    ({"interval": 0}, "interval"), ({"interval": -5}, "interval"),
    ({"interval": math.nan}, "interval"), ({"interval": math.inf}, "interval"),
    ({"grace": math.nan}, "grace"), ({"grace": math.inf}, "grace"), ({"grace": -1}, "grace"),
    ({"consecutive": 0}, "consecutive"), ({"consecutive": -2}, "consecutive"),
    ({"consecutive": True}, "consecutive"), ({"consecutive": 2.5}, "consecutive"),
    ({"timeout": 0}, "timeout"), ({"timeout": math.nan}, "timeout"),
    ({"grace": 5, "interval": 5, "consecutive": 3}, "cannot hold 3 consecutive 200s"),
    ({"grace": 1e9, "interval": 1e-3}, "more than 10000 times"),
])
def test_unusable_numbers_are_bad_input_before_any_request(
        client_for: ClientFor, clock: VirtualClock, kwargs: dict[str, float], named: str) -> None:
    """NaN, infinity, zero or a window too short is a ConfigError (exit 2) naming the setting."""
    recorder = Recorder(clock, [httpx.Response(200)])
    with pytest.raises(ConfigError) as err:
        check_health(client_for(recorder), URL, clock=clock, **kwargs)  # type: ignore[arg-type]
    assert named in str(err.value) and err.value.exit_code == 2
    assert recorder.times == []
    with pytest.raises(ConfigError):
        validate_health_check(**kwargs)  # type: ignore[arg-type]


class FrozenClock:
    """A clock whose time never moves, as a broken or mocked clock might behave."""

    def now(self) -> float:
        return START

    def sleep(self, seconds: float) -> None:
        pass


def test_a_clock_that_stands_still_cannot_make_it_loop_forever() -> None:
    """Even if time never passes, the number of attempts is bounded by grace / interval."""
    with always(503) as http:
        result = check_health(http, URL, clock=FrozenClock(), grace=60, interval=5)
    assert not result.healthy and result.attempts <= 60 // 5 + 2


def test_a_result_built_by_hand_keeps_its_old_meaning() -> None:
    """A HealthResult without statuses (built the old way) is healthy when its code is 200."""
    assert HealthResult(URL, 200, 1.0, 1, 0.0, "ok").healthy
    assert not HealthResult(URL, 503, 1.0, 1, 0.0, "down").healthy


# -- what it shows ------------------------------------------------------------------------------
def test_answer_detail_is_redacted(client_for: ClientFor, clock: VirtualClock) -> None:
    """An answer that prints a database URL with its password shows the password as ****."""
    body = "db check failed: postgresql://app-user:leaky-pw-1234@db.internal:5432/fly-db"
    result, _ = run(client_for, clock, [httpx.Response(503, text=body)], grace=0, consecutive=1)
    assert "leaky-pw-1234" not in result.detail
    assert f"postgresql://app-user:{MASK}@db.internal:5432/fly-db" in result.detail


def test_error_detail_is_redacted(client_for: ClientFor, clock: VirtualClock) -> None:
    """A transport error whose text holds a password is redacted too."""
    result, _ = run(client_for, clock,
                    [httpx.ConnectError("cannot reach postgres://u:err-pw-5678@h/db")], grace=0,
                    consecutive=1)
    assert "err-pw-5678" not in result.detail and MASK in result.detail


def test_detail_is_a_short_excerpt(client_for: ClientFor, clock: VirtualClock) -> None:
    """Only the first 200 characters of a long answer are kept."""
    result, _ = run(client_for, clock, [httpx.Response(503, text="x" * 5000)], grace=0,
                    consecutive=1)
    assert result.detail == "x" * 200


def test_password_cut_by_the_excerpt_is_not_shown(
        client_for: ClientFor, clock: VirtualClock) -> None:
    """A password straddling the 200-character cut does not leak its first characters."""
    body = "x" * 170 + "postgresql://app:hunter2hunter2@db.internal/x"
    result, _ = run(client_for, clock, [httpx.Response(503, text=body)], grace=0, consecutive=1)
    assert "hunter2" not in result.detail


def test_redirects_are_followed(client_for: ClientFor, clock: VirtualClock) -> None:
    """A redirect to the real endpoint is followed, and its 200 counts."""
    def handler(request: httpx.Request) -> httpx.Response:
        if request.url.path == "/ready":
            return httpx.Response(200, text="ok")
        return httpx.Response(307, headers={"Location": "/ready"})

    result = check_health(client_for(handler), URL, clock=clock)
    assert result.healthy and result.attempts == 3


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
