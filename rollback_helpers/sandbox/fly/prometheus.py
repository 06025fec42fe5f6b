"""Fly's Prometheus endpoint in the sandbox world: ``https://api.fly.io/prometheus/<org>/``.

Each app's traffic follows the world's own deploy timeline — which image its machines
ran from when (``fly.apps.<app>.deploys``: the scenario's deploys at their records'
``deployed_at``, then every promotion the world performed, the drill's rollback
included, at the world's virtual time) — and the scenario's traffic profile (the
``traffic`` key, default ``healthy``; :mod:`.traffic` lists them). The queries are
answered by :func:`~.metrics.prometheus_handler` from a
:class:`~.traffic.TrafficModel` of the app the query names (``app="…"``).

A model is rebuilt only when the timeline changes or the world's clock passes the
quarter hour the last one was built up to, so a watch's polls stay cheap.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Callable
from typing import Any
from urllib.parse import parse_qs

import httpx

from rollback_helpers.sandbox.core.world import World
from rollback_helpers.sandbox.fly.metrics import prometheus_handler
from rollback_helpers.sandbox.fly.traffic import Deploy, TrafficModel, scenario_profile

PROMETHEUS_HOST = "api.fly.io"
PROMETHEUS_PREFIX = "/prometheus/"
DEFAULT_PROFILE = "healthy"
SPAN = 2.5 * 86400.0  # the model reaches this far back: the target's run and the baseline
CHUNK = 900.0         # a model is built up to the next quarter hour of the world's clock
_APP = re.compile(r'\bapp\s*=\s*"(?P<app>[^"\\]*)"')
_CACHE: dict[tuple[Any, ...], TrafficModel] = {}


def traffic_model(world: World, app_name: str) -> TrafficModel | None:
    """The model of ``app_name``'s traffic up to the world's now, or None for no such app."""
    app = world.state["fly"]["apps"].get(app_name)
    if app is None:
        return None
    end = math.ceil((world.now + 1) / CHUNK) * CHUNK
    timeline = _timeline(world, app, end - SPAN)
    traffic = app.get("traffic") or {}
    profile = scenario_profile(str(world.state["fly"].get("traffic", DEFAULT_PROFILE)),
                               target=str(traffic.get("target", "")),
                               bad=str(traffic.get("bad", "")))
    key = (app_name, tuple(timeline), profile.name, traffic.get("target"), traffic.get("bad"), end)
    if key not in _CACHE:
        if len(_CACHE) > 16:
            _CACHE.clear()
        _CACHE[key] = TrafficModel(app_name, timeline, profile, end)
    return _CACHE[key]


def _timeline(world: World, app: dict[str, Any], since: float) -> list[Deploy]:
    """The deploys after ``since``, led by the one running then."""
    deploys = sorted((float(d["at"]), str(d["image"])) for d in app.get("deploys", []))
    if not deploys:  # a world saved before timelines were kept: its running image, a day long
        image = next((m["image"] for m in app["machines"]), "")
        deploys = [(world.now - 86400.0, image)]
    earlier = [d for d in deploys if d[0] <= since]
    kept = [d for d in deploys if d[0] > since]
    if earlier:  # the image running when the span starts, from the start of the span;
        kept.insert(0, (since, earlier[-1][1]))  # an image seen only earlier is not "returning"
    return [Deploy(image, at) for at, image in kept]


def prometheus_response(world: World, request: httpx.Request, *,
                        wait: Callable[[float], None]) -> httpx.Response:
    """What ``https://api.fly.io/prometheus/<org>/api/v1/…`` answers in the world."""
    org, _, rest = request.url.path.removeprefix(PROMETHEUS_PREFIX).partition("/")
    query = _query(request)
    with world.transaction():
        world.advance()
        world.log_call("http", f"{request.method} https://{PROMETHEUS_HOST}{request.url.path} "
                       f"{query[:200]}", mutating=False)
        if org != world.state["fly"].get("org"):
            return _error(404, "not_found", f"no organization {org!r}")
        found = _APP.search(query)
        model = traffic_model(world, found["app"]) if found else None
    if model is None:
        if not rest.startswith("api/v1/query"):
            return _error(404, "not_found", f"no such endpoint {request.url.path}")
        kind = "matrix" if rest.startswith("api/v1/query_range") else "vector"
        return _json(200, {"status": "success", "data": {"resultType": kind, "result": []}})
    return prometheus_handler(model, wait=wait)(request)


def _query(request: httpx.Request) -> str:
    found = parse_qs(request.url.query.decode())
    if request.method == "POST":
        found.update(parse_qs(request.content.decode()))
    return found.get("query", [""])[-1]


def _error(status: int, kind: str, message: str) -> httpx.Response:
    return _json(status, {"status": "error", "errorType": kind, "error": message})


def _json(status: int, body: dict[str, Any]) -> httpx.Response:
    return httpx.Response(status, content=json.dumps(body),
                          headers={"Content-Type": "application/json"})
