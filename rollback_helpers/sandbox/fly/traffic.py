"""The sandbox app's traffic: requests whose errors and latency follow the image it runs.

A :class:`TrafficModel` takes a deploy timeline (which image ran from when) and a
:class:`TrafficProfile` (how each image behaves, per region, over time) and
produces the raw series Fly's proxy would record, scraped every
:data:`SCRAPE_INTERVAL` seconds, under Fly's names:

* ``fly_edge_http_responses_count{app, region, status}`` — a counter of responses;
* ``fly_edge_http_response_time_seconds_bucket{app, region, le}`` (with ``_sum`` and
  ``_count``) — the response-time histogram, cumulative buckets in seconds.

Everything is deterministic (no randomness): the same timeline and profile give the
same numbers, in the emulated Prometheus API and in the OpenMetrics text the tests
backfill into a real Prometheus (:meth:`TrafficModel.openmetrics`).

Latency is shaped by :func:`latency_shape`, so that the histogram's p95 is the
behaviour's ``p95`` exactly, as Prometheus interpolates it.
"""

from __future__ import annotations

import bisect
import functools
import math
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, TypeAlias

if TYPE_CHECKING:
    import numpy as np
    import numpy.typing as npt

Samples: TypeAlias = "Sequence[float] | npt.NDArray[np.float64]"  # numpy from the model

SCRAPE_INTERVAL = 15.0
REGIONS = ("ams", "iad", "sjc")
# Fly does not publish its buckets; these are Prometheus' client defaults, in seconds.
BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, math.inf)
COUNTER = "fly_edge_http_responses_count"
HISTOGRAM = "fly_edge_http_response_time_seconds"


