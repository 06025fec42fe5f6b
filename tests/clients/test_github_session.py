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
