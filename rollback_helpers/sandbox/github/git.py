"""The sandbox GitHub's Git database: blobs, trees, commits and references.

What the environment lock is built on. Objects are content-addressed with
git's own SHA-1 (``blob <size>\\0…``, trees, commits), so creating the same
object twice yields the same SHA, as on GitHub. References behave as GitHub's:
``POST /git/refs`` answers 422 ``Reference already exists`` when the name is
taken (an atomic create), ``PATCH /git/refs/{ref}`` without ``force`` only
fast-forwards (422 ``Update is not a fast forward`` otherwise: a compare-and-swap),
and ``DELETE`` answers 204, or 422 ``Reference does not exist``.

State: ``state["github"]["git"]`` = ``{"objects": {sha: object}, "refs": {name: sha}}``.
"""

from __future__ import annotations

import hashlib
import re
from typing import Any

import httpx

from rollback_helpers.clock import parse_iso, utc_iso
from rollback_helpers.sandbox.core.world import World
from rollback_helpers.sandbox.github.common import (
    Call,
    error,
    json_response,
    missing_field,
    node_id,
    route,
)

DOC = "git"
COMMITTER = {"name": "GitHub", "email": "noreply@github.com"}
_HEX40 = re.compile(r"[0-9a-f]{40}")


def _git(call: Call) -> dict[str, Any]:
    git: dict[str, Any] = call.gh.setdefault("git", {"objects": {}, "refs": {}})
    return git


def _hash(kind: str, data: bytes) -> str:
    return hashlib.sha1(f"{kind} {len(data)}\0".encode() + data).hexdigest()


def _node(prefix: str, sha: str) -> str:
    return node_id(prefix, int(sha[:8], 16))


# -- blobs ---------------------------------------------------------------------------
def _put_blob(objects: dict[str, Any], content: str) -> str:
    data = content.encode()
    sha = _hash("blob", data)
    objects[sha] = {"type": "blob", "content": content, "size": len(data)}
    return sha


def _store_blob(call: Call, content: str) -> str:
    return _put_blob(_git(call)["objects"], content)


def _create_blob(call: Call) -> httpx.Response:
    body = call.body()
    if (missing := missing_field(body, "content", doc=f"{DOC}/blobs#create-a-blob")) is not None:
        return missing
    if body.get("encoding", "utf-8") != "utf-8":
        return error(422, "Only utf-8 blobs are supported by the sandbox.", f"{DOC}/blobs")
    sha = _store_blob(call, body["content"])
    return json_response(201, {"url": f"{call.repo_api}/git/blobs/{sha}", "sha": sha},
                         {"location": f"{call.repo_api}/git/blobs/{sha}"})


# -- trees ---------------------------------------------------------------------------
def _tree_entry(call: Call, item: Any) -> dict[str, str] | str:
    if not isinstance(item, dict) or not isinstance(item.get("path"), str):
        return "tree.path is required"
    if item.get("mode") != "100644" or item.get("type", "blob") != "blob":
        return "the sandbox stores regular files only (mode 100644, type blob)"
    if isinstance(item.get("content"), str) == isinstance(item.get("sha"), str):
        return "Must supply either tree.sha or tree.content"
    sha = item["sha"] if isinstance(item.get("sha"), str) else _store_blob(call, item["content"])
    if _git(call)["objects"].get(sha, {}).get("type") != "blob":
        return f"tree.sha {sha} is not a valid blob"
    return {"path": item["path"], "mode": "100644", "type": "blob", "sha": sha}


def _create_tree(call: Call) -> httpx.Response:
    body = call.body()
    items = body.get("tree") if isinstance(body, dict) else None
    if not isinstance(items, list) or "base_tree" in body:
        return error(422, "Invalid tree info", f"{DOC}/trees#create-a-tree")
    entries = [_tree_entry(call, item) for item in items]
    problem = next((e for e in entries if isinstance(e, str)), None)
    if problem is not None:
        return error(422, problem, f"{DOC}/trees#create-a-tree")
    sha = _put_tree(_git(call)["objects"], [e for e in entries if isinstance(e, dict)])
    return json_response(201, _tree_json(call, sha), {"location": f"{call.repo_api}/git/trees/{sha}"})


def _put_tree(objects: dict[str, Any], entries: list[dict[str, str]]) -> str:
    files = sorted(entries, key=lambda e: e["path"])
    raw = b"".join(f"100644 {e['path']}\0".encode() + bytes.fromhex(e["sha"]) for e in files)
    sha = _hash("tree", raw)
    objects[sha] = {"type": "tree", "entries": files}
    return sha


