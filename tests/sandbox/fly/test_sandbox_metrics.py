"""The sandbox's traffic model and its emulated Prometheus API, through the runbook's client."""

from __future__ import annotations

import math
from pathlib import Path

import httpx
import pytest
from incident_traffic import BAD, SETTINGS, TARGET, Incident, decisions

from rollback_helpers.clients.metrics import MetricsClient, NoEvidence, QueryResult
from rollback_helpers.clock import VirtualClock
from rollback_helpers.run.metrics_evidence import Timeline, read_timeline, watch_recovery
from rollback_helpers.sandbox.fly.metrics import evaluate, prometheus_handler
from rollback_helpers.sandbox.fly.traffic import (
    BUCKETS,
    COUNTER,
    SCRAPE_INTERVAL,
    Behaviour,
    Deploy,
    RawSeries,
    TrafficModel,
    TrafficProfile,
)
from rollback_helpers.ui.chart import Marker, incident_chart

T0 = 1_699_999_995.0  # on the 15 s scrape grid


@pytest.mark.parametrize(("profile", "track", "degraded", "outcome"), [
    ("healthy", "healthy", True, "recovered"),
    ("target-already-bad", "unhealthy", True, "recovered"),
    ("flapping", "healthy", True, "not_recovered"),
    ("partial-recovery", "healthy", True, "not_recovered"),
    ("slow", "healthy", True, "recovered"),
    ("no-traffic", "healthy", True, "inconclusive"),
    ("endpoint-down", "unknown", False, "no_evidence"),
    ("endpoint-slow", "unknown", False, "no_evidence"),
])
def test_each_profile_gives_its_verdicts(profile: str, track: str, degraded: bool,
                                         outcome: str) -> None:
    incident, clock = Incident(T0), VirtualClock(T0)
    model = incident.model(profile)
    record, signal, verdict = decisions(incident.windows(incident.emulated(model, clock), "app",
                                                         clock))
    assert (record.status, signal.degraded, verdict.outcome) == (track, degraded, outcome)


def test_partial_recovery_names_the_region_that_keeps_failing() -> None:
    incident, clock = Incident(T0), VirtualClock(T0)
    _, _, verdict = decisions(incident.windows(
        incident.emulated(incident.model("partial-recovery"), clock), "app", clock))
    assert [f.region for f in verdict.findings] == ["", "sjc"]


def test_the_slow_image_shows_as_latency_not_errors() -> None:
    incident, clock = Incident(T0), VirtualClock(T0)
    _, signal, _ = decisions(incident.windows(incident.emulated(incident.model("slow"), clock),
                                              "app", clock))
    assert [f.signal for f in signal.findings] == ["p95 latency"]
    assert signal.findings[0].value == pytest.approx(2.4, rel=0.05)


def test_a_slow_endpoint_costs_each_reading_its_budget_and_no_more() -> None:
    incident, clock = Incident(T0), VirtualClock(T0)
    windows = incident.windows(incident.emulated(incident.model("endpoint-slow"), clock), "app",
                               clock)
    assert all(isinstance(w, NoEvidence) and w.reason == "timeout" for w in windows.values())
    assert clock.now() - T0 == pytest.approx(4 * 10.0)


def test_the_counter_follows_the_image_that_runs() -> None:
    profile = TrafficProfile("t", {"good": Behaviour(0.0, 0.1), "bad": Behaviour(0.5, 0.1)},
                             rate=2.0, regions=("ams",))
    model = TrafficModel("app", [Deploy("good", T0), Deploy("bad", T0 + 600)], profile, T0 + 1200)
    errors = [s for s in model.named(COUNTER) if s.label("status") == "500"][0]
    times = list(errors.times)
    before = errors.values[times.index(T0 + 600)]
    after = errors.values[times.index(T0 + 1200)]
    assert before == 0.0
    assert after == pytest.approx(0.5 * 2.0 * 600)
    assert all(b >= a for a, b in zip(errors.values, errors.values[1:], strict=False))


