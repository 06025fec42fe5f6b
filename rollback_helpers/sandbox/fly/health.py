"""The apps' readiness endpoints (``https://<app>.fly.dev/api/health/ready``).

An app answers from the images its started machines run: 200 with the running image's
digest when they are healthy, 503 when none is started or one runs an unhealthy image,
and a scenario's ``health_status`` overrides both. :mod:`..http` routes ``*.fly.dev`` here.
"""

from __future__ import annotations

import json

import httpx

from rollback_helpers.sandbox.core.world import World

HEALTH_PATH = "/api/health/ready"


def health_response(world: World, app_name: str, path: str) -> httpx.Response:
    """What the app's readiness endpoint answers, given the images its machines run."""
    with world.transaction():
        world.advance()
        world.log_call("http", f"GET https://{app_name}.fly.dev{path}", mutating=False)
        return _health(world, app_name, path)


def _health(world: World, app_name: str, path: str) -> httpx.Response:
    app = world.state["fly"]["apps"].get(app_name)
    if app is None:
        return httpx.Response(404, text="404 page not found\n")
    if path != HEALTH_PATH:
        return httpx.Response(404, json={"error": "not found"})
    started = [m for m in app["machines"] if m["state"] == "started"]
    images = world.state["fly"]["images"]
    if app.get("healthy_override") is not None:
        code = int(app["healthy_override"])
        return httpx.Response(code, json={"status": "ok" if code == 200 else "unavailable"})
    if not started:
        return httpx.Response(503, text="no started machines\n")
    broken = sorted({m["image"] for m in started if not images[m["image"]]["healthy"]})
    if broken:
        return httpx.Response(503, content=json.dumps({
            "status": "unavailable", "checks": {"app": f"crash loop in release {broken[0]}"}}).encode(),
            headers={"content-type": "application/json"})
    digest = images[started[0]["image"]]["digest"]
    return httpx.Response(200, json={"status": "ok", "checks": {"database": "ok", "app": "ok"},
                                     "image": digest})
