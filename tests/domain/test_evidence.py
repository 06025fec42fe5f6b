"""The metrics verdicts: incident signal, the target's track record, recovery after a rollback."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import ValidationError

from rollback_helpers.clients.metrics import NoEvidence
from rollback_helpers.domain.config import load_config
from rollback_helpers.domain.evidence import (
    RegionSignal,
    WindowSignal,
    bounds,
    evidence_rows,
    incident_signal,
    judge_track_record,
    recovery_verdict,
    render_query,
)
from rollback_helpers.domain.metrics_settings import MetricsSettings
from rollback_helpers.errors import ConfigError

SETTINGS = MetricsSettings()


def window(requests: float, errors: float, p95: float | None = 0.1, *,
           regions: tuple[RegionSignal, ...] = ()) -> WindowSignal:
    return WindowSignal(0.0, 300.0, requests, errors, p95, regions)


BASELINE = window(10_000, 20, 0.12)  # 0.2 % 5xx, 120 ms


def test_recovered_when_errors_and_latency_are_back_within_the_baseline_bounds() -> None:
    verdict = recovery_verdict(BASELINE, window(5000, 2500, 0.8), window(1000, 5, 0.15), SETTINGS)
    assert verdict.outcome == "recovered"
    assert verdict.findings == ()
    assert "baseline" in verdict.reason


def test_not_recovered_names_the_5xx_ratio_still_above_baseline_plus_margin() -> None:
    verdict = recovery_verdict(BASELINE, window(5000, 2500), window(1000, 50, 0.12), SETTINGS)
    assert verdict.outcome == "not_recovered"
    assert verdict.bad_signals == ("5xx ratio 5.00% > 1.20%",)


def test_not_recovered_names_the_p95_above_baseline_times_factor() -> None:
    verdict = recovery_verdict(BASELINE, window(5000, 0, 3.0), window(1000, 1, 0.5), SETTINGS)
    assert verdict.outcome == "not_recovered"
    assert [f.signal for f in verdict.findings] == ["p95 latency"]
    assert "500 ms > 180 ms" in verdict.reason


def test_one_failing_region_is_named_even_when_the_others_dilute_the_total() -> None:
    regions = (RegionSignal("ams", 400, 0), RegionSignal("iad", 400, 0), RegionSignal("sjc", 400, 60))
    verdict = recovery_verdict(BASELINE, window(5000, 2500),
                               window(1200, 60, 0.12, regions=regions), SETTINGS)
    assert verdict.outcome == "not_recovered"
    assert "5xx ratio in sjc 15.00% > 1.20%" in verdict.bad_signals


def test_a_quiet_region_is_not_judged_alone() -> None:
    regions = (RegionSignal("ams", 990, 0), RegionSignal("sjc", 10, 5))  # 10 < region_min_requests
    verdict = recovery_verdict(BASELINE, window(5000, 2500),
                               window(1000, 5, 0.12, regions=regions), SETTINGS)
    assert verdict.outcome == "recovered"


def test_too_little_traffic_is_inconclusive_never_recovered() -> None:
    verdict = recovery_verdict(BASELINE, window(5000, 2500), window(12, 0, 0.1), SETTINGS)
    assert verdict.outcome == "inconclusive"
    assert "12 requests" in verdict.reason


def test_unreadable_metrics_fall_back_to_the_other_checks_with_the_reason() -> None:
    down = NoEvidence("http_error", "the metrics endpoint answered 503.")
    verdict = recovery_verdict(BASELINE, down, down, SETTINGS)
    assert verdict.outcome == "no_evidence"
    assert "503" in verdict.reason and "health checks" in verdict.reason


def test_without_a_usable_baseline_the_absolute_bounds_apply() -> None:
    limits = bounds(window(10, 0, 0.1), SETTINGS)
    assert (limits.error_ratio, limits.p95, limits.from_baseline) == (0.02, 1.0, False)
    verdict = recovery_verdict(NoEvidence("timeout", "slow"), window(10, 5),
                               window(1000, 30, 0.2), SETTINGS)
    assert verdict.outcome == "not_recovered"
    assert "absolute bounds" in verdict.reason


def test_the_incident_signal_names_what_the_bad_deploy_broke() -> None:
    signal = incident_signal(BASELINE, window(5000, 1000, 0.13), SETTINGS)
    assert signal.degraded
    assert [f.signal for f in signal.findings] == ["5xx ratio"]
    assert not incident_signal(BASELINE, window(5000, 10, 0.13), SETTINGS).degraded


@pytest.mark.parametrize(("requests", "errors", "status"), [
    (10_000, 800, "unhealthy"), (10_000, 100, "healthy"), (30, 30, "unknown")])
def test_the_targets_track_record(requests: float, errors: float, status: str) -> None:
    record = judge_track_record(window(requests, errors), SETTINGS, "app@sha256:aaa")
    assert record.status == status
    assert "app@sha256:aaa" in record.reason


def test_the_settings_refuse_nonsense() -> None:
    with pytest.raises(ValidationError):
        MetricsSettings(max_error_ratio=1.5)
    with pytest.raises(ValidationError):
        MetricsSettings(p95_factor=0.5)
    with pytest.raises(ValidationError):
        MetricsSettings(unknown_key=1)  # type: ignore[call-arg]


def test_queries_are_filled_with_the_app_and_the_window_in_seconds() -> None:
    query = render_query(SETTINGS.errors_query, "renewa-one", 299.6)
    assert '{app="renewa-one",status=~"5.."}[300s]' in query


def test_evidence_rows_show_before_during_and_after_or_why_not() -> None:
    rows = evidence_rows({"before": BASELINE, "after": NoEvidence("timeout", "slow")})
    assert rows[0] == {"window": "before", "requests": "10000", "5xx ratio": "0.20%",
                       "p95": "120 ms", "note": ""}
    assert rows[1]["5xx ratio"] == "—" and "timeout" in rows[1]["note"]


def test_an_environments_metrics_table_loads_from_the_config_file(tmp_path: Path) -> None:
    path = tmp_path / "runbook.toml"
    path.write_text('[environments.production.metrics]\nurl = "http://prom:9090"\n'
                    "watch_window = 600.0\nmax_error_ratio = 0.05\n")
    cfg = load_config(environ={}, config_file=path)
    metrics = cfg.env("production").metrics
    assert (metrics.url, metrics.watch_window, metrics.max_error_ratio) == \
        ("http://prom:9090", 600.0, 0.05)
    assert metrics.p95_factor == SETTINGS.p95_factor  # the rest keep their defaults
    assert cfg.env("staging").metrics == SETTINGS


def test_a_bad_metrics_value_in_the_config_file_names_the_key(tmp_path: Path) -> None:
    path = tmp_path / "runbook.toml"
    path.write_text("[environments.production.metrics]\nmax_error_ratio = 2.0\n")
    with pytest.raises(ConfigError, match="max_error_ratio"):
        load_config(environ={}, config_file=path)
