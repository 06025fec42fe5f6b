"""The Prometheus HTTP API client: typed series, every failure a NoEvidence, the token hidden."""

from __future__ import annotations

import json
from collections.abc import Callable

import httpx
import pytest

from rollback_helpers.clients.commands import CommandResult
from rollback_helpers.clients.metrics import (
    MetricsClient,
    NoEvidence,
    QueryResult,
    find_fly_token,
    metrics_base_url,
)
from rollback_helpers.secrets import Secret
from rollback_helpers.testing import ScriptedRunner

TOKEN = Secret("fm2_metricstoken0123456789abcdef")
Handler = Callable[[httpx.Request], httpx.Response]


def client(handler: Handler, base: str = "https://prom.example/", token: Secret | None = TOKEN,
           budget: float = 10.0) -> MetricsClient:
    return MetricsClient(httpx.Client(transport=httpx.MockTransport(handler)), base, token,
                         budget=budget)


def answer(kind: str, result: list[dict[str, object]], status: int = 200) -> httpx.Response:
    return httpx.Response(status, json={"status": "success",
                                        "data": {"resultType": kind, "result": result}})


def test_an_instant_query_is_posted_with_the_bearer_token_and_parsed_into_series() -> None:
    seen: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return answer("vector", [{"metric": {"__name__": "x", "region": "ams"},
                                  "value": [1700000000.5, "12.5"]},
                                 {"metric": {"region": "iad"}, "value": [1700000000.5, "NaN"]}])

    result = client(handler).query('sum by (region) (x{app="a"})', 1700000000.5)
    assert isinstance(result, QueryResult)
    assert [s.label("region") for s in result.series] == ["ams", "iad"]
    assert result.series[0].last == 12.5 and result.series[0].labels == (("region", "ams"),)
    assert result.series[1].last != result.series[1].last  # NaN stays NaN
    request = seen[0]
    assert request.url.path == "/api/v1/query"
    assert request.headers["authorization"] == f"Bearer {TOKEN.reveal()}"
    form = dict(pair.split("=", 1) for pair in request.content.decode().split("&"))
    assert form["time"] == "1700000000.500" and form["timeout"] == "10s"


def test_a_range_query_gives_every_sample() -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        assert request.url.path == "/prometheus/org/api/v1/query_range"
        return answer("matrix", [{"metric": {}, "values": [[10, "1"], [40, "2"]]}])

    result = client(handler, "https://prom.example/prometheus/org").query_range("x", 10, 40, 30)
    assert isinstance(result, QueryResult)
    assert [(s.time, s.value) for s in result.series[0].samples] == [(10.0, 1.0), (40.0, 2.0)]


@pytest.mark.parametrize(("response", "reason", "shown"), [
    (httpx.Response(401, json={"status": "error", "errorType": "unauthorized",
                               "error": "bad token"}), "auth", "401, unauthorized: bad token"),
    (httpx.Response(422, json={"status": "error", "errorType": "execution",
                               "error": "query timed out"}), "http_error", "422, execution"),
    (httpx.Response(503, text="<html>down</html>"), "http_error", "answered 503"),
    (httpx.Response(200, text="<html>login</html>"), "bad_answer", "Prometheus API's JSON"),
    (httpx.Response(200, json={"status": "success", "data": {"resultType": "scalar",
                                                             "result": [1, "2"]}}),
     "bad_answer", "not a Prometheus query result"),
    (answer("vector", []), "no_series", "no series for `x`"),
])
def test_every_failure_is_a_typed_reason_not_an_exception(response: httpx.Response, reason: str,
                                                            shown: str) -> None:
    result = client(lambda request: response).query("x", 0)
    assert isinstance(result, NoEvidence)
    assert result.reason == reason
    assert shown in str(result)
    assert TOKEN.reveal() not in str(result)


def test_a_timeout_costs_at_most_the_budget_and_says_so() -> None:
    budgets: list[object] = []

    def handler(request: httpx.Request) -> httpx.Response:
        budgets.append(request.extensions["timeout"])
        raise httpx.ReadTimeout("slow", request=request)

    result = client(handler, budget=2.5).query("x", 0)
    assert isinstance(result, NoEvidence) and result.reason == "timeout"
    assert "2.5 s" in result.detail
    assert budgets == [{"connect": 2.5, "read": 2.5, "write": 2.5, "pool": 2.5}]


def test_an_unreachable_endpoint_is_named() -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("refused", request=request)

    result = client(handler).query("x", 0)
    assert isinstance(result, NoEvidence) and result.reason == "unreachable"
    assert "https://prom.example/" in result.detail


def test_no_time_left_sends_nothing() -> None:
    sent: list[httpx.Request] = []
    result = client(lambda request: sent.append(request) or answer("vector", [])).query(
        "x", 0, budget=0)
    assert isinstance(result, NoEvidence) and result.reason == "timeout"
    assert sent == []


def test_flys_endpoint_without_a_token_is_no_evidence_and_nothing_is_sent() -> None:
    sent: list[httpx.Request] = []
    base = metrics_base_url("", "renewa")
    assert base == "https://api.fly.io/prometheus/renewa/"
    result = client(lambda request: sent.append(request) or answer("vector", []), base,
                    token=None).query("x", 0)
    assert isinstance(result, NoEvidence) and result.reason == "no_token"
    assert "FLY_API_TOKEN" in result.detail and sent == []


def test_a_teams_own_prometheus_may_need_no_token() -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        assert "authorization" not in request.headers
        return answer("vector", [{"metric": {}, "value": [0, "1"]}])

    assert isinstance(client(handler, metrics_base_url("http://prom:9090", "x"), token=None)
                      .query("x", 0), QueryResult)


def test_the_fly_token_comes_from_the_environment_first() -> None:
    runner = ScriptedRunner({})
    found = find_fly_token({"FLY_API_TOKEN": "fm2_fromtheenvironment123"}, runner)
    assert found is not None and found.source == "FLY_API_TOKEN"
    assert found.secret.reveal() == "fm2_fromtheenvironment123"
    assert "fromtheenvironment" not in repr(found)


def test_the_fly_token_else_comes_from_flyctl_auth_token() -> None:
    """The flyctl found on the environment's PATH is the one asked."""
    argv = ("/usr/bin/flyctl", "auth", "token")
    runner = ScriptedRunner({argv: CommandResult(argv, 0, "fm2_fromflyctl0123456789\n", "")})
    found = find_fly_token({"PATH": "/usr/bin"}, runner, which=lambda *a, **k: "/usr/bin/flyctl")
    assert found is not None and found.source == "flyctl auth token"
    assert found.secret.reveal() == "fm2_fromflyctl0123456789"
    failed = ScriptedRunner({argv: CommandResult(argv, 1, "", "not logged in")})
    assert find_fly_token({}, failed, which=lambda *a, **k: "/usr/bin/flyctl") is None
    assert find_fly_token({}, runner, which=lambda *a, **k: None) is None


def test_the_answer_json_is_what_prometheus_documents() -> None:
    body = json.loads(answer("vector", []).content)
    assert set(body) == {"status", "data"} and body["data"]["resultType"] == "vector"


def test_a_token_the_server_echoes_back_never_reaches_the_reason() -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(401, json={"status": "error", "errorType": "unauthorized",
                                         "error": f"bad {request.headers['authorization']}"})

    result = client(handler).query("x", 0)
    assert isinstance(result, NoEvidence) and result.reason == "auth"
    assert TOKEN.reveal() not in str(result) and TOKEN.reveal() not in repr(result)
    assert "****" in result.detail