def _tree_json(call: Call, sha: str) -> dict[str, Any]:
    objects = _git(call)["objects"]
    entries = [{**e, "size": objects[e["sha"]]["size"],
                "url": f"{call.repo_api}/git/blobs/{e['sha']}"}
               for e in objects[sha]["entries"]]
    return {"sha": sha, "url": f"{call.repo_api}/git/trees/{sha}", "truncated": False,
            "tree": entries}


def _get_tree(call: Call) -> httpx.Response:
    sha = call.args["sha"]
    if _git(call)["objects"].get(sha, {}).get("type") != "tree":
        from rollback_helpers.sandbox.github.records import folder_tree

        folder = folder_tree(call, sha)  # a folder of the repository's files (a records store)
        return folder or error(404, "Not Found", f"{DOC}/trees#get-a-tree")
    return json_response(200, _tree_json(call, sha))


# -- commits -------------------------------------------------------------------------
def _create_commit(call: Call) -> httpx.Response:
    doc = f"{DOC}/commits#create-a-commit"
    body = call.body()
    if (missing := missing_field(body, "message", "tree", doc=doc)) is not None:
        return missing
    objects = _git(call)["objects"]
    parents = body.get("parents", [])
    if objects.get(body["tree"], {}).get("type") != "tree":
        return error(422, "Tree SHA does not exist", doc)
    if not isinstance(parents, list) or any(
            objects.get(p, {}).get("type") != "commit" for p in parents):
        return error(422, "Parent SHA does not exist or is not a commit object", doc)
    who = call.gh.get("viewer", "runbook-operator")
    given = body.get("author")
    author = {"name": who, "email": f"{who}@users.noreply.github.com", "date": call.world.iso_now(),
              **(given if isinstance(given, dict) else {})}
    commit = {"type": "commit", "message": body["message"], "tree": body["tree"],
              "parents": list(parents), "author": author,
              "committer": {**COMMITTER, "date": call.world.iso_now()}}
    sha = _put_commit(objects, commit)
    return json_response(201, _commit_json(call, sha),
                         {"location": f"{call.repo_api}/git/commits/{sha}"})


def _put_commit(objects: dict[str, Any], commit: dict[str, Any]) -> str:
    sha = _hash("commit", _commit_text(commit))
    objects[sha] = commit
    return sha


def store_commit(world: World, message: str, files: dict[str, str], *, at: float) -> str:
    """A commit of ``files`` (no parents) made at virtual time ``at``, built with the world."""
    git = world.state["github"].setdefault("git", {"objects": {}, "refs": {}})
    objects: dict[str, Any] = git["objects"]
    tree = _put_tree(objects, [{"path": path, "mode": "100644", "type": "blob",
                                "sha": _put_blob(objects, text)} for path, text in files.items()])
    who = world.state["github"].get("viewer", "runbook-operator")
    return _put_commit(objects, {
        "type": "commit", "message": message, "tree": tree, "parents": [],
        "author": {"name": who, "email": f"{who}@users.noreply.github.com", "date": utc_iso(at)},
        "committer": {**COMMITTER, "date": utc_iso(at)}})


def _commit_text(commit: dict[str, Any]) -> bytes:
    def person(who: dict[str, str]) -> str:
        return f"{who['name']} <{who['email']}> {int(parse_iso(who['date']))} +0000"

    lines = [f"tree {commit['tree']}", *(f"parent {p}" for p in commit["parents"]),
             f"author {person(commit['author'])}", f"committer {person(commit['committer'])}"]
    return ("\n".join(lines) + "\n\n" + str(commit["message"])).encode()


def _commit_json(call: Call, sha: str) -> dict[str, Any]:
    commit = _git(call)["objects"][sha]
    return {"sha": sha, "node_id": _node("C_kwDO", sha), "url": f"{call.repo_api}/git/commits/{sha}",
            "html_url": f"{call.repo_web}/commit/{sha}", "author": commit["author"],
            "committer": commit["committer"], "message": commit["message"],
            "tree": {"sha": commit["tree"], "url": f"{call.repo_api}/git/trees/{commit['tree']}"},
            "parents": [{"sha": p, "url": f"{call.repo_api}/git/commits/{p}",
                         "html_url": f"{call.repo_web}/commit/{p}"} for p in commit["parents"]],
            "verification": {"verified": False, "reason": "unsigned", "signature": None,
                             "payload": None, "verified_at": None}}


