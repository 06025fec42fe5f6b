"""The sandbox's contents API answers with GitHub's codes and (schema-valid) shapes, write-once."""

from __future__ import annotations

import base64
import hashlib
from typing import Any

import httpx
from github_rest import REPO, validate
from githubkit_schemas.latest import models

from rollback_helpers.sandbox.core.world import World
from rollback_helpers.sandbox.github import records as github_records


def put(api: httpx.Client, path: str, data: bytes, **extra: Any) -> httpx.Response:
    body = {"message": f"add {path}", "content": base64.b64encode(data).decode(), **extra}
    return api.put(f"{REPO}/contents/{path}", json=body)


def test_creating_a_file_answers_201_with_a_valid_file_commit(api: httpx.Client) -> None:
    """PUT without sha creates the file; the answer is GitHub's FileCommit."""
    response = put(api, "incidents/a.ipynb", b'{"cells": []}')
    assert response.status_code == 201
    commit = validate(models.FileCommit, response.json())
    assert commit.content.path == "incidents/a.ipynb" and commit.content.size == 13
    assert commit.content.sha == hashlib.sha1(b"blob 13\0" + b'{"cells": []}').hexdigest()


def test_an_existing_path_is_never_overwritten_without_its_sha(api: httpx.Client) -> None:
    """A second PUT without sha answers 422 and the first file's bytes stay."""
    put(api, "incidents/a.ipynb", b"first")
    again = put(api, "incidents/a.ipynb", b"second")
    assert again.status_code == 422 and '"sha" wasn\'t supplied' in again.json()["message"]
    stale = put(api, "incidents/a.ipynb", b"second", sha="0" * 40)
    assert stale.status_code == 409
    got = api.get(f"{REPO}/contents/incidents/a.ipynb").json()
    assert base64.b64decode(got["content"]) == b"first"


def test_reading_back_a_file_and_a_folder_listing_are_valid(api: httpx.Client) -> None:
    """GET of a file is a ContentFile with the exact bytes; of a folder, its directory items."""
    data = bytes(range(256))  # not UTF-8: kept byte for byte
    put(api, "incidents/bin.ipynb", data)
    put(api, "incidents/drills/d.ipynb", b"drill")
    file = validate(models.ContentFile, api.get(f"{REPO}/contents/incidents/bin.ipynb").json())
    assert base64.b64decode(file.content) == data
    listing = api.get(f"{REPO}/contents/incidents").json()
    items = validate(list[models.ContentDirectoryItems], listing)
    assert [(i.name, i.type) for i in items] == [("bin.ipynb", "file"), ("drills", "dir")]
    assert api.get(f"{REPO}/contents/nothing-here").status_code == 404


def test_large_files_come_through_the_blobs_api(api: httpx.Client) -> None:
    """Over 1 MB the contents API returns no content; the blob (a valid Blob) has it."""
    data = b"x" * (github_records.INLINE_LIMIT + 10)
    put(api, "big.ipynb", data)
    item = api.get(f"{REPO}/contents/big.ipynb").json()
    assert (item["encoding"], item["content"]) == ("none", "")
    blob = validate(models.Blob, api.get(f"{REPO}/git/blobs/{item['sha']}").json())
    assert base64.b64decode(blob.content) == data


def test_unknown_branch_and_read_only_token_are_refused(world: World, api: httpx.Client) -> None:
    """A branch that does not exist answers 404; a token without push, 403 (and says so)."""
    assert put(api, "a.ipynb", b"x", branch="records").status_code == 404
    assert api.get(f"{REPO}/contents/", params={"ref": "records"}).status_code == 404
    world.state["github"].setdefault("faults", {})["contents_read_only"] = True
    assert put(api, "a.ipynb", b"x").status_code == 403
    repo = validate(models.MinimalRepository, api.get(REPO).json())
    assert repo.full_name == "renewa/renewa-one" and repo.permissions.push is False


def test_a_folder_lists_at_most_1000_entries_and_its_git_tree_lists_all(
        api: httpx.Client, world: World) -> None:
    """As GitHub: the contents API stops at 1,000 entries of a folder; the git trees API of the
    folder's tree (its ``sha`` in the parent's listing) has every one."""
    files = world.state["github"].setdefault("files", {})
    for n in range(1005):
        files[f"incidents/r{n:04}.ipynb"] = "{}"
    listing = api.get(f"{REPO}/contents/incidents").json()
    assert len(listing) == 1000
    folder = next(e for e in api.get(f"{REPO}/contents").json() if e["name"] == "incidents")
    tree = validate(models.GitTree, api.get(f"{REPO}/git/trees/{folder['sha']}").json())
    assert len(tree.tree) == 1005 and not tree.truncated
    assert {e.type for e in tree.tree} == {"blob"} and tree.tree[-1].path == "r1004.ipynb"
    root = validate(models.GitTree, api.get(f"{REPO}/git/trees/main").json())
    assert any(e.path == "incidents" and e.type == "tree" for e in root.tree)


def test_a_branch_with_rules_answers_409_and_lists_its_rules(api: httpx.Client,
                                                             world: World) -> None:
    """A ruleset requiring pull requests: the contents PUT is refused with 409 "Repository rule
    violations found" and nothing is written; ``GET /rules/branches/{branch}`` names the rule."""
    assert api.get(f"{REPO}/rules/branches/main").json() == []
    world.state["github"]["branch_rules"] = {"main": [{"type": "pull_request"}]}
    refused = put(api, "incidents/a.ipynb", b"{}")
    assert refused.status_code == 409
    assert refused.json()["message"].startswith("Repository rule violations found")
    assert github_records.file_bytes(world.state["github"], "incidents/a.ipynb") is None
    rules = api.get(f"{REPO}/rules/branches/main").json()
    assert [r["type"] for r in rules] == ["pull_request"]
    assert rules[0]["ruleset_source_type"] == "Repository" and rules[0]["ruleset_id"] > 0
