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

The queries are plain PromQL, so Fly's VictoriaMetrics, a team's own Prometheus and
the real server in the tests answer them alike; ``$app`` and ``$window`` are filled
in by :func:`render_query`. The 5xx ratio is computed here from two sums by region
rather than by a PromQL division: a region that served no 5xx has no numerator
series, and the division would silently drop that region.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from string import Template
from typing import Annotated, Literal, Protocol

from pydantic import ConfigDict, Field
from pydantic.dataclasses import dataclass as settings_dataclass

from rollback_helpers.clients.metrics import NoEvidence, QueryResult
from rollback_helpers.clock import Clock
from rollback_helpers.domain.validation import PositiveSeconds, Text

ERRORS_QUERY = ('sum by (region) (increase(fly_edge_http_responses_count'
                '{app="$app",status=~"5.."}[$window]))')
REQUESTS_QUERY = 'sum by (region) (increase(fly_edge_http_responses_count{app="$app"}[$window]))'
P95_QUERY = ('histogram_quantile(0.95, sum by (le) '
             '(rate(fly_edge_http_response_time_seconds_bucket{app="$app"}[$window])))')

Ratio = Annotated[float, Field(ge=0, le=1, allow_inf_nan=False, strict=True)]
Factor = Annotated[float, Field(ge=1, allow_inf_nan=False, strict=True)]
Requests = Annotated[int, Field(ge=1, strict=True)]
Outcome = Literal["recovered", "not_recovered", "inconclusive", "no_evidence"]


@settings_dataclass(frozen=True, config=ConfigDict(extra="forbid"))
class MetricsSettings:
    """One environment's metrics: where to read them, what to ask, what counts as healthy."""

    url: Text = ""  # a Prometheus-compatible base URL; empty: Fly's, for the configured org
    errors_query: Text = ERRORS_QUERY      # 5xx responses over $window, by region
    requests_query: Text = REQUESTS_QUERY  # all responses over $window, by region
    p95_query: Text = P95_QUERY            # p95 latency over $window, in seconds
    baseline_window: PositiveSeconds = 1800.0  # before the bad deploy
    watch_window: PositiveSeconds = 300.0      # after every machine runs the target
    poll_interval: PositiveSeconds = 30.0      # progress while watching
    timeout: PositiveSeconds = 10.0            # the most one reading (three queries) may cost
    min_requests: Requests = 50         # fewer in a window: inconclusive
    region_min_requests: Requests = 20  # fewer in one region: that region is not judged alone
    error_ratio_margin: Ratio = 0.01    # recovered: 5xx ratio ≤ baseline + margin
    p95_factor: Factor = 1.5            # recovered: p95 ≤ baseline × factor
    max_error_ratio: Ratio = 0.02       # a target above this while it ran was unhealthy
    max_p95: PositiveSeconds = 1.0      # the p95 bound when the baseline is unknown


class MetricsSource(Protocol):
    """What reading a window needs: :class:`rollback_helpers.clients.metrics.MetricsClient`."""

    def query(self, promql: str, at: float, *, budget: float | None = None
              ) -> QueryResult | NoEvidence: ...


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


def read_window(source: MetricsSource, settings: MetricsSettings, app: str, start: float,
                end: float, *, clock: Clock) -> WindowSignal | NoEvidence:
    """The three default readings of ``app`` over ``[start, end]``, within one time budget.

    No 5xx series is zero errors, not missing evidence; no request series at all is
    evidence of no traffic (the verdict says inconclusive), not a failure."""
    deadline = clock.now() + settings.timeout
    answers: dict[str, QueryResult | None] = {}
    for key, template in (("requests", settings.requests_query),
                          ("errors", settings.errors_query), ("p95", settings.p95_query)):
        remaining = deadline - clock.now()
        if remaining <= 0:
            return NoEvidence("timeout", f"reading {app}'s metrics took its whole "
                              f"{settings.timeout:g} s budget.")
        answer = source.query(render_query(template, app, end - start), end, budget=remaining)
        if isinstance(answer, NoEvidence):
            if answer.reason != "no_series":
                return answer
            answers[key] = None
        else:
            answers[key] = answer
    return _signal(start, end, answers)


def _signal(start: float, end: float, answers: Mapping[str, QueryResult | None]) -> WindowSignal:
    requests = _by_region(answers.get("requests"))
    errors = _by_region(answers.get("errors"))
    regions = tuple(RegionSignal(region, count, errors.get(region, 0.0))
                    for region, count in sorted(requests.items()))
    p95_answer = answers.get("p95")
    p95 = p95_answer.series[0].last if p95_answer and p95_answer.series else math.nan
    return WindowSignal(start, end, sum(requests.values()), sum(errors.values()),
                        None if math.isnan(p95) else p95, regions)


def _by_region(answer: QueryResult | None) -> dict[str, float]:
    found: dict[str, float] = {}
    for series in answer.series if answer else ():
        value = series.last
        if not math.isnan(value):
            region = series.label("region") or "all"
            found[region] = found.get(region, 0.0) + value
    return found


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
    baseline: WindowSignal | NoEvidence
    incident: WindowSignal | NoEvidence
    findings: tuple[Finding, ...] = ()

    @property
    def degraded(self) -> bool:
        return bool(self.findings)


