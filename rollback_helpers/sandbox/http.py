"""The sandbox's side of the httpx seam: GitHub's API and the apps' health endpoints.

:func:`sandbox_transport` returns an ``httpx.MockTransport`` that routes
``api.github.com`` to the simulated GitHub (:mod:`.github.api`), ``<app>.fly.dev``
to a health endpoint that answers from the image the app's machines run
(:mod:`.fly.health`) and ``api.fly.io/prometheus/<org>/`` to Fly's Prometheus query API,
answered from the apps' traffic (:mod:`.fly.prometheus`). Any other host is unreachable, as it
would be from a laptop. Each request first spends its seam's latency (:mod:`.core.latency`):
``github``, ``health`` or ``metrics``.
"""

from __future__ import annotations

import httpx

from rollback_helpers.clock import Clock
from rollback_helpers.sandbox.core.latency import spent
from rollback_helpers.sandbox.core.world import World
from rollback_helpers.sandbox.fly.health import health_response
from rollback_helpers.sandbox.fly.prometheus import PROMETHEUS_HOST, PROMETHEUS_PREFIX, prometheus_response
from rollback_helpers.sandbox.github.api import GitHubSandbox


def sandbox_transport(world: World, github_host: str = "api.github.com", *,
                      clock: Clock | None = None) -> httpx.MockTransport:
    """The world's hosts as one transport. ``clock``: the clock the client sleeps on, which
    GitHub's side moves the world forward to (see :class:`~.github.api.GitHubSandbox`)."""
    github = GitHubSandbox(world, clock=clock)
    wait = clock.sleep if clock is not None else world.sleep  # a slow endpoint's time passes

    def route(request: httpx.Request) -> httpx.Response:
        host = request.url.host
        if host == github_host:
            with spent(world, "github"):
                return github.handle(request)
        if host.endswith(".fly.dev"):
            with spent(world, "health"):
                return health_response(world, host.removesuffix(".fly.dev"), request.url.path)
        if host == PROMETHEUS_HOST and request.url.path.startswith(PROMETHEUS_PREFIX):
            with spent(world, "metrics"):
                return prometheus_response(world, request, wait=wait)
        raise httpx.ConnectError(f"sandbox: no route to host {host}", request=request)

    return httpx.MockTransport(route)
