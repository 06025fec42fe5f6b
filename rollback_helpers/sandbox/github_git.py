"""The sandbox GitHub's git commits and refs: what the environment lock is made of.

Like GitHub: creating a ref that exists answers 422 ("Reference already exists"),
and updating one without ``force`` must be a fast forward (the new commit's
parent is the ref's current commit), else 422 ("Update is not a fast forward").
"""

from __future__ import annotations

import hashlib
import json
import re
from typing import Any

import httpx

from rollback_helpers.sandbox.github_common import REPO, Call, Route, error, json_response


def _git(call: Call) -> dict[str, Any]:
    git: dict[str, Any] = call.gh.setdefault("git", {"commits": {}, "refs": {}})
    return git


def _create_commit(call: Call) -> httpx.Response:
    body = call.body()
    if not isinstance(body, dict) or not isinstance(body.get("message"), str) \
            or not isinstance(body.get("tree"), str):
        return error(422, "Invalid request.", "git/commits#create-a-commit")
    parents = [str(p) for p in body.get("parents") or []]
    sha = hashlib.sha1(json.dumps([body["message"], parents, call.world.now,
                                   call.world.next_id("commit")]).encode()).hexdigest()
    _git(call)["commits"][sha] = {"message": body["message"], "parents": parents,
                                  "tree": body["tree"]}
    return json_response(201, _commit_json(call, sha))


def _commit_json(call: Call, sha: str) -> dict[str, Any]:
    commit = _git(call)["commits"][sha]
    url = f"{call.repo_api}/git/commits/{sha}"
    return {"sha": sha, "url": url, "message": commit["message"],
            "tree": {"sha": commit["tree"], "url": f"{call.repo_api}/git/trees/{commit['tree']}"},
            "parents": [{"sha": p, "url": f"{call.repo_api}/git/commits/{p}"}
                        for p in commit["parents"]]}


def _get_commit(call: Call) -> httpx.Response:
    if call.args["sha"] not in _git(call)["commits"]:
        return error(404, "Not Found", "git/commits#get-a-commit-object")
    return json_response(200, _commit_json(call, call.args["sha"]))


def _ref_json(call: Call, ref: str) -> dict[str, Any]:
    sha = _git(call)["refs"][ref]
    return {"ref": ref, "url": f"{call.repo_api}/git/{ref}",
            "object": {"type": "commit", "sha": sha, "url": f"{call.repo_api}/git/commits/{sha}"}}


def _create_ref(call: Call) -> httpx.Response:
    body, refs = call.body(), _git(call)["refs"]
    if not isinstance(body, dict) or not str(body.get("ref", "")).startswith("refs/") \
            or body.get("sha") not in _git(call)["commits"]:
        return error(422, "Invalid request.", "git/refs#create-a-reference")
    if body["ref"] in refs:
        return error(422, "Reference already exists", "git/refs#create-a-reference")
    refs[body["ref"]] = body["sha"]
    return json_response(201, _ref_json(call, body["ref"]))


def _get_ref(call: Call) -> httpx.Response:
    ref = "refs/" + call.args["ref"]
    if ref not in _git(call)["refs"]:
        return error(404, "Not Found", "git/refs#get-a-reference")
    return json_response(200, _ref_json(call, ref))


def _update_ref(call: Call) -> httpx.Response:
    ref, body, git = "refs/" + call.args["ref"], call.body(), _git(call)
    if ref not in git["refs"]:
        return error(422, "Reference does not exist", "git/refs#update-a-reference")
    if not isinstance(body, dict) or body.get("sha") not in git["commits"]:
        return error(422, "Invalid request.", "git/refs#update-a-reference")
    if not body.get("force") and git["refs"][ref] not in git["commits"][body["sha"]]["parents"]:
        return error(422, "Update is not a fast forward", "git/refs#update-a-reference")
    git["refs"][ref] = body["sha"]
    return json_response(200, _ref_json(call, ref))


def _delete_ref(call: Call) -> httpx.Response:
    ref = "refs/" + call.args["ref"]
    if _git(call)["refs"].pop(ref, None) is None:
        return error(422, "Reference does not exist", "git/refs#delete-a-reference")
    return httpx.Response(204)


ROUTES: list[Route] = [
    ("POST", re.compile(REPO + r"/git/commits"), _create_commit),
    ("GET", re.compile(REPO + r"/git/commits/(?P<sha>[0-9a-f]{40})"), _get_commit),
    ("POST", re.compile(REPO + r"/git/refs"), _create_ref),
    ("GET", re.compile(REPO + r"/git/ref/(?P<ref>.+)"), _get_ref),
    ("PATCH", re.compile(REPO + r"/git/refs/(?P<ref>.+)"), _update_ref),
    ("DELETE", re.compile(REPO + r"/git/refs/(?P<ref>.+)"), _delete_ref),
]