def _get_commit(call: Call) -> httpx.Response:
    sha = call.args["sha"]
    if _git(call)["objects"].get(sha, {}).get("type") != "commit":
        return error(404, "Not Found", f"{DOC}/commits#get-a-commit-object")
    return json_response(200, _commit_json(call, sha))


# -- references ----------------------------------------------------------------------
def _ref_json(call: Call, name: str) -> dict[str, Any]:
    sha = _git(call)["refs"][name]
    return {"ref": name, "node_id": _node("REF_kwDO", hashlib.sha1(name.encode()).hexdigest()),
            "url": f"{call.repo_api}/git/{name}",
            "object": {"type": "commit", "sha": sha, "url": f"{call.repo_api}/git/commits/{sha}"}}


def _valid_ref_name(name: str) -> bool:
    return name.startswith("refs/") and name.count("/") >= 2 and ".." not in name \
        and not name.endswith(("/", ".lock")) and " " not in name


def _create_ref(call: Call) -> httpx.Response:
    doc = f"{DOC}/refs#create-a-reference"
    body = call.body()
    if (missing := missing_field(body, "ref", "sha", doc=doc)) is not None:
        return missing
    name, sha = body["ref"], body["sha"]
    if not _valid_ref_name(name):
        return error(422, f"{name} is not a valid ref name.", doc)
    git = _git(call)
    if not _HEX40.fullmatch(sha) or sha not in git["objects"]:
        return error(422, "Object does not exist", doc)
    faults = call.gh.setdefault("faults", {})
    if int(faults.get("ref_update_failures", 0)) > 0:  # GitHub's transient refusal (#4887)
        faults["ref_update_failures"] = int(faults["ref_update_failures"]) - 1
        return error(422, "Reference update failed", doc)
    if name in git["refs"]:
        return error(422, "Reference already exists", doc)
    git["refs"][name] = sha
    return json_response(201, _ref_json(call, name), {"location": f"{call.repo_api}/git/{name}"})


def _get_ref(call: Call) -> httpx.Response:
    name = "refs/" + call.args["ref"]
    if name not in _git(call)["refs"]:
        return error(404, "Not Found", f"{DOC}/refs#get-a-reference")
    return json_response(200, _ref_json(call, name))


def _is_ancestor(objects: dict[str, Any], ancestor: str, sha: str) -> bool:
    seen, todo = set(), [sha]
    while todo:
        current = todo.pop()
        if current == ancestor:
            return True
        if current not in seen:
            seen.add(current)
            todo.extend(objects.get(current, {}).get("parents", []))
    return False


def _update_ref(call: Call) -> httpx.Response:
    doc = f"{DOC}/refs#update-a-reference"
    name, body, git = "refs/" + call.args["ref"], call.body(), _git(call)
    if (missing := missing_field(body, "sha", doc=doc)) is not None:
        return missing
    if name not in git["refs"]:
        return error(422, "Reference does not exist", doc)
    if body["sha"] not in git["objects"]:
        return error(422, "Object does not exist", doc)
    if not body.get("force") and not _is_ancestor(git["objects"], git["refs"][name], body["sha"]):
        return error(422, "Update is not a fast forward", doc)
    git["refs"][name] = body["sha"]
    return json_response(200, _ref_json(call, name))


def _delete_ref(call: Call) -> httpx.Response:
    name = "refs/" + call.args["ref"]
    if _git(call)["refs"].pop(name, None) is None:
        return error(422, "Reference does not exist", f"{DOC}/refs#delete-a-reference")
    return httpx.Response(204)


ROUTES = [
    route("POST", r"/git/blobs", _create_blob),
    route("POST", r"/git/trees", _create_tree),
    route("GET", r"/git/trees/(?P<sha>[0-9a-f]{40})", _get_tree),
    route("POST", r"/git/commits", _create_commit),
    route("GET", r"/git/commits/(?P<sha>[0-9a-f]{40})", _get_commit),
    route("POST", r"/git/refs", _create_ref),
    route("GET", r"/git/ref/(?P<ref>.+)", _get_ref),
    route("PATCH", r"/git/refs/(?P<ref>.+)", _update_ref),
    route("DELETE", r"/git/refs/(?P<ref>.+)", _delete_ref),
]
