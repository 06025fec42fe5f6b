"""The app's readiness endpoint: ``GET https://<app>.fly.dev/api/health/ready``.

Healthy means stable: ``consecutive`` answers of 200 in a row (3 by default),
``interval`` seconds apart, all within ``grace`` seconds of the first attempt. A
flapping endpoint (``503 200 503 200``) is not healthy, and the result keeps
every answer it saw so the report can show the pattern. The numbers are checked
before the first request, so a NaN, a zero or an infinity can never turn the
wait into a runaway loop.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass

import httpx

from rollback_helpers.clock import Clock
from rollback_helpers.errors import ConfigError
from rollback_helpers.secrets import redact

DEFAULT_GRACE = 60.0
DEFAULT_INTERVAL = 5.0
DEFAULT_CONSECUTIVE = 3
MAX_ATTEMPTS = 10_000  # grace / interval above this is a typo, not a plan
NO_ANSWER = "err"  # how an attempt that got no HTTP answer shows in the pattern


@dataclass(frozen=True)
class HealthResult:
    url: str
    status_code: int | None  # of the last attempt; None: never answered
    latency_ms: float        # of the last attempt
    attempts: int
    waited_s: float          # virtual or real time spent retrying
    detail: str              # a short, redacted excerpt of the last answer (of the last non-200
                             # one when not healthy)
    required: int = 1        # consecutive 200s needed
    streak: int = 0          # consecutive 200s at the end
    statuses: tuple[int | None, ...] = ()  # every answer in order (None: no answer)

    @property
    def healthy(self) -> bool:
        """``required`` 200s in a row at the end (for a result without statuses: the last was 200)."""
        if not self.statuses:
            return self.status_code == 200
        return self.streak >= self.required

    @property
    def flapping(self) -> bool:
        """A 200 was followed by something else: the endpoint answered, then stopped."""
        pairs = zip(self.statuses, self.statuses[1:], strict=False)
        return any(a == 200 and b != 200 for a, b in pairs)

    @property
    def pattern(self) -> str:
        """The answers in order, e.g. ``503 200 503 200``; runs of 4 or more as ``503×12``."""
        words: list[str] = []
        run: list[str] = []
        for status in self.statuses:
            word = NO_ANSWER if status is None else str(status)
            if run and run[-1] != word:
                words += _runs(run)
                run = []
            run.append(word)
        return " ".join(words + _runs(run))

    @property
    def summary(self) -> str:
        """One line for a report: the verdict, what it needed and what it saw."""
        needed = f"{self.required} consecutive 200s"
        if self.healthy:
            return f"stable: {needed} after {self.attempts} attempt(s) ({self.pattern})"
        what = "flapping" if self.flapping else "not healthy"
        return (f"{what}: needed {needed} within {self.waited_s:g}s, "
                f"saw {self.pattern or 'no answer'}")


def _runs(run: list[str]) -> list[str]:
    return [f"{run[0]}×{len(run)}"] if len(run) >= 4 else run


def validate_health_check(*, grace: float = DEFAULT_GRACE, interval: float = DEFAULT_INTERVAL,
                          consecutive: int = DEFAULT_CONSECUTIVE, timeout: float = 10.0) -> None:
    """Raise ConfigError unless these health-check numbers make a finite, passable wait.

    Call it when the configuration is loaded too, so a bad value stops the run
    before it changes anything rather than at verification.
    """
    problems = []
    if not _finite(interval) or interval <= 0:
        problems.append(f"interval must be a finite number of seconds > 0, got {interval!r}")
    if not _finite(grace) or grace < 0:
        problems.append(f"grace must be a finite number of seconds >= 0, got {grace!r}")
    if not _finite(timeout) or timeout <= 0:
        problems.append(f"timeout must be a finite number of seconds > 0, got {timeout!r}")
    if isinstance(consecutive, bool) or not isinstance(consecutive, int) or consecutive < 1:
        problems.append(f"consecutive must be a whole number >= 1, got {consecutive!r}")
    if not problems and grace / interval > MAX_ATTEMPTS:
        problems.append(f"grace {grace:g}s / interval {interval:g}s would poll more than "
                        f"{MAX_ATTEMPTS} times")
    if not problems and (consecutive - 1) * interval > grace:
        problems.append(f"grace {grace:g}s cannot hold {consecutive} consecutive 200s "
                        f"{interval:g}s apart (that needs at least {(consecutive - 1) * interval:g}s)")
    if problems:
        raise ConfigError(
            "The health check's settings are not usable: " + "; ".join(problems) + ".",
            f"Fix health_grace (and the interval or consecutive count passed to check_health); "
            f"defaults: grace {DEFAULT_GRACE:g}s, interval {DEFAULT_INTERVAL:g}s, "
            f"{DEFAULT_CONSECUTIVE} consecutive 200s.")


def _finite(value: object) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


def check_health(http: httpx.Client, url: str, *, clock: Clock, grace: float = DEFAULT_GRACE,
                 interval: float = DEFAULT_INTERVAL, timeout: float = 10.0,
                 consecutive: int = DEFAULT_CONSECUTIVE) -> HealthResult:
    """GET ``url`` every ``interval`` s until ``consecutive`` 200s in a row, or until that can
    no longer happen within ``grace`` s of the first attempt (there is always one attempt).

    Raises ConfigError (exit 2) for numbers that are not usable, before any request.
    """
    validate_health_check(grace=grace, interval=interval, consecutive=consecutive, timeout=timeout)
    started = clock.now()
    statuses: list[int | None] = []
    streak = 0
    failure = ""
    # Time decides when to stop; the count only bounds the loop under a clock that stands still.
    for _ in range(math.floor(grace / interval) + 2):
        status, latency, detail = _probe(http, url, timeout)
        statuses.append(status)
        streak = streak + 1 if status == 200 else 0
        failure = failure if status == 200 else detail
        waited = clock.now() - started
        if streak >= consecutive or waited + (consecutive - streak) * interval > grace:
            break
        clock.sleep(interval)
    shown = detail if streak >= consecutive or not failure else failure
    return HealthResult(url, status, latency, len(statuses), waited, shown,
                        required=consecutive, streak=streak, statuses=tuple(statuses))


def _probe(http: httpx.Client, url: str, timeout: float) -> tuple[int | None, float, str]:
    began = time.perf_counter()
    try:
        response = http.get(url, timeout=timeout, follow_redirects=True)
    except httpx.HTTPError as exc:
        return None, (time.perf_counter() - began) * 1000, redact(f"{type(exc).__name__}: {exc}")
    latency = (time.perf_counter() - began) * 1000
    return response.status_code, latency, redact(response.text)[:200].strip()
