"""Reading an app's metrics into windows and timelines, within one time budget."""

from __future__ import annotations

from rollback_helpers.clients.metrics import NoEvidence, QueryResult, Sample, Series
from rollback_helpers.clock import VirtualClock
from rollback_helpers.domain.evidence import WindowSignal
from rollback_helpers.domain.metrics_settings import MetricsSettings
from rollback_helpers.run.metrics_evidence import Timeline, read_timeline, read_window

SETTINGS = MetricsSettings()


class Scripted:
    """A metrics source that answers from a table and costs ``cost`` seconds per call."""

    def __init__(self, clock: VirtualClock, answers: dict[str, QueryResult | NoEvidence],
                 cost: float = 0.0) -> None:
        self.clock, self.answers, self.cost = clock, answers, cost
        self.budgets: list[float] = []

    def query(self, promql: str, at: float, *, budget: float | None = None
              ) -> QueryResult | NoEvidence:
        self.budgets.append(budget or 0.0)
        self.clock.advance(self.cost)
        key = "errors" if "5.." in promql else "p95" if "quantile" in promql else "requests"
        return self.answers[key]


def series(value: float, **labels: str) -> Series:
    return Series(tuple(sorted(labels.items())), (Sample(300.0, value),))


def test_read_window_sums_regions_and_takes_no_5xx_series_as_zero_errors() -> None:
    clock = VirtualClock(0.0)
    source = Scripted(clock, {
        "requests": QueryResult("q", (series(600, region="ams"), series(400, region="iad"))),
        "errors": NoEvidence("no_series", "none"),
        "p95": QueryResult("q", (series(0.2),))})
    signal = read_window(source, SETTINGS, "app", 0.0, 300.0, clock=clock)
    assert isinstance(signal, WindowSignal)
    assert (signal.requests, signal.errors, signal.p95) == (1000, 0, 0.2)
    assert [r.region for r in signal.regions] == ["ams", "iad"]


def test_read_window_shares_one_time_budget_across_its_queries() -> None:
    clock = VirtualClock(0.0)
    result = QueryResult("q", (series(1.0, region="ams"),))
    source = Scripted(clock, {"requests": result, "errors": result, "p95": result}, cost=6.0)
    signal = read_window(source, SETTINGS, "app", 0.0, 300.0, clock=clock)
    assert isinstance(signal, NoEvidence) and signal.reason == "timeout"
    assert source.budgets == [10.0, 4.0]  # the third query was never sent
    assert clock.now() <= SETTINGS.timeout + 6.0


def test_read_window_passes_a_real_failure_through() -> None:
    clock = VirtualClock(0.0)
    failed = NoEvidence("auth", "refused")
    source = Scripted(clock, {"requests": failed, "errors": failed, "p95": failed})
    assert read_window(source, SETTINGS, "app", 0.0, 300.0, clock=clock) == failed


class Ranged:
    def __init__(self, answers: dict[str, QueryResult | NoEvidence]) -> None:
        self.answers = answers

    def query_range(self, promql: str, start: float, end: float, step: float, *,
                    budget: float | None = None) -> QueryResult | NoEvidence:
        key = "errors" if "5.." in promql else "p95" if "quantile" in promql else "requests"
        assert "[60s]" in promql
        return self.answers[key]


def points(*pairs: tuple[float, float], **labels: str) -> Series:
    return Series(tuple(sorted(labels.items())), tuple(Sample(t, v) for t, v in pairs))


def test_the_timeline_gives_the_ratio_per_step_and_gaps_where_nothing_was_served() -> None:
    source = Ranged({
        "requests": QueryResult("q", (points((60, 90), (120, 0), (180, 100), region="ams"),
                                      points((60, 10), (120, 0), (180, 100), region="iad"))),
        "errors": QueryResult("q", (points((60, 5), (180, 50), region="ams"),)),
        "p95": QueryResult("q", (points((60, 0.1), (120, float("nan")), (180, 0.3)),))})
    timeline = read_timeline(source, SETTINGS, "app", 60, 180, clock=VirtualClock(0.0))
    assert isinstance(timeline, Timeline)
    assert timeline.error_ratio == ((60, 0.05), (120, None), (180, 0.25))
    assert timeline.p95 == ((60, 0.1), (120, None), (180, 0.3))


def test_the_timeline_is_no_evidence_when_the_endpoint_fails() -> None:
    down = NoEvidence("http_error", "503")
    timeline = read_timeline(Ranged({"requests": down, "errors": down, "p95": down}), SETTINGS,
                             "app", 0, 60, clock=VirtualClock(0.0))
    assert timeline == down
