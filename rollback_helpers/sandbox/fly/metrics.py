"""Fly's Prometheus HTTP API, emulated from the sandbox's traffic model.

:func:`prometheus_handler` answers ``/api/v1/query`` and ``/api/v1/query_range``
(GET or form POST, under any base path) for an ``httpx.MockTransport``, from a
:class:`~rollback_helpers.sandbox.fly.traffic.TrafficModel`. :func:`evaluate`
understands exactly the query shapes the runbook's defaults use, with Prometheus'
own arithmetic, so the emulation cannot drift from the real query language
unnoticed (``tests/sandbox/test_prometheus_parity.py`` runs the same queries on a
real Prometheus):

* ``sum [by (l, …)] (rate|increase(metric{matchers}[d]))`` (``by`` before or after);
* ``histogram_quantile(φ, <such a sum by (le)>)``.

``rate``/``increase`` extrapolate as Prometheus 2.x does (samples in the closed range
``[t - d, t]``, extrapolated to the range's edges, never below zero for counters);
``histogram_quantile`` interpolates linearly within a bucket. Anything else is a
``bad_data`` error, as Prometheus answers a query it cannot parse.
"""

from __future__ import annotations

import bisect
import json
import math
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from urllib.parse import parse_qs

import httpx

from rollback_helpers.sandbox.fly.traffic import RawSeries, TrafficModel

Labels = tuple[tuple[str, str], ...]
Vector = dict[Labels, float]

_SUM_BY_FIRST = re.compile(r"^sum\s*(?:by\s*\((?P<by>[^)]*)\)\s*)?\((?P<inner>.*)\)$", re.S)
_SUM_BY_AFTER = re.compile(r"^sum\s*\((?P<inner>.*)\)\s*by\s*\((?P<by>[^)]*)\)$", re.S)
_RANGE_FN = re.compile(r"^(?P<fn>rate|increase)\s*\(\s*(?P<metric>[A-Za-z_:][A-Za-z0-9_:]*)\s*"
                       r"(?:\{(?P<matchers>[^}]*)\})?\s*\[(?P<n>\d+)(?P<unit>[smh])\]\s*\)$", re.S)
_QUANTILE = re.compile(r"^histogram_quantile\s*\(\s*(?P<q>[0-9.]+)\s*,(?P<inner>.*)\)$", re.S)
_MATCHER = re.compile(r'\s*(?P<name>[A-Za-z_][A-Za-z0-9_]*)\s*(?P<op>=~|!~|!=|=)\s*'
                      r'"(?P<value>(?:[^"\\]|\\.)*)"\s*(?:,|$)')
_UNITS = {"s": 1, "m": 60, "h": 3600}


class QueryError(ValueError):
    """A query outside the shapes the emulation understands (Prometheus: bad_data)."""


@dataclass(frozen=True)
class _Matcher:
    name: str
    op: str
    value: str

    def matches(self, labels: dict[str, str]) -> bool:
        found = labels.get(self.name, "")
        if self.op in ("=", "!="):
            return (found == self.value) == (self.op == "=")
        return bool(re.fullmatch(self.value, found)) == (self.op == "=~")


def evaluate(model: TrafficModel, query: str, at: float) -> Vector:
    """The instant vector ``query`` gives at ``at``: labels → value."""
    query = query.strip()
    quantile = _QUANTILE.match(query)
    if quantile:
        return _histogram_quantile(float(quantile["q"]), evaluate(model, quantile["inner"], at))
    summed = _SUM_BY_AFTER.match(query) or _SUM_BY_FIRST.match(query)
    if summed:
        by = [name.strip() for name in (summed["by"] or "").split(",") if name.strip()]
        result: Vector = {}
        for labels, value in evaluate(model, summed["inner"], at).items():
            key = tuple((k, v) for k, v in labels if k in by)
            result[key] = result.get(key, 0.0) + value
        return result
    ranged = _RANGE_FN.match(query)
    if ranged:
        seconds = int(ranged["n"]) * _UNITS[ranged["unit"]]
        matchers = _matchers(ranged["matchers"] or "")
        result = {}
        for series in model.named(ranged["metric"]):
            if all(m.matches(dict(series.labels)) for m in matchers):
                found = _extrapolated(series, at - seconds, at, rate=ranged["fn"] == "rate")
                if found is not None:
                    result[series.labels] = found
        return result
    raise QueryError(f"the sandbox's Prometheus does not understand {query!r}")


def _matchers(text: str) -> list[_Matcher]:
    found, position = [], 0
    while position < len(text.strip()):
        one = _MATCHER.match(text, position)
        if not one:
            raise QueryError(f"bad label matchers {{{text}}}")
        found.append(_Matcher(one["name"], one["op"], one["value"].replace('\\"', '"')))
        position = one.end()
    return found


def _extrapolated(series: RawSeries, start: float, end: float, *, rate: bool) -> float | None:
    """Prometheus 2.x ``extrapolatedRate`` for a counter over the closed range [start, end]:
    the last sample less the first, plus the value before each reset (a reset starts from
    zero), in that order, as Prometheus adds them up."""
    times, values = series.times, series.values
    first, last = bisect.bisect_left(times, start), bisect.bisect_right(times, end) - 1
    if last - first < 1:
        return None
    result = values[last] - values[first]
    resets = series.resets
    for index in resets[bisect.bisect_right(resets, first):bisect.bisect_right(resets, last)]:
        result += values[index - 1]
    first_t, first_v, last_t = times[first], values[first], times[last]
    sampled = last_t - first_t
    average = sampled / (last - first)
    to_start, to_end = first_t - start, end - last_t
    if result > 0 and first_v >= 0:
        to_start = min(to_start, sampled * (first_v / result))
    threshold = average * 1.1
    interval = sampled + (to_start if to_start < threshold else average / 2)
    interval += to_end if to_end < threshold else average / 2
    result *= interval / sampled
    return result / (end - start) if rate else result


