"""Fly's metrics (or any Prometheus), read through the HTTP seam.

:class:`MetricsClient` speaks the Prometheus HTTP query API (``/api/v1/query``,
``/api/v1/query_range``) over an injected ``httpx.Client``: Fly's managed
Prometheus at ``https://api.fly.io/prometheus/<org-slug>/`` by default, or any
Prometheus-compatible base URL (a team's own Prometheus or VictoriaMetrics).

Metrics are evidence, never a gate that can break a rollback by itself: every
failure — no token, 4xx/5xx (with the API's own error JSON), a timeout, an
unreachable host, an answer that is not the API's JSON, no series at all —
comes back as a :class:`NoEvidence` value naming why, never as an exception.
Each call has a total time budget, also sent to the server as its ``timeout``.

The token (``FLY_API_TOKEN``, else ``flyctl auth token`` through the command
seam) is held as a :class:`~rollback_helpers.secrets.Secret` and appears only in
the ``Authorization`` header; no result or reason ever carries it.
"""

from __future__ import annotations

import math
import shutil
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Literal

import httpx

from rollback_helpers.clients.cli_token import FoundToken, token_from_env_or_cli
from rollback_helpers.clients.commands import CommandRunner
from rollback_helpers.secrets import Secret, redact

FLY_PROMETHEUS = "https://api.fly.io/prometheus/{org}/"
FLY_TOKEN_VAR = "FLY_API_TOKEN"
FLYCTL_SOURCE = "flyctl auth token"
DEFAULT_BUDGET = 10.0  # seconds one call may cost the run, all phases together

Reason = Literal["no_token", "auth", "http_error", "timeout", "unreachable", "bad_answer",
                 "no_series"]


@dataclass(frozen=True)
class Sample:
    time: float   # seconds since the epoch
    value: float  # NaN when Prometheus answers "NaN" (0/0: no traffic in a quantile)


@dataclass(frozen=True)
class Series:
    labels: tuple[tuple[str, str], ...]  # sorted (name, value) pairs, without __name__
    samples: tuple[Sample, ...]          # one for an instant query, many for a range

    def label(self, name: str) -> str:
        return dict(self.labels).get(name, "")

    @property
    def last(self) -> float:
        return self.samples[-1].value if self.samples else math.nan


@dataclass(frozen=True)
class QueryResult:
    query: str
    series: tuple[Series, ...]


@dataclass(frozen=True)
class NoEvidence:
    """Why metrics could not say anything: the run falls back to its other checks."""

    reason: Reason
    detail: str  # one line for the operator: what failed and what to do; never a secret

    def __post_init__(self) -> None:  # a server may echo what it was sent: mask it here, once
        object.__setattr__(self, "detail", redact(self.detail))

    def __str__(self) -> str:
        return f"no metrics evidence ({self.reason}): {self.detail}"


def find_fly_token(environ: Mapping[str, str], runner: CommandRunner, *, flyctl: str = "flyctl",
                   which: Callable[..., str | None] = shutil.which) -> FoundToken | None:
    """``FLY_API_TOKEN``, else ``flyctl auth token``; None if neither gives one."""
    return token_from_env_or_cli(environ, runner, (FLY_TOKEN_VAR,), flyctl, which=which)


def metrics_base_url(url: str, org: str) -> str:
    """The configured URL, else Fly's endpoint for ``org``; always ending in ``/``."""
    base = url or FLY_PROMETHEUS.format(org=org)
    return base if base.endswith("/") else base + "/"


def is_fly_endpoint(base_url: str) -> bool:
    return base_url.startswith("https://api.fly.io/prometheus/")


