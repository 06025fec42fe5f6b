"""What the metrics say about an incident, and whether a rollback ended it.

Three decisions read the same numbers — the 5xx ratio, the p95 latency and the
number of requests of one app over one window:

* :func:`incident_signal` — the incident (since the bad deploy) against a baseline
  window before it;
* :func:`judge_track_record` — the rollback target's error ratio while it was the
  running image (from its record's ``deployed_at`` to the next deploy);
* :func:`recovery_verdict` — the watch window after every machine runs the target,
  against the baseline: ``recovered``, ``not_recovered`` (naming the signal, and the
  region, still bad), ``inconclusive`` (too little traffic to judge) or
  ``no_evidence`` (metrics could not be read: the run falls back to its other checks).

Everything here is pure: the numbers come in as :class:`WindowSignal` values, read by
:mod:`rollback_helpers.run.metrics_evidence`, or as an :class:`Unread` reason (the
client's ``NoEvidence``) when they could not be read. The queries are plain PromQL, so
Fly's VictoriaMetrics, a team's own Prometheus and the real server in the tests answer
them alike; ``$app`` and ``$window`` are filled in by :func:`render_query`. The 5xx
ratio is computed from two sums by region rather than by a PromQL division: a region
that served no 5xx has no numerator series, and the division would silently drop it.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from string import Template
from typing import Literal, Protocol

from rollback_helpers.domain.metrics_settings import MetricsSettings

Outcome = Literal["recovered", "not_recovered", "inconclusive", "no_evidence"]


class Unread(Protocol):
    """Why a window could not be read (:class:`rollback_helpers.clients.metrics.NoEvidence`):
    its ``str`` says what failed and what to do."""

    @property
    def reason(self) -> str: ...

    @property
    def detail(self) -> str: ...


@dataclass(frozen=True)
class RegionSignal:
    region: str
    requests: float
    errors: float

    @property
    def error_ratio(self) -> float | None:
        return self.errors / self.requests if self.requests > 0 else None


@dataclass(frozen=True)
class WindowSignal:
    """The app's traffic over ``[start, end]``."""

    start: float
    end: float
    requests: float
    errors: float
    p95: float | None  # seconds; None when no request was timed
    regions: tuple[RegionSignal, ...] = ()

    @property
    def error_ratio(self) -> float | None:
        return self.errors / self.requests if self.requests > 0 else None

    @property
    def request_rate(self) -> float:
        return self.requests / (self.end - self.start) if self.end > self.start else 0.0


def render_query(template: str, app: str, window: float) -> str:
    return Template(template).safe_substitute(app=app, window=f"{max(1, round(window))}s")


# -- the decisions ------------------------------------------------------------------------------
@dataclass(frozen=True)
class Bounds:
    """What "back to normal" means for one watch: derived from the baseline."""

    error_ratio: float
    p95: float
    from_baseline: bool  # False: the baseline had too little traffic; the absolute bounds apply


def bounds(baseline: WindowSignal | None, settings: MetricsSettings) -> Bounds:
    ratio = baseline.error_ratio if baseline else None
    if baseline is None or ratio is None or baseline.requests < settings.min_requests:
        return Bounds(settings.max_error_ratio, settings.max_p95, False)
    p95 = baseline.p95 * settings.p95_factor if baseline.p95 is not None else settings.max_p95
    return Bounds(ratio + settings.error_ratio_margin, p95, True)


@dataclass(frozen=True)
class Finding:
    """One signal out of bounds: what, where, how much."""

    signal: Literal["5xx ratio", "p95 latency"]
    value: float
    bound: float
    region: str = ""  # "" for the whole app

    def __str__(self) -> str:
        where = f" in {self.region}" if self.region else ""
        if self.signal == "p95 latency":
            return f"p95 latency{where} {self.value * 1000:.0f} ms > {self.bound * 1000:.0f} ms"
        return f"5xx ratio{where} {self.value:.2%} > {self.bound:.2%}"


def findings(window: WindowSignal, limits: Bounds, settings: MetricsSettings) -> tuple[Finding, ...]:
    """Every signal of ``window`` above ``limits``: the whole app, then each busy region."""
    found: list[Finding] = []
    ratio = window.error_ratio
    if ratio is not None and ratio > limits.error_ratio:
        found.append(Finding("5xx ratio", ratio, limits.error_ratio))
    if window.p95 is not None and window.p95 > limits.p95:
        found.append(Finding("p95 latency", window.p95, limits.p95))
    judged = [region for region in window.regions
              if region.requests >= settings.region_min_requests and region.error_ratio is not None]
    bad = [region for region in judged if (region.error_ratio or 0.0) > limits.error_ratio]
    if len(bad) < len(judged):  # some regions are fine: name the ones that are not
        found += [Finding("5xx ratio", region.error_ratio or 0.0, limits.error_ratio, region.region)
                  for region in bad]
    return tuple(found)


