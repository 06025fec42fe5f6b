"""Issue comments through the GitHub client: all pages, found by marker, written once, edited."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import httpx
import pytest

from rollback_helpers.clients.github import Comment, GitHubClient
from rollback_helpers.errors import GitHubNotFound, GitHubUnavailable
from rollback_helpers.sandbox.core.world import World
from rollback_helpers.sandbox.scenarios import create_world
from rollback_helpers.testing import SandboxBackends

Transport = Callable[[httpx.Request], httpx.Response]
MARKER = "<!-- rollback-runbook run=r-1 path=a env=staging -->"


def client(world: World, wrap: Callable[[Transport], Transport] | None = None) -> GitHubClient:
    return SandboxBackends.wire(world, wrap=wrap).github(mutation_spacing=1.0)


def comments_on(world: World, number: int) -> list[str]:
    return [c["body"] for c in world.state["github"]["comments"].get(str(number), [])]


def posts(world: World, number: int) -> list[int]:
    return [c["status"] for c in world.calls()
            if c["call"].endswith(f"/issues/{number}/comments") and c["call"].startswith("POST")]


@pytest.fixture
def world(tmp_path: Path) -> World:
    return create_world("default", tmp_path)


def accepted_then(failure: str, times: int = 1) -> Callable[[Transport], Transport]:
    """GitHub stores the comment, then the answer is lost (``drop``) or a 502 (``502``)."""
    left = [times]

    def wrap(handle: Transport) -> Transport:
        def answer(request: httpx.Request) -> httpx.Response:
            response = handle(request)
            if request.method != "POST" or not left[0]:
                return response
            left[0] -= 1
            if failure == "drop":
                raise httpx.RemoteProtocolError("Server disconnected without sending a response.",
                                                request=request)
            return httpx.Response(502, text="<html>502 Bad Gateway</html>")
        return answer
    return wrap


def test_list_comments_reads_every_page_oldest_first(world: World) -> None:
    gh = client(world)
    for i in range(105):
        world.state["github"]["comments"].setdefault("1001", []).append({
            "id": 9000 + i, "body": f"note {i}", "user": "someone",
            "created_at": world.iso_now(), "updated_at": world.iso_now()})
    comments = gh.comments.list_comments(1001)
    assert [c.body for c in comments] == [f"note {i}" for i in range(105)]
    assert len([c for c in world.calls() if "/issues/1001/comments" in c["call"]]) == 2
    assert comments[0] == Comment(id=9000, body="note 0", user="someone",
                                  created_at=world.iso_now(), updated_at=world.iso_now(),
                                  html_url="https://github.sandbox.invalid/renewa/renewa-one/issues/1001"
                                           "#issuecomment-9000")


def test_find_comment_returns_the_first_by_its_author_with_the_marker_first(
        world: World) -> None:
    """A run's comment is the first one its account wrote with the marker on its first line:
    a later copy, a copy by someone else, or a marker further down is never it (attack 4)."""
    gh = client(world)
    first = gh.comments.create_comment(1001, f"{MARKER}\nfirst", marker=MARKER)
    gh.comments.add_comment(1001, "an unrelated note")
    gh.clock.sleep(60)
    gh.comments.create_comment(1001, f"{MARKER}\nsecond", marker=MARKER)
    world.state["github"]["comments"]["1001"].append({
        "id": 1, "body": f"{MARKER}\n- **state:** succeeded", "user": "mallory",
        "created_at": "2000-01-01T00:00:00Z", "updated_at": "2000-01-01T00:00:00Z"})
    found = gh.comments.find_comment(1001, MARKER, author=gh.access.login())
    assert found is not None and found.id == first.id and found.body.endswith("first")
    oldest = gh.comments.find_comment(1001, MARKER)
    assert oldest is not None and oldest.user == "mallory"  # no author given: anyone's
    gh.comments.add_comment(1001, f"quoting it: {MARKER}")
    assert gh.comments.find_comment(1001, "<!-- rollback-runbook run=other -->") is None
    assert gh.access.login() == "runbook-operator"


def test_create_comment_refuses_a_body_without_its_marker(world: World) -> None:
    with pytest.raises(ValueError, match="marker"):
        client(world).comments.create_comment(1001, "no marker here", marker=MARKER)
    assert comments_on(world, 1001) == []


@pytest.mark.parametrize("failure", ["drop", "502"])
def test_create_comment_after_an_ambiguous_failure_writes_exactly_one(
        world: World, failure: str) -> None:
    gh = client(world, accepted_then(failure))
    comment = gh.comments.create_comment(1001, f"{MARKER}\nstarted", marker=MARKER)
    assert comments_on(world, 1001) == [f"{MARKER}\nstarted"]
    assert posts(world, 1001) == [201]  # looked, found it, did not send again
    assert comment.id == world.state["github"]["comments"]["1001"][0]["id"]


@pytest.mark.parametrize("failure", ["drop", "502"])
def test_add_comment_after_an_ambiguous_failure_writes_exactly_one(
        world: World, failure: str) -> None:
    url = client(world, accepted_then(failure)).comments.add_comment(1001, "Rolled back to v41.")
    assert comments_on(world, 1001) == ["Rolled back to v41."]
    assert url.endswith(f"#issuecomment-{world.state['github']['comments']['1001'][0]['id']}")


def test_a_comment_that_did_not_take_effect_is_sent_again(world: World) -> None:
    def refuse_first(handle: Transport) -> Transport:
        seen = [0]

        def answer(request: httpx.Request) -> httpx.Response:
            if request.method == "POST" and not seen[0]:
                seen[0] += 1
                return httpx.Response(502, text="bad gateway")  # never reached the sandbox
            return handle(request)
        return answer

    gh = client(world, refuse_first)
    gh.comments.create_comment(1001, f"{MARKER}\nstarted", marker=MARKER)
    assert comments_on(world, 1001) == [f"{MARKER}\nstarted"]


def test_create_comment_gives_up_when_nothing_ever_takes_effect(world: World) -> None:
    def always_502(handle: Transport) -> Transport:
        def answer(request: httpx.Request) -> httpx.Response:
            if request.method == "POST":
                return httpx.Response(502, text="bad gateway")
            return handle(request)
        return answer

    with pytest.raises(GitHubUnavailable, match="none of them took effect"):
        client(world, always_502).comments.create_comment(1001, f"{MARKER}\nx", marker=MARKER)
    assert comments_on(world, 1001) == []


def test_edit_comment_replaces_the_body_in_place(world: World) -> None:
    gh = client(world)
    first = gh.comments.create_comment(1001, f"{MARKER}\n- **state:** started", marker=MARKER)
    gh.clock.sleep(30)
    edited = gh.comments.edit_comment(first.id, f"{MARKER}\n- **state:** dispatched")
    assert edited.id == first.id and edited.body.endswith("dispatched")
    assert edited.updated_at > first.updated_at and edited.created_at == first.created_at
    assert comments_on(world, 1001) == [f"{MARKER}\n- **state:** dispatched"]


def test_editing_a_missing_comment_names_it(world: World) -> None:
    with pytest.raises(GitHubNotFound, match="comment 12345"):
        client(world).comments.edit_comment(12345, "x")


def test_a_comment_on_a_transferred_issue_is_written_on_its_new_number(world: World) -> None:
    issues = world.state["github"]["issues"]
    moved = dict(issues[0], number=2001, labels=list(issues[0]["labels"]))
    issues.append(moved)
    issues[0]["transferred_to"] = 2001
    gh = client(world)
    gh.comments.create_comment(issues[0]["number"], f"{MARKER}\nstarted", marker=MARKER)
    gh.issues.add_labels(issues[0]["number"], ["rolled-back"])
    assert comments_on(world, 2001) == [f"{MARKER}\nstarted"]
    assert "rolled-back" in moved["labels"]
    assert gh.comments.find_comment(issues[0]["number"], MARKER) is not None
    assert any(url.endswith("/issues/2001/comments") for url in gh.session.moved.values())