def incident_signal(baseline: WindowSignal | NoEvidence, incident: WindowSignal | NoEvidence,
                    settings: MetricsSettings) -> IncidentSignal:
    """The incident window against the baseline: which signals are out of bounds."""
    if isinstance(incident, NoEvidence):
        return IncidentSignal(baseline, incident)
    limits = bounds(None if isinstance(baseline, NoEvidence) else baseline, settings)
    return IncidentSignal(baseline, incident, findings(incident, limits, settings))


@dataclass(frozen=True)
class TrackRecord:
    """The target's errors while it was the running image."""

    status: Literal["healthy", "unhealthy", "unknown"]
    window: WindowSignal | NoEvidence
    reason: str


def judge_track_record(window: WindowSignal | NoEvidence, settings: MetricsSettings,
                       image: str = "the target") -> TrackRecord:
    if isinstance(window, NoEvidence):
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
    baseline: WindowSignal | NoEvidence
    during: WindowSignal | NoEvidence
    after: WindowSignal | NoEvidence
    findings: tuple[Finding, ...] = field(default=())

    @property
    def bad_signals(self) -> tuple[str, ...]:
        return tuple(str(found) for found in self.findings)


def recovery_verdict(baseline: WindowSignal | NoEvidence, during: WindowSignal | NoEvidence,
                     after: WindowSignal | NoEvidence, settings: MetricsSettings
                     ) -> RecoveryVerdict:
    """The watch window ``after`` the rollback against the ``baseline`` before the incident."""
    if isinstance(after, NoEvidence):
        return RecoveryVerdict("no_evidence", f"{after}; the verdict rests on the machine and "
                               "health checks alone.", baseline, during, after)
    if after.requests < settings.min_requests:
        return RecoveryVerdict("inconclusive", f"only {after.requests:.0f} requests in the "
                               f"{after.end - after.start:.0f} s watch (fewer than "
                               f"{settings.min_requests}): too little traffic to say the incident "
                               "ended. Watch the app's dashboards.", baseline, during, after)
    limits = bounds(None if isinstance(baseline, NoEvidence) else baseline, settings)
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
def evidence_rows(windows: Mapping[str, WindowSignal | NoEvidence]) -> list[dict[str, str]]:
    """One row per named window ("before", "during", "after"…): what the table and the
    record comment show, numbers already formatted."""
    rows = []
    for name, window in windows.items():
        if isinstance(window, NoEvidence):
            rows.append({"window": name, "requests": "—", "5xx ratio": "—", "p95": "—",
                         "note": str(window)})
            continue
        ratio = window.error_ratio
        rows.append({"window": name, "requests": f"{window.requests:.0f}",
                     "5xx ratio": "—" if ratio is None else f"{ratio:.2%}",
                     "p95": "—" if window.p95 is None else f"{window.p95 * 1000:.0f} ms",
                     "note": ""})
    return rows


class RangeSource(Protocol):
    """What reading a timeline needs: :class:`rollback_helpers.clients.metrics.MetricsClient`."""

    def query_range(self, promql: str, start: float, end: float, step: float, *,
                    budget: float | None = None) -> QueryResult | NoEvidence: ...


@dataclass(frozen=True)
class Timeline:
    """The chart's points: (time, value or None when no request was served)."""

    error_ratio: tuple[tuple[float, float | None], ...]
    p95: tuple[tuple[float, float | None], ...]


def read_timeline(source: RangeSource, settings: MetricsSettings, app: str, start: float,
                  end: float, *, clock: Clock, step: float = 60.0) -> Timeline | NoEvidence:
    """The 5xx ratio and p95 from ``start`` to ``end``, each point over the ``step`` before it."""
    deadline = clock.now() + settings.timeout
    answers: dict[str, dict[float, float]] = {}
    for key, template in (("requests", settings.requests_query),
                          ("errors", settings.errors_query), ("p95", settings.p95_query)):
        remaining = deadline - clock.now()
        answer = source.query_range(render_query(template, app, step), start, end, step,
                                    budget=remaining) if remaining > 0 else \
            NoEvidence("timeout", f"reading {app}'s metrics took its whole "
                       f"{settings.timeout:g} s budget.")
        if isinstance(answer, NoEvidence) and answer.reason != "no_series":
            return answer
        answers[key] = _summed(None if isinstance(answer, NoEvidence) else answer)
    requests, errors = answers["requests"], answers["errors"]
    ratio = tuple((t, errors.get(t, 0.0) / requests[t] if requests[t] > 0 else None)
                  for t in sorted(requests))
    p95 = tuple((t, None if math.isnan(v) else v) for t, v in sorted(answers["p95"].items()))
    return Timeline(ratio, p95)


def _summed(answer: QueryResult | None) -> dict[float, float]:
    """Each step's values summed over the series; NaN (a quantile of nothing) stays NaN."""
    found: dict[float, float] = {}
    for series in answer.series if answer else ():
        for sample in series.samples:
            found[sample.time] = found.get(sample.time, 0.0) + sample.value
    return found