@dataclass(frozen=True)
class IncidentSignal:
    baseline: WindowSignal | Unread
    incident: WindowSignal | Unread
    findings: tuple[Finding, ...] = ()

    @property
    def degraded(self) -> bool:
        return bool(self.findings)


def incident_signal(baseline: WindowSignal | Unread, incident: WindowSignal | Unread,
                    settings: MetricsSettings) -> IncidentSignal:
    """The incident window against the baseline: which signals are out of bounds."""
    if not isinstance(incident, WindowSignal):
        return IncidentSignal(baseline, incident)
    limits = bounds(baseline if isinstance(baseline, WindowSignal) else None, settings)
    return IncidentSignal(baseline, incident, findings(incident, limits, settings))


@dataclass(frozen=True)
class TrackRecord:
    """The target's errors while it was the running image."""

    status: Literal["healthy", "unhealthy", "unknown"]
    window: WindowSignal | Unread
    reason: str


def judge_track_record(window: WindowSignal | Unread, settings: MetricsSettings,
                       image: str = "the target") -> TrackRecord:
    if not isinstance(window, WindowSignal):
        return TrackRecord("unknown", window, str(window))
    ratio = window.error_ratio
    if window.requests < settings.min_requests or ratio is None:
        return TrackRecord("unknown", window, f"{image} served {window.requests:.0f} requests "
                           f"while it ran (fewer than {settings.min_requests}): too few to judge.")
    if ratio > settings.max_error_ratio:
        return TrackRecord("unhealthy", window, f"{image} answered {ratio:.2%} of "
                           f"{window.requests:.0f} requests with 5xx while it ran (more than "
                           f"{settings.max_error_ratio:.2%}): rolling back to it may not end "
                           "the incident.")
    return TrackRecord("healthy", window, f"{image} answered {ratio:.2%} of "
                       f"{window.requests:.0f} requests with 5xx while it ran.")


@dataclass(frozen=True)
class RecoveryVerdict:
    outcome: Outcome
    reason: str
    baseline: WindowSignal | Unread
    during: WindowSignal | Unread
    after: WindowSignal | Unread
    findings: tuple[Finding, ...] = field(default=())

    @property
    def bad_signals(self) -> tuple[str, ...]:
        return tuple(str(found) for found in self.findings)


def recovery_verdict(baseline: WindowSignal | Unread, during: WindowSignal | Unread,
                     after: WindowSignal | Unread, settings: MetricsSettings
                     ) -> RecoveryVerdict:
    """The watch window ``after`` the rollback against the ``baseline`` before the incident."""
    if not isinstance(after, WindowSignal):
        return RecoveryVerdict("no_evidence", f"{after}; the verdict rests on the machine and "
                               "health checks alone.", baseline, during, after)
    if after.requests < settings.min_requests:
        return RecoveryVerdict("inconclusive", f"only {after.requests:.0f} requests in the "
                               f"{after.end - after.start:.0f} s watch (fewer than "
                               f"{settings.min_requests}): too little traffic to say the incident "
                               "ended. Watch the app's dashboards.", baseline, during, after)
    limits = bounds(baseline if isinstance(baseline, WindowSignal) else None, settings)
    bad = findings(after, limits, settings)
    against = "the baseline" if limits.from_baseline else "the configured absolute bounds"
    if bad:
        return RecoveryVerdict("not_recovered", f"still bad against {against}: "
                               f"{'; '.join(map(str, bad))}. The rollback ran but users still "
                               "see errors or slowness: look at the app's logs"
                               f"{' in the regions named' if any(f.region for f in bad) else ''}.",
                               baseline, during, after, bad)
    return RecoveryVerdict("recovered", f"5xx ratio and p95 latency back within {against} "
                           f"({after.requests:.0f} requests watched).", baseline, during, after)


# -- for the table, the record and the chart ------------------------------------------------------
def evidence_rows(windows: Mapping[str, WindowSignal | Unread]) -> list[dict[str, str]]:
    """One row per named window ("before", "during", "after"…): what the table and the
    record comment show, numbers already formatted."""
    rows = []
    for name, window in windows.items():
        if not isinstance(window, WindowSignal):
            rows.append({"window": name, "requests": "—", "5xx ratio": "—", "p95": "—",
                         "note": str(window)})
            continue
        ratio = window.error_ratio
        rows.append({"window": name, "requests": f"{window.requests:.0f}",
                     "5xx ratio": "—" if ratio is None else f"{ratio:.2%}",
                     "p95": "—" if window.p95 is None else f"{window.p95 * 1000:.0f} ms",
                     "note": ""})
    return rows
