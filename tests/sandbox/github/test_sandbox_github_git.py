"""The sandbox's Git database answers with GitHub's shapes and its ref semantics."""

from __future__ import annotations

from typing import Any

import httpx
import pytest
from github_rest import REPO, validate
from githubkit_schemas.latest import models  # GitHub's published schemas

from rollback_helpers.sandbox.core.world import World

HELLO_BLOB = "ce013625030ba8dba906f756967f9e9ca394464a"  # `printf 'hello\n' | git hash-object --stdin`


def commit(api: httpx.Client, message: str, parents: list[str] | None = None) -> str:
    tree = api.post(f"{REPO}/git/trees", json={"tree": [
        {"path": "lease.json", "mode": "100644", "type": "blob", "content": message}]}).json()
    created = api.post(f"{REPO}/git/commits", json={"message": message, "tree": tree["sha"],
                                                     "parents": parents or []})
    assert created.status_code == 201
    return str(created.json()["sha"])


def test_blobs_and_trees_are_valid_and_content_addressed_like_git(api: httpx.Client) -> None:
    blob = api.post(f"{REPO}/git/blobs", json={"content": "hello\n", "encoding": "utf-8"})
    assert blob.status_code == 201 and validate(models.ShortBlob, blob.json()).sha == HELLO_BLOB
    tree = api.post(f"{REPO}/git/trees", json={"tree": [
        {"path": "a.txt", "mode": "100644", "type": "blob", "content": "hello\n"}]})
    assert tree.status_code == 201
    parsed = validate(models.GitTree, tree.json())
    assert [(e.path, e.sha, e.size) for e in parsed.tree] == [("a.txt", HELLO_BLOB, 6)]
    again = api.post(f"{REPO}/git/trees", json={"tree": [
        {"path": "a.txt", "mode": "100644", "type": "blob", "sha": HELLO_BLOB}]})
    assert again.json()["sha"] == parsed.sha  # same content, same object
    assert validate(models.GitTree, api.get(f"{REPO}/git/trees/{parsed.sha}").json()).sha == parsed.sha


def test_commits_are_valid_git_commits_with_their_parents(api: httpx.Client) -> None:
    first = commit(api, "one")
    second = commit(api, "two", [first])
    parsed = validate(models.GitCommit, api.get(f"{REPO}/git/commits/{second}").json())
    assert parsed.message == "two" and [p.sha for p in parsed.parents] == [first]
    assert parsed.html_url.endswith(f"/commit/{second}") and len(parsed.sha) == 40
    bad = api.post(f"{REPO}/git/commits", json={"message": "x", "tree": "0" * 40})
    assert bad.status_code == 422


def test_creating_a_ref_is_atomic_the_second_create_answers_422(api: httpx.Client) -> None:
    sha = commit(api, "lease")
    created = api.post(f"{REPO}/git/refs", json={"ref": "refs/rollback-locks/staging", "sha": sha})
    assert created.status_code == 201
    ref = validate(models.GitRef, created.json())
    assert (ref.ref, ref.object_.sha, ref.object_.type) == ("refs/rollback-locks/staging", sha,
                                                             "commit")
    taken = api.post(f"{REPO}/git/refs", json={"ref": "refs/rollback-locks/staging", "sha": sha})
    assert taken.status_code == 422 and taken.json()["message"] == "Reference already exists"
    read = api.get(f"{REPO}/git/ref/rollback-locks/staging")
    assert validate(models.GitRef, read.json()).object_.sha == sha
    assert api.post(f"{REPO}/git/refs", json={"ref": "refs/x", "sha": sha}).status_code == 422


def test_updating_a_ref_without_force_only_fast_forwards(api: httpx.Client) -> None:
    base = commit(api, "lease 1")
    api.post(f"{REPO}/git/refs", json={"ref": "refs/rollback-locks/staging", "sha": base})
    child, stranger = commit(api, "lease 2", [base]), commit(api, "someone else's")
    url = f"{REPO}/git/refs/rollback-locks/staging"
    moved = api.patch(url, json={"sha": child, "force": False})
    assert moved.status_code == 200 and validate(models.GitRef, moved.json()).object_.sha == child
    refused = api.patch(url, json={"sha": stranger, "force": False})
    assert refused.status_code == 422 and refused.json()["message"] == "Update is not a fast forward"
    stale = api.patch(url, json={"sha": commit(api, "lease 2b", [base]), "force": False})
    assert stale.status_code == 422  # based on an old lease: the compare-and-swap fails


def test_deleting_a_ref_answers_204_then_422(api: httpx.Client) -> None:
    sha = commit(api, "lease")
    api.post(f"{REPO}/git/refs", json={"ref": "refs/rollback-locks/staging", "sha": sha})
    assert api.delete(f"{REPO}/git/refs/rollback-locks/staging").status_code == 204
    again = api.delete(f"{REPO}/git/refs/rollback-locks/staging")
    assert again.status_code == 422 and again.json()["message"] == "Reference does not exist"
    assert api.get(f"{REPO}/git/ref/rollback-locks/staging").status_code == 404


@pytest.mark.parametrize(("method", "path", "body", "said", "doc"), [
    ("POST", "/git/blobs", {"encoding": "utf-8"}, '"content" wasn\'t supplied.', "create-a-blob"),
    ("POST", "/git/commits", {"message": "x", "tree": None}, '"message" and "tree" are required.',
     "create-a-commit"),
    ("POST", "/git/refs", {"ref": "refs/rollback-locks/qa", "sha": 7},
     '"ref" and "sha" are required.', "create-a-reference"),
    ("PATCH", "/git/refs/rollback-locks/qa", {"force": True}, '"sha" wasn\'t supplied.',
     "update-a-reference"),
    ("POST", "/git/refs", ["ref", "sha"], '"ref" and "sha" are required.', "create-a-reference"),
])
def test_a_body_without_a_required_field_answers_422_naming_it(
        api: httpx.Client, method: str, path: str, body: Any, said: str, doc: str) -> None:
    """As GitHub: 422, the missing fields named, and the endpoint's documentation linked."""
    response = api.request(method, f"{REPO}{path}", json=body)
    assert response.status_code == 422
    assert response.json()["message"] == f"Invalid request.\n\n{said}"
    assert response.json()["documentation_url"].endswith(f"#{doc}")


def test_a_transient_reference_update_failure_answers_422_then_passes(api: httpx.Client,
                                                                      world: World) -> None:
    """GitHub's transient 422 "Reference update failed" on POST /git/refs
    (github/rest-api-description#4887), as many times as the fault says, then the create."""
    world.state["github"].setdefault("faults", {})["ref_update_failures"] = 2
    sha = commit(api, "lease")
    body = {"ref": "refs/rollback-locks/staging", "sha": sha}
    answers = [api.post(f"{REPO}/git/refs", json=body) for _ in range(3)]
    assert [a.status_code for a in answers] == [422, 422, 201]
    assert answers[0].json()["message"] == "Reference update failed"
    assert api.get(f"{REPO}/git/ref/rollback-locks/staging").status_code == 200
