"""The sandbox's GitHub: ``httpx.Request`` in, ``httpx.Response`` out, from the world's state.

It serves the handful of REST endpoints the runbook uses with GitHub's status
codes, headers (``x-ratelimit-*``, ``link``, ``etag``) and JSON shapes, so the
client code that talks to it is the code that talks to api.github.com. Faults
(bad token, primary/secondary rate limits, 502s) come from ``state["github"]``.
The sandbox adds (comments, labels, runs) and deletes only git references.

This module is the router: authentication, faults (including those that lose
the answer to an accepted request: ``dispatch_after_accept``,
``comment_after_accept``), rate limits and the standard headers. Each request
is one transaction of the world. The endpoints live by concern in
:mod:`.issues` (issues, comments, labels, transfers),
:mod:`.actions` (workflow dispatch and runs, whose ``workflow_run_*``
event handlers it registers), :mod:`.contents` and :mod:`.git`
(blobs, trees, commits, references: the environment lock), with what they share
in :mod:`.common`.
"""

from __future__ import annotations

import re
from typing import Any

import httpx

from rollback_helpers.clock import Clock
from rollback_helpers.sandbox.core.world import World
from rollback_helpers.sandbox.github import (
    actions,
    contents,
    forgers,
    git,
    issues,
    records,
    repo,
    team,
)
from rollback_helpers.sandbox.github.common import Call, Route, error, json_response, user_json

RATE_LIMIT = 5000
EVENT_MODULES = (forgers,)  # no routes: its events (forgers acting) register on import
_COMMENTS = re.compile(r"/issues/\d+/comments$")
API_VERSIONS = ("2022-11-28", "2026-03-10")
MUTATING = frozenset({"POST", "PATCH", "PUT", "DELETE"})
ROUTES: list[Route] = [*issues.ROUTES, *actions.ROUTES, *records.ROUTES,
                       *contents.ROUTES, *repo.ROUTES, *git.ROUTES,
                       *team.ROUTES]


