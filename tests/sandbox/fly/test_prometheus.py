"""The world's Fly Prometheus endpoint: routed, per organisation, following the world's deploys."""

from __future__ import annotations

from pathlib import Path

from rollback_helpers.clients.metrics import MetricsClient, NoEvidence
from rollback_helpers.domain.metrics_settings import MetricsSettings
from rollback_helpers.run.metrics_evidence import read_window
from rollback_helpers.secrets import Secret
from rollback_helpers.testing import sandbox_backends

APP = "renewa-one-staging"


def client(http: object, org: str = "renewa") -> MetricsClient:
    return MetricsClient(http, f"https://api.fly.io/prometheus/{org}/",  # type: ignore[arg-type]
                         Secret("fly-sandbox-token"))


def test_the_timeline_is_the_records_then_the_worlds_own_promotions(tmp_path: Path) -> None:
    sandbox = sandbox_backends("default", tmp_path)
    app = sandbox.world.state["fly"]["apps"][APP]
    assert [d["image"] for d in app["deploys"]] == ["v39", "v40", "v41", "v42"]
    assert app["traffic"] == {"bad": "v42", "target": "v41"}
    settings = MetricsSettings()
    bad_at = app["deploys"][-1]["at"]
    metrics = client(sandbox.http)
    before = read_window(metrics, settings, APP, bad_at - 1800, bad_at, clock=sandbox.clock)
    since = read_window(metrics, settings, APP, bad_at, sandbox.world.now, clock=sandbox.clock)
    assert not isinstance(before, NoEvidence) and not isinstance(since, NoEvidence)
    assert before.error_ratio is not None and before.error_ratio < 0.01
    assert since.error_ratio is not None and since.error_ratio > 0.2


def test_another_organisation_is_not_found_and_other_hosts_stay_unreachable(
        tmp_path: Path) -> None:
    sandbox = sandbox_backends("default", tmp_path)
    settings = MetricsSettings()
    now = sandbox.world.now
    other = read_window(client(sandbox.http, "someone-else"), settings, APP, now - 60, now,
                        clock=sandbox.clock)
    assert isinstance(other, NoEvidence) and other.reason == "http_error" and "404" in other.detail
    elsewhere = MetricsClient(sandbox.http, "https://prometheus.example/", None)
    found = read_window(elsewhere, settings, APP, now - 60, now, clock=sandbox.clock)
    assert isinstance(found, NoEvidence) and found.reason == "unreachable"


def test_an_unknown_app_has_no_series(tmp_path: Path) -> None:
    sandbox = sandbox_backends("default", tmp_path)
    now = sandbox.world.now
    found = client(sandbox.http).query('sum(increase(fly_edge_http_responses_count'
                                       '{app="nobody"}[60s]))', now)
    assert isinstance(found, NoEvidence) and found.reason == "no_series"
