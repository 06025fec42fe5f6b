"""One environment's metrics settings (``[environments.<name>.metrics]``): where to read them,
what to ask, what counts as healthy.

The configuration validates these with every run's first step; what the numbers then
say is :mod:`rollback_helpers.domain.evidence`'s, loaded by the steps that read metrics.
"""

from __future__ import annotations

from typing import Annotated

from pydantic import ConfigDict, Field
from pydantic.dataclasses import dataclass as settings_dataclass

from rollback_helpers.domain.validation import PositiveSeconds, Text

ERRORS_QUERY = ('sum by (region) (increase(fly_edge_http_responses_count'
                '{app="$app",status=~"5.."}[$window]))')
REQUESTS_QUERY = 'sum by (region) (increase(fly_edge_http_responses_count{app="$app"}[$window]))'
P95_QUERY = ('histogram_quantile(0.95, sum by (le) '
             '(rate(fly_edge_http_response_time_seconds_bucket{app="$app"}[$window])))')

Ratio = Annotated[float, Field(ge=0, le=1, allow_inf_nan=False, strict=True)]
Factor = Annotated[float, Field(ge=1, allow_inf_nan=False, strict=True)]
Requests = Annotated[int, Field(ge=1, strict=True)]


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