def _histogram_quantile(q: float, buckets: Vector) -> Vector:
    groups: dict[Labels, list[tuple[float, float]]] = {}
    for labels, count in buckets.items():
        le = dict(labels).get("le")
        if le is None:
            continue
        key = tuple((k, v) for k, v in labels if k != "le")
        groups.setdefault(key, []).append((float(le), count))
    return {key: _bucket_quantile(q, sorted(found)) for key, found in groups.items()}


def _bucket_quantile(q: float, buckets: list[tuple[float, float]]) -> float:
    if q < 0:
        return -math.inf
    if q > 1:
        return math.inf
    if len(buckets) < 2 or not math.isinf(buckets[-1][0]):
        return math.nan
    counts, highest = [], 0.0
    for _, count in buckets:  # Prometheus' ensureMonotonic
        highest = max(highest, count)
        counts.append(highest)
    observations = counts[-1]
    if observations == 0:
        return math.nan
    rank = q * observations
    b = next(i for i, count in enumerate(counts) if count >= rank)
    if b == len(buckets) - 1:
        return buckets[-2][0]
    if b == 0 and buckets[0][0] <= 0:
        return buckets[0][0]
    start, end, count = 0.0, buckets[b][0], counts[b]
    if b > 0:
        start = buckets[b - 1][0]
        count -= counts[b - 1]
        rank -= counts[b - 1]
    return start + (end - start) * (rank / count)


# -- the HTTP API -------------------------------------------------------------------------------
def prometheus_handler(model: TrafficModel, *, require_token: bool = True,
                       wait: Callable[[float], None] | None = None
                       ) -> Callable[[httpx.Request], httpx.Response]:
    """A handler for ``httpx.MockTransport``. The profile's ``endpoint`` decides: "up"
    answers, "down" answers 503, "slow" answers after the caller's read timeout (``wait``
    is given that timeout, to move a virtual clock; then the call times out)."""

    def handle(request: httpx.Request) -> httpx.Response:
        if model.profile.endpoint == "down":
            return _error(503, "unavailable", "metrics storage is unavailable")
        if model.profile.endpoint == "slow":
            timeout = (request.extensions.get("timeout") or {}).get("read") or 30.0
            if wait is not None:
                wait(float(timeout))
            raise httpx.ReadTimeout("the sandbox's metrics endpoint is slow", request=request)
        if require_token and not request.headers.get("authorization", "").startswith("Bearer "):
            return _error(401, "unauthorized", "missing bearer token")
        params = _params(request)
        try:
            if request.url.path.endswith("/api/v1/query"):
                return _success("vector", _instant(model, params))
            if request.url.path.endswith("/api/v1/query_range"):
                return _success("matrix", _range(model, params))
        except (QueryError, KeyError, ValueError) as exc:
            return _error(400, "bad_data", str(exc))
        return _error(404, "not_found", f"no such endpoint {request.url.path}")

    return handle


def _params(request: httpx.Request) -> dict[str, str]:
    found = {k: v[-1] for k, v in parse_qs(request.url.query.decode()).items()}
    if request.method == "POST":
        found.update({k: v[-1] for k, v in parse_qs(request.content.decode()).items()})
    return found


def _instant(model: TrafficModel, params: dict[str, str]) -> list[dict[str, object]]:
    at = float(params["time"])
    return [{"metric": dict(labels), "value": [at, _number(value)]}
            for labels, value in sorted(evaluate(model, params["query"], at).items())]


def _range(model: TrafficModel, params: dict[str, str]) -> list[dict[str, object]]:
    start, end, step = float(params["start"]), float(params["end"]), float(params["step"])
    if step <= 0 or end < start:
        raise QueryError("end before start, or a step that is not positive")
    rows: dict[Labels, list[list[object]]] = {}
    for at in _steps(start, end, step):
        for labels, value in evaluate(model, params["query"], at).items():
            rows.setdefault(labels, []).append([at, _number(value)])
    return [{"metric": dict(labels), "values": values} for labels, values in sorted(rows.items())]


def _steps(start: float, end: float, step: float) -> Iterable[float]:
    count = int((end - start) // step)
    return (start + i * step for i in range(count + 1))


def _number(value: float) -> str:
    if math.isnan(value):
        return "NaN"
    if math.isinf(value):
        return "+Inf" if value > 0 else "-Inf"
    return repr(float(value))


def _success(kind: str, result: list[dict[str, object]]) -> httpx.Response:
    body = {"status": "success", "data": {"resultType": kind, "result": result}}
    return httpx.Response(200, content=json.dumps(body),
                          headers={"Content-Type": "application/json"})


def _error(status: int, kind: str, message: str) -> httpx.Response:
    body = {"status": "error", "errorType": kind, "error": message}
    return httpx.Response(status, content=json.dumps(body),
                          headers={"Content-Type": "application/json"})
