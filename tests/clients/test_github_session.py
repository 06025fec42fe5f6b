"""The request policy: redirects repeated as sent, never to another host; ambiguous failures."""

from __future__ import annotations

import httpx
import pytest

from rollback_helpers.clients.github import GitHubClient
from rollback_helpers.clock import VirtualClock
from rollback_helpers.errors import GitHubError
from rollback_helpers.secrets import Secret

API = "https://api.github.com/repos/o/r"


def client(handler: httpx.MockTransport) -> GitHubClient:
    return GitHubClient(httpx.Client(transport=handler), "o/r", Secret("ghp_secret_token"),
                        clock=VirtualClock(0.0), mutation_spacing=0)


def test_a_307_is_repeated_with_the_same_method_and_body() -> None:
    seen: list[tuple[str, str, bytes]] = []

    def answer(request: httpx.Request) -> httpx.Response:
        seen.append((request.method, request.url.path, request.content))
        if request.url.path.endswith("/issues/5/labels"):
            return httpx.Response(307, headers={"location": f"{API}/issues/9/labels"})
        return httpx.Response(200, json=[])

    client(httpx.MockTransport(answer)).issues.add_labels(5, ["rolled-back"])
    assert [(m, p) for m, p, _ in seen] == [("POST", "/repos/o/r/issues/5/labels"),
                                            ("POST", "/repos/o/r/issues/9/labels")]
    assert seen[0][2] == seen[1][2] and b"rolled-back" in seen[1][2]


def test_a_redirect_to_another_host_is_refused_and_the_token_not_sent_there() -> None:
    hosts: list[str] = []

    def answer(request: httpx.Request) -> httpx.Response:
        hosts.append(request.url.host)
        return httpx.Response(301, headers={"location": "https://evil.example/steal"})

    with pytest.raises(GitHubError, match="another host"):
        client(httpx.MockTransport(answer)).issues.get_issue(5)
    assert hosts == ["api.github.com"]


def test_a_post_that_never_left_the_machine_is_sent_again_without_looking() -> None:
    seen: list[str] = []

    def answer(request: httpx.Request) -> httpx.Response:
        seen.append(f"{request.method} {request.url.path}")
        if len(seen) == 1:
            raise httpx.ConnectError("connection refused", request=request)
        return httpx.Response(201, json={"id": 1, "body": "<!-- m -->", "user": {"login": "a"},
                                         "created_at": "2026-06-10T09:00:00Z",
                                         "updated_at": "2026-06-10T09:00:00Z", "html_url": "u"})

    comments = client(httpx.MockTransport(answer)).comments
    comment = comments.create_comment(5, "<!-- m -->", marker="<!-- m -->")
    assert comment.id == 1
    assert seen == ["POST /repos/o/r/issues/5/comments"] * 2  # no listing: it cannot have landed


def test_a_post_that_may_have_landed_is_looked_for_before_it_is_sent_again() -> None:
    """A read timeout: the request left the machine, so the attempt is ambiguous; the comment is
    looked for (and here found), and the POST is not sent a second time."""
    seen: list[str] = []
    body = {"id": 7, "body": "<!-- m -->", "user": {"login": "a"}, "html_url": "u",
            "created_at": "2026-06-10T09:00:00Z", "updated_at": "2026-06-10T09:00:00Z"}

    def answer(request: httpx.Request) -> httpx.Response:
        seen.append(f"{request.method} {request.url.path}")
        if request.method == "POST":
            raise httpx.ReadTimeout("no answer", request=request)
        return httpx.Response(200, json=[body])

    comment = client(httpx.MockTransport(answer)).comments.create_comment(
        5, "<!-- m -->", marker="<!-- m -->")
    assert comment.id == 7
    assert seen == ["POST /repos/o/r/issues/5/comments", "GET /repos/o/r/issues/5/comments"]


@pytest.mark.parametrize(("response", "sent", "ambiguous"), [
    (None, False, False), (None, True, True), (httpx.Response(502), True, True),
    (httpx.Response(201), True, False), (httpx.Response(422), True, False)])
def test_an_attempt_is_ambiguous_only_when_it_was_sent_and_not_answered(
        response: httpx.Response | None, sent: bool, ambiguous: bool) -> None:
    from rollback_helpers.clients.github_session import Attempt

    assert Attempt(response, sent=sent, last="x").ambiguous is ambiguous
