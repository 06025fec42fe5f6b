"""The app's readiness endpoint: ``GET https://<app>.fly.dev/api/health/ready``."""

from __future__ import annotations

import time
from dataclasses import dataclass

import httpx

from rollback_helpers.clock import Clock
from rollback_helpers.secrets import redact


@dataclass(frozen=True)
class HealthResult:
    url: str
    status_code: int | None  # None: never answered
    latency_ms: float        # of the last attempt
    attempts: int
    waited_s: float          # virtual or real time spent retrying
    detail: str              # a short, redacted excerpt of the last answer or error

    @property
    def healthy(self) -> bool:
        return self.status_code == 200


def check_health(http: httpx.Client, url: str, *, clock: Clock, grace: float = 60.0,
                 interval: float = 5.0, timeout: float = 10.0) -> HealthResult:
    """GET ``url`` until it answers 200 or ``grace`` seconds have passed (at least once)."""
    started = clock.now()
    attempts = 0
    while True:
        attempts += 1
        status, latency, detail = _probe(http, url, timeout)
        waited = clock.now() - started
        if status == 200 or waited + interval > grace:
            return HealthResult(url, status, latency, attempts, waited, detail)
        clock.sleep(interval)


def _probe(http: httpx.Client, url: str, timeout: float) -> tuple[int | None, float, str]:
    began = time.perf_counter()
    try:
        response = http.get(url, timeout=timeout, follow_redirects=True)
    except httpx.HTTPError as exc:
        return None, (time.perf_counter() - began) * 1000, redact(f"{type(exc).__name__}: {exc}")
    latency = (time.perf_counter() - began) * 1000
    return response.status_code, latency, redact(response.text)[:200].strip()