class MetricsClient:
    """``query`` and ``query_range`` of the Prometheus HTTP API; failures are values."""

    def __init__(self, http: httpx.Client, base_url: str, token: Secret | None, *,
                 budget: float = DEFAULT_BUDGET) -> None:
        self._http = http
        self.base_url = base_url if base_url.endswith("/") else base_url + "/"
        self._token = token
        self.budget = budget

    def query(self, promql: str, at: float, *, budget: float | None = None
              ) -> QueryResult | NoEvidence:
        """An instant query evaluated at ``at`` (seconds since the epoch)."""
        return self._call("api/v1/query", promql, {"time": _ts(at)}, budget)

    def query_range(self, promql: str, start: float, end: float, step: float, *,
                    budget: float | None = None) -> QueryResult | NoEvidence:
        """A range query from ``start`` to ``end`` every ``step`` seconds."""
        params = {"start": _ts(start), "end": _ts(end), "step": _ts(step)}
        return self._call("api/v1/query_range", promql, params, budget)

    def _call(self, path: str, promql: str, params: dict[str, str], budget: float | None
              ) -> QueryResult | NoEvidence:
        seconds = self.budget if budget is None else budget
        if seconds <= 0:
            return NoEvidence("timeout", f"no time left to ask {self._where()}.")
        headers = {"Accept": "application/json"}
        if self._token is not None:
            headers["Authorization"] = f"Bearer {self._token.reveal()}"
        elif is_fly_endpoint(self.base_url):
            return NoEvidence("no_token", f"no Fly token found ({FLY_TOKEN_VAR} is unset and "
                              f"`{FLYCTL_SOURCE}` gave none). Run `flyctl auth login` or export "
                              f"{FLY_TOKEN_VAR}, then re-run.")
        form = {"query": promql, "timeout": f"{seconds:g}s", **params}
        try:
            response = self._http.post(self.base_url + path, data=form, headers=headers,
                                       timeout=httpx.Timeout(seconds))
        except httpx.TimeoutException:
            return NoEvidence("timeout", f"{self._where()} did not answer within {seconds:g} s.")
        except httpx.HTTPError as exc:
            return NoEvidence("unreachable", f"{self._where()} is unreachable "
                              f"({type(exc).__name__}). Check the metrics URL in the configuration.")
        return self._parse(promql, response)

    def _parse(self, promql: str, response: httpx.Response) -> QueryResult | NoEvidence:
        try:
            body: Any = response.json()
        except ValueError:
            body = None
        if response.status_code in (401, 403):
            return NoEvidence("auth", f"{self._where()} refused the token "
                              f"({response.status_code}{_api_error(body)}). Check that the token "
                              "may read the organisation's metrics.")
        if response.status_code >= 400 or not isinstance(body, dict) \
                or body.get("status") != "success":
            if response.status_code < 400 and not isinstance(body, dict):
                return NoEvidence("bad_answer", f"{self._where()} did not answer with the "
                                  "Prometheus API's JSON. Check the metrics URL.")
            return NoEvidence("http_error", f"{self._where()} answered "
                              f"{response.status_code}{_api_error(body)}.")
        try:
            series = _series(body["data"])
        except (KeyError, TypeError, ValueError):
            return NoEvidence("bad_answer", f"{self._where()} answered JSON that is not a "
                              "Prometheus query result.")
        if not series:
            return NoEvidence("no_series", f"no series for `{promql}`: the app served no "
                              "traffic in the window, or the query names a metric that is absent.")
        return QueryResult(promql, series)

    def _where(self) -> str:
        return f"the metrics endpoint {self.base_url}"


def _ts(seconds: float) -> str:
    return f"{seconds:.3f}"


def _api_error(body: Any) -> str:
    if isinstance(body, dict) and body.get("error"):
        kind = body.get("errorType") or "error"
        return f", {kind}: {str(body['error'])[:300]}"
    return ""


def _series(data: Mapping[str, Any]) -> tuple[Series, ...]:
    kind = data["resultType"]
    if kind not in ("vector", "matrix"):
        raise ValueError(kind)
    found = []
    for item in data["result"]:
        labels = tuple(sorted((str(k), str(v)) for k, v in item["metric"].items()
                              if k != "__name__"))
        pairs = [item["value"]] if kind == "vector" else item["values"]
        samples = tuple(Sample(float(t), float(v)) for t, v in pairs)
        found.append(Series(labels, samples))
    return tuple(found)