def test_histogram_buckets_are_cumulative_and_the_quantile_is_the_behaviours_p95() -> None:
    profile = TrafficProfile("t", {"x": Behaviour(0.0, 0.2)}, regions=("ams",))
    model = TrafficModel("app", [Deploy("x", T0)], profile, T0 + 900)
    last = [s.values[-1] for s in model.named("fly_edge_http_response_time_seconds_bucket")]
    assert len(last) == len(BUCKETS) and last == sorted(last)
    at = T0 + 900
    p95 = evaluate(model, "histogram_quantile(0.95, sum by (le) (rate("
                   "fly_edge_http_response_time_seconds_bucket{app=\"app\"}[300s])))", at)
    assert list(p95.values())[0] == pytest.approx(0.2, rel=0.05)


def test_increase_extrapolates_to_the_window_as_prometheus_does() -> None:
    profile = TrafficProfile("t", {"x": Behaviour(0.0, 0.1)}, rate=1.0, regions=("ams",))
    model = TrafficModel("app", [Deploy("x", T0)], profile, T0 + 3600)
    at = T0 + 1800 + 7  # samples every 15 s; the window's edges fall between them
    found = evaluate(model, f'sum(increase({COUNTER}{{app="app"}}[300s]))', at)
    assert found[()] == pytest.approx(300.0)  # 1 request/s over 300 s, extrapolated
    assert evaluate(model, f'sum(rate({COUNTER}{{app="app"}}[300s]))', at)[()] == \
        pytest.approx(1.0)
    by_after = evaluate(model, f'sum(increase({COUNTER}{{app="app"}}[300s])) by (region)', at)
    assert by_after == {(("region", "ams"),): pytest.approx(300.0)}


def test_matchers_select_series() -> None:
    incident = Incident(T0)
    model = incident.model("healthy")
    at = incident.end
    every = evaluate(model, f'sum by (status) (increase({COUNTER}{{app="app"}}[300s]))', at)
    assert set(every) == {(("status", "200"),), (("status", "500"),)}
    assert evaluate(model, f'sum(increase({COUNTER}{{app="other"}}[300s]))', at) == {}
    five = evaluate(model, f'sum(increase({COUNTER}{{app="app",status!~"2.."}}[300s]))', at)
    assert five[()] == pytest.approx(every[(("status", "500"),)])


def test_the_api_answers_prometheus_json_and_refuses_what_it_cannot_parse() -> None:
    incident = Incident(T0)
    model = incident.model("healthy")
    client = incident.emulated(model, VirtualClock(T0))
    result = client.query_range(f'sum(rate({COUNTER}{{app="app"}}[60s]))', incident.end - 300,
                                incident.end, SCRAPE_INTERVAL * 4)
    assert isinstance(result, QueryResult) and len(result.series[0].samples) == 6
    assert all(math.isclose(s.value, 12.0, rel_tol=0.05) for s in result.series[0].samples)
    bad = client.query("topk(3, x)", incident.end)
    assert isinstance(bad, NoEvidence) and bad.reason == "http_error" and "bad_data" in bad.detail


def test_the_api_wants_a_bearer_token_like_flys() -> None:
    model = Incident(T0).model("healthy")
    client = MetricsClient(httpx.Client(transport=httpx.MockTransport(prometheus_handler(model))),
                           "http://sandbox/", None)
    refused = client.query("sum(x)", T0)
    assert isinstance(refused, NoEvidence) and refused.reason == "auth"


def test_the_images_are_the_deploy_timelines() -> None:
    incident = Incident(T0)
    model = incident.model("flapping")
    assert model.behaviour_at(incident.bad_at + 1)[0].error_ratio == 0.25
    first, _ = model.behaviour_at(incident.t0 + 1)
    returning, _ = model.behaviour_at(incident.rollback_at + 1)
    assert first.flap_period == 0 and returning.flap_period == 60.0
    assert {d.image for d in incident.timeline} == {TARGET, BAD}


def test_openmetrics_text_ends_with_eof_and_has_one_family_per_name() -> None:
    text = Incident(T0).model("healthy").openmetrics()
    assert text.endswith("# EOF\n")
    assert text.count("# TYPE ") == 4
    assert f'{COUNTER}{{app="app",region="ams",status="500"}} ' in text