@dataclass(frozen=True)
class Behaviour:
    """How an image serves: its 5xx ratio and p95, optionally per region or flapping."""

    error_ratio: float
    p95: float  # seconds
    region_error_ratio: Mapping[str, float] = field(default_factory=dict)
    flap_period: float = 0.0  # > 0: every other period the 5xx ratio is flap_error_ratio
    flap_error_ratio: float = 0.0

    def at(self, region: str, into_run: float) -> tuple[float, float]:
        """(5xx ratio, p95) in ``region``, ``into_run`` seconds after the image started."""
        ratio = self.region_error_ratio.get(region, self.error_ratio)
        if self.flap_period > 0 and int(into_run // self.flap_period) % 2 == 1:
            ratio = self.flap_error_ratio
        return ratio, self.p95


GOOD = Behaviour(0.002, 0.12)
BROKEN = Behaviour(0.25, 0.8)


@dataclass(frozen=True)
class TrafficProfile:
    """Which image behaves how. ``returning``: an image running again after another one
    (the rollback target, back after the bad deploy), when the world changed meanwhile."""

    name: str
    behaviours: Mapping[str, Behaviour]
    returning: Mapping[str, Behaviour] = field(default_factory=dict)
    rate: float = 4.0  # requests per second per region
    regions: tuple[str, ...] = REGIONS
    endpoint: str = "up"  # "up", "down" (answers 503) or "slow" (never within the timeout)
    default: Behaviour = GOOD


def scenario_profile(name: str, *, target: str, bad: str) -> TrafficProfile:
    """The traffic profile of a named scenario, for the images ``target`` and ``bad``."""
    profiles = {
        "healthy": TrafficProfile(name, {target: GOOD, bad: BROKEN}),
        "target-already-bad": TrafficProfile(name, {target: Behaviour(0.08, 0.3), bad: BROKEN}),
        "flapping": TrafficProfile(name, {target: GOOD, bad: BROKEN}, returning={
            target: Behaviour(0.002, 0.12, flap_period=60.0, flap_error_ratio=0.3)}),
        "partial-recovery": TrafficProfile(name, {target: GOOD, bad: BROKEN}, returning={
            target: Behaviour(0.002, 0.12, region_error_ratio={"sjc": 0.3})}),
        "slow": TrafficProfile(name, {target: GOOD, bad: Behaviour(0.002, 2.4)}),
        "no-traffic": TrafficProfile(name, {target: GOOD, bad: BROKEN}, rate=0.01),
        "endpoint-down": TrafficProfile(name, {target: GOOD, bad: BROKEN}, endpoint="down"),
        "endpoint-slow": TrafficProfile(name, {target: GOOD, bad: BROKEN}, endpoint="slow"),
    }
    if name not in profiles:
        raise KeyError(f"no traffic profile {name!r}; known: {', '.join(profiles)}")
    return profiles[name]


PROFILES = ("healthy", "target-already-bad", "flapping", "partial-recovery", "slow",
            "no-traffic", "endpoint-down", "endpoint-slow")


@dataclass(frozen=True)
class Deploy:
    image: str
    start: float  # seconds since the epoch; runs until the next deploy


@dataclass(frozen=True, eq=False)
class RawSeries:
    """One series' samples. The model keeps them as numpy arrays: a day of 15 s ticks in
    48 series would be 700 000 Python floats, built again whenever the deploys change."""

    name: str
    labels: tuple[tuple[str, str], ...]
    times: Samples
    values: Samples
    known_resets: tuple[int, ...] | None = None  # given by a builder that knows them

    def label(self, name: str) -> str:
        return dict(self.labels).get(name, "")

    @functools.cached_property
    def resets(self) -> tuple[int, ...]:
        """The indices where the value falls below the one before (a counter reset)."""
        if self.known_resets is not None:
            return self.known_resets
        values = self.values
        return tuple(i for i in range(1, len(values)) if values[i] < values[i - 1])


class TrafficModel:
    """The app's raw series from ``timeline[0].start`` to ``end``."""

    def __init__(self, app: str, timeline: Sequence[Deploy], profile: TrafficProfile,
                 end: float) -> None:
        if not timeline:
            raise ValueError("the traffic model needs at least one deploy")
        self.app = app
        self.timeline = tuple(sorted(timeline, key=lambda deploy: deploy.start))
        self.profile = profile
        self.start = self.timeline[0].start
        self.end = end
        self.series = tuple(self._build())
        self._by_name: dict[str, list[RawSeries]] = {}
        for series in self.series:
            self._by_name.setdefault(series.name, []).append(series)

    def named(self, name: str) -> list[RawSeries]:
        return self._by_name.get(name, [])

    def behaviour_at(self, t: float) -> tuple[Behaviour, float]:
        """The running image's behaviour at ``t`` and how long it has been running."""
        starts = [deploy.start for deploy in self.timeline]
        index = max(0, bisect.bisect_right(starts, t) - 1)
        return self._behaviour(index), t - self.timeline[index].start

    def _behaviour(self, index: int) -> Behaviour:
        """How the image of deploy ``index`` behaves (differently when it is running again)."""
        deploy = self.timeline[index]
        earlier = {d.image for d in self.timeline[:index]}
        table = self.profile.returning if deploy.image in earlier else {}
        found = table.get(deploy.image) or self.profile.behaviours.get(deploy.image)
        return found or self.profile.default

    def _ticks(self) -> list[float]:
        first = math.ceil(self.start / SCRAPE_INTERVAL) * SCRAPE_INTERVAL
        count = int((self.end - first) // SCRAPE_INTERVAL) + 1
        return [first + i * SCRAPE_INTERVAL for i in range(max(0, count))]

    def _build(self) -> Iterator[RawSeries]:
        """Each series over every tick, a deploy's stretch of ticks at a time, in numpy (days
        of 15 s ticks in each of 48 series). The counters add up in tick order, exactly as
        a running sum in Python would; each tick shows the behaviour half a scrape earlier."""
        import numpy as np  # the sandbox's metrics only: not when a world merely loads

        ticks = np.asarray(self._ticks(), dtype=float)
        mids = ticks - SCRAPE_INTERVAL / 2
        starts = np.asarray([deploy.start for deploy in self.timeline])
        index = np.maximum(np.searchsorted(starts, mids, side="right") - 1, 0)
        into_run = mids - starts[index]
        behaviours = [self._behaviour(i) for i in range(len(self.timeline))]
        served = self.profile.rate * SCRAPE_INTERVAL
        times = ticks
        p95 = np.asarray([b.p95 for b in behaviours])[index]
        shapes = np.asarray([_shape(b.p95) for b in behaviours])[index]  # ticks × buckets
        for region in self.profile.regions:
            ratio = np.empty(len(ticks))
            for i, behaviour in enumerate(behaviours):
                mine = index == i
                ratio[mine] = behaviour.region_error_ratio.get(region, behaviour.error_ratio)
                if behaviour.flap_period > 0:
                    flapping = (into_run // behaviour.flap_period).astype(np.int64) % 2 == 1
                    ratio[mine & flapping] = behaviour.flap_error_ratio
            base = (("app", self.app), ("region", region))

            def running(increments: Any, labels: tuple[tuple[str, str], ...],
                        suffix: str = "") -> RawSeries:
                return RawSeries((HISTOGRAM + suffix) if suffix else COUNTER, labels, times,
                                 np.cumsum(increments),
                                 known_resets=())  # a sum of increments ≥ 0 never falls

            yield running(served * (1 - ratio), (*base, ("status", "200")))
            yield running(served * ratio, (*base, ("status", "500")))
            for i, bound in enumerate(BUCKETS):
                yield running(served * shapes[:, i], (*base, ("le", _le(bound))), "_bucket")
            yield running(np.full(len(ticks), served), base, "_count")
            # the sum: the mean of latency_shape's distribution, near enough
            yield running(served * p95 * 0.6, base, "_sum")

    def openmetrics(self) -> str:
        """The raw series as OpenMetrics text, for ``promtool tsdb create-blocks-from
        openmetrics``: each series name its own family of type ``unknown`` (Fly's counter
        has no ``_total``), each series in time order."""
        lines: list[str] = []
        for name in (COUNTER, *(HISTOGRAM + suffix for suffix in ("_bucket", "_count", "_sum"))):
            lines.append(f"# TYPE {name} unknown")
            lines += _samples(self.named(name))
        lines.append("# EOF")
        return "\n".join(lines) + "\n"


def latency_shape(p95: float) -> list[float]:
    """The fraction of requests at or under each of :data:`BUCKETS`, shaped so that
    Prometheus' ``histogram_quantile(0.95, …)`` (linear within a bucket) gives ``p95``.

    Within the bucket ``(a, b]`` that holds ``p95`` the fraction rises linearly through
    (p95, 0.95); below ``a`` it rises linearly from zero; the rest lies in the next bucket.
    """
    b_index = next(i for i, bound in enumerate(BUCKETS) if bound >= p95)
    a = BUCKETS[b_index - 1] if b_index > 0 else 0.0
    b = BUCKETS[b_index]
    slope = 0.95 / p95 if math.isinf(b) or b == p95 else min(0.95 / p95, 0.05 / (b - p95))
    at_a = 0.95 - slope * (p95 - a)
    at_b = 1.0 if math.isinf(b) else 0.95 + slope * (b - p95)
    shape = []
    for i, bound in enumerate(BUCKETS):
        if i < b_index:
            shape.append(at_a * bound / a if a > 0 else 0.0)
        elif i == b_index:
            shape.append(at_b)
        else:
            shape.append(1.0)
    return shape


_shape = functools.lru_cache(maxsize=64)(latency_shape)  # the same few p95s, tick after tick


def _le(bound: float) -> str:
    return "+Inf" if math.isinf(bound) else repr(bound)


def _samples(series: Sequence[RawSeries]) -> Iterator[str]:
    for one in series:
        labels = ",".join(f'{k}="{v}"' for k, v in one.labels)
        for t, v in zip(one.times, one.values, strict=True):
            yield f"{one.name}{{{labels}}} {float(v)!r} {t:.3f}"