class GitHubSandbox:
    """Answers GitHub REST requests from ``world.state["github"]``.

    ``clock``, if given, is the clock the client sleeps on: the world's time is
    moved forward to it before each request, so waits on that clock let
    scheduled events (a run starting, finishing) come due.
    """

    def __init__(self, world: World, clock: Clock | None = None) -> None:
        self.world = world
        self.clock = clock

    def __call__(self, request: httpx.Request) -> httpx.Response:
        return self.handle(request)

    def handle(self, request: httpx.Request) -> httpx.Response:
        """Answer one request as one transaction of the world (see :mod:`..core.world`).

        An accepted request whose answer a fault then loses is saved and logged
        first, so the client's failure is ambiguous exactly as on the real service.
        """
        with self.world.transaction() as world:
            response = self._answer(request)
            lost = self._lost_answer(request, response)
            path = _api_path(request.url.path)
            world.log_call("github", f"{request.method} {path}",
                           mutating=request.method in MUTATING, status=response.status_code,
                           **({"query": request.url.query.decode()} if request.url.query else {}),
                           **({"fault": f"accepted, then {lost}"} if lost else {}))
        if lost == "502":
            return httpx.Response(502, text="<html><body><h1>502 Bad Gateway</h1></body></html>",
                                  headers={"content-type": "text/html"})
        if lost == "timeout":
            raise httpx.ReadTimeout("The read operation timed out", request=request)
        if lost == "drop":
            raise httpx.RemoteProtocolError("Server disconnected without sending a response.",
                                            request=request)
        return response

    def _answer(self, request: httpx.Request) -> httpx.Response:
        world = self.world
        if self.clock is not None and self.clock.now() > world.now:
            world.state["now"] = self.clock.now()
        world.advance()
        gh = world.state["github"]
        gh["request_count"] = ordinal = int(gh.get("request_count", 0)) + 1
        response = self._refusal(request, ordinal) or self._route(request)
        for name, value in _standard_headers(world, counted=response.status_code != 304).items():
            response.headers.setdefault(name, value)  # a rate-limit refusal sets its own
        return response

    def _lost_answer(self, request: httpx.Request, response: httpx.Response) -> str:
        """The armed ``<kind>_after_accept`` fault this accepted request fires (once), if any."""
        if request.method != "POST" or response.status_code not in (200, 201, 204):
            return ""
        path = _api_path(request.url.path)
        kind = "dispatch" if path.endswith("/dispatches") else \
            "comment" if _COMMENTS.search(path) else ""
        faults = self.world.state["github"].get("faults", {})
        lost = str(faults.get(f"{kind}_after_accept", "")) if kind else ""
        if lost:
            faults[f"{kind}_after_accept"] = ""  # one lost answer, then GitHub behaves
        return lost

    # -- faults ----------------------------------------------------------------
    def _refusal(self, request: httpx.Request, ordinal: int) -> httpx.Response | None:
        gh = self.world.state["github"]
        faults = gh.get("faults", {})
        if ordinal in faults.get("server_error_on", []):
            return httpx.Response(502, text="<html><body><h1>502 Bad Gateway</h1></body></html>",
                                  headers={"content-type": "text/html"})
        if not _authorised(request, gh):
            return error(401, "Bad credentials", "authentication")
        return self._primary_limit(ordinal) or self._secondary_limit(ordinal)

    def _primary_limit(self, ordinal: int) -> httpx.Response | None:
        until = self._limited_until(ordinal, "rate_limit_on", "limited_until", 60)
        if until is None:
            return None
        response = error(403, "API rate limit exceeded for user ID 1. If you reach out to GitHub "
                         "Support for help, please include the request ID.", "rate-limits")
        response.headers.update({"x-ratelimit-remaining": "0",
                                 "x-ratelimit-reset": str(int(until))})
        return response

    def _secondary_limit(self, ordinal: int) -> httpx.Response | None:
        until = self._limited_until(ordinal, "secondary_limit_on", "secondary_until", 30)
        if until is None:
            return None
        response = error(403, "You have exceeded a secondary rate limit. Please wait a few "
                         "minutes before you try again.", "rate-limits#secondary-rate-limits")
        response.headers["retry-after"] = str(max(1, int(until - self.world.caller_now())))
        return response

    def _limited_until(self, ordinal: int, fault: str, key: str, seconds: float) -> float | None:
        """When a rate limit lifts: the request numbered in ``faults[fault]`` starts one of
        ``seconds``, kept in ``state["github"][key]``; None when no limit is on."""
        gh, now = self.world.state["github"], self.world.caller_now()
        if ordinal in gh["faults"].get(fault, []):
            gh[key] = now + seconds
        until = float(gh.get(key, 0))
        return until if now < until else None

    # -- routing -----------------------------------------------------------------
    def _route(self, request: httpx.Request) -> httpx.Response:
        version = request.headers.get("x-github-api-version", API_VERSIONS[0])
        if version not in API_VERSIONS:
            return error(400, f"API version {version} is not supported.", "about-the-rest-api")
        path = _api_path(request.url.path)
        if path == "/user" and request.method == "GET":  # the token's account
            api = f"{request.url.scheme}://{request.url.netloc.decode()}"
            return json_response(200, {**user_json(self.world.state["github"].get(
                "viewer", "runbook-operator"), api), "type": "User"})
        for method, pattern, handler in ROUTES:
            match = pattern.fullmatch(path)
            if match and method == request.method:
                call = Call(self.world, request, match)
                if match["repo"] != call.gh["repo"]:
                    break
                return handler(call)
        return error(404, "Not Found", "")


# -- paths, auth and headers ----------------------------------------------------------
def _api_path(path: str) -> str:
    return path.removeprefix("/api/v3")  # GitHub Enterprise Server serves the API there


def _authorised(request: httpx.Request, gh: dict[str, Any]) -> bool:
    if gh.get("faults", {}).get("token", "valid") == "expired":
        return False
    scheme, _, token = request.headers.get("authorization", "").partition(" ")
    return scheme.lower() in {"bearer", "token"} and token == gh["token"]


def _standard_headers(world: World, *, counted: bool) -> dict[str, str]:
    """Rate-limit headers; a 304 does not count against the primary limit."""
    rate = world.state["github"].setdefault("rate", {"used": 0, "reset": world.now + 3600})
    if world.now >= rate["reset"]:
        rate.update(used=0, reset=world.now + 3600)
    rate["used"] += 1 if counted else 0
    seq = world.state["github"]["request_count"]
    return {"x-ratelimit-limit": str(RATE_LIMIT), "x-ratelimit-used": str(rate["used"]),
            "x-ratelimit-remaining": str(max(0, RATE_LIMIT - rate["used"])),
            "x-ratelimit-reset": str(int(rate["reset"])), "x-ratelimit-resource": "core",
            "x-github-api-version-selected": API_VERSIONS[0],
            "x-github-request-id": f"SBX0:{seq:06d}:{int(world.now):X}",
            "x-github-media-type": "github.v3; format=json"}
