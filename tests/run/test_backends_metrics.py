"""Backends.metrics: the metrics client over the backend's own HTTP seam, with Fly's token."""

from __future__ import annotations

import httpx

from rollback_helpers.clients.metrics import NoEvidence, QueryResult
from rollback_helpers.clock import VirtualClock
from rollback_helpers.domain.config import EnvConfig, RunbookConfig
from rollback_helpers.domain.metrics_settings import MetricsSettings
from rollback_helpers.run.backends import Backends
from rollback_helpers.testing import ScriptedRunner

TOKEN = "fm2_fromtheenvironment0123456789"


def backends(seen: list[httpx.Request]) -> Backends:
    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(200, json={"status": "success", "data": {
            "resultType": "vector", "result": [{"metric": {}, "value": [0, "1"]}]}})

    return Backends("real", httpx.Client(transport=httpx.MockTransport(handler)), ScriptedRunner(),
                    VirtualClock(0.0), None)


def test_the_real_backend_asks_flys_prometheus_for_the_org_with_the_environments_token() -> None:
    seen: list[httpx.Request] = []
    client = backends(seen).metrics(RunbookConfig(), "staging", {"FLY_API_TOKEN": TOKEN})
    assert isinstance(client.query("up", 0), QueryResult)
    assert str(seen[0].url) == "https://api.fly.io/prometheus/renewa/api/v1/query"
    assert seen[0].headers["authorization"] == f"Bearer {TOKEN}"


def test_an_environments_own_prometheus_and_timeout_come_from_its_metrics_table() -> None:
    seen: list[httpx.Request] = []
    env = EnvConfig("staging", "app", metrics=MetricsSettings(url="http://prom:9090", timeout=3.0))
    cfg = RunbookConfig(environments={"staging": env})
    client = backends(seen).metrics(cfg, "staging", {"FLY_API_TOKEN": TOKEN})
    assert client.budget == 3.0
    assert isinstance(client.query("up", 0), QueryResult)
    assert str(seen[0].url) == "http://prom:9090/api/v1/query"
    assert "authorization" not in seen[0].headers  # a Fly token never leaves for another host


def test_no_fly_token_is_no_evidence_and_nothing_is_sent() -> None:
    seen: list[httpx.Request] = []
    client = backends(seen).metrics(RunbookConfig(), "staging", {"PATH": "/nonexistent"})
    answer = client.query("up", 0)
    assert isinstance(answer, NoEvidence) and answer.reason == "no_token"
    assert seen == []