def test_the_charts_timeline_reads_the_incident_from_the_emulation() -> None:
    incident, clock = Incident(T0), VirtualClock(T0)
    client = incident.emulated(incident.model("healthy"), clock)
    timeline = read_timeline(client, SETTINGS, "app", incident.bad_at - 600, incident.end,
                             clock=clock)
    assert isinstance(timeline, Timeline)
    ratios = dict(timeline.error_ratio)
    during = [v for t, v in ratios.items() if incident.bad_at + 60 < t < incident.rollback_at]
    after = [v for t, v in ratios.items() if t > incident.rollback_at + 60]
    assert during and all(v == pytest.approx(0.25, rel=0.01) for v in during)
    assert after and all(v == pytest.approx(0.002, rel=0.01) for v in after)


def watch(profile: str) -> tuple[str, list[float], float]:
    incident = Incident(T0)
    clock = VirtualClock(incident.rollback_at + 60)
    client = incident.emulated(incident.model(profile), clock)
    windows = incident.windows(client, "app", clock)
    polls: list[float] = []
    started = clock.now()
    verdict = watch_recovery(client, SETTINGS, "app", start=started, baseline=windows["baseline"],
                             during=windows["incident"], clock=clock,
                             on_progress=lambda p: polls.append(p.elapsed))
    return verdict.outcome, polls, clock.now() - started


def test_the_watch_polls_at_a_fixed_rate_and_judges_the_whole_window() -> None:
    outcome, polls, spent = watch("healthy")
    assert outcome == "recovered"
    assert polls == [30.0 * k for k in range(1, 11)]
    assert spent == SETTINGS.watch_window
    assert watch("partial-recovery")[0] == "not_recovered"


def test_a_metrics_endpoint_that_is_down_or_slow_ends_the_watch_within_its_timeout() -> None:
    for profile, cost in (("endpoint-down", 0.0), ("endpoint-slow", SETTINGS.timeout)):
        outcome, polls, spent = watch(profile)
        assert (outcome, polls) == ("no_evidence", [])
        assert spent == cost


DOCS_PICTURE = Path(__file__).resolve().parents[2] / "docs" / "images" / "incident-chart.png"


def test_the_chart_of_a_partial_recovery_from_the_emulation() -> None:
    """The chart drawn from the emulated timeline; docs/metrics.md shows it."""
    incident, clock = Incident(T0), VirtualClock(T0)
    client = incident.emulated(incident.model("partial-recovery"), clock)
    timeline = read_timeline(client, SETTINGS, "app", incident.bad_at - 900, incident.end,
                             clock=clock)
    assert isinstance(timeline, Timeline)
    windows = incident.windows(client, "app", clock)
    _, _, verdict = decisions(windows)
    verdict_at = incident.rollback_at + 60 + SETTINGS.watch_window
    png = incident_chart(timeline.error_ratio, timeline.p95, [
        Marker(incident.bad_at, "bad deploy"), Marker(incident.rollback_at - 120, "dispatch"),
        Marker(incident.rollback_at, "all machines on target"),
        Marker(verdict_at, f"verdict: {verdict.outcome.replace('_', ' ')}")],
        title="app: 5xx ratio and p95 over the incident (sandbox, partial recovery)")
    assert png.startswith(b"\x89PNG")
    after = [v for t, v in timeline.error_ratio if t > incident.rollback_at + 60]
    assert after and all(v == pytest.approx(0.1, rel=0.05) for v in after)  # sjc keeps failing
    DOCS_PICTURE.parent.mkdir(parents=True, exist_ok=True)
    DOCS_PICTURE.write_bytes(png)


def test_increase_counts_across_a_counter_reset_as_prometheus_does() -> None:
    """A counter that restarts from zero: the increase is last − first plus the value before
    each reset (``extrapolatedRate``), not a fall; a window without the reset is unaffected."""
    from rollback_helpers.sandbox.fly.metrics import _extrapolated

    times = tuple(float(t) for t in range(0, 75, 15))
    series = RawSeries(COUNTER, (("app", "a"),), times, (0.0, 10.0, 20.0, 5.0, 15.0))
    assert series.resets == (3,)
    assert _extrapolated(series, 0.0, 60.0, rate=False) == pytest.approx(35.0)
    assert _extrapolated(series, 0.0, 30.0, rate=False) == pytest.approx(20.0)
    assert _extrapolated(series, 45.0, 60.0, rate=True) == pytest.approx(10.0 / 15.0)
