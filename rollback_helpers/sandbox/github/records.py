"""The sandbox GitHub as a records store: creating files, folder listings, large files, blobs.

Enough of ``/repos/{owner}/{repo}/contents/{path}`` for a records store: ``GET`` of a
file (inline up to 1 MB, ``encoding: "none"`` above, as GitHub does) or of a
folder (its listing), ``PUT`` that creates a file (422 without ``sha`` when the
path exists, 409 on a stale ``sha``), ``GET /git/blobs/{sha}``, and ``GET`` of the
repository with the token's ``permissions``. Files live in
``state["github"]["files"]`` (text) and ``["binary_files"]`` (base64), one tree for
every branch in ``refs``. The token's ``permissions`` come from ``state["github"]["permissions"]``;
``faults.contents_read_only`` takes ``push`` away and answers 403 to writes.

Its routes come before :mod:`~rollback_helpers.sandbox.github.contents`' in the router
(its ``GET`` of a path answers files as that module does, and folders too).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
from typing import Any
from urllib.parse import unquote

import httpx

from rollback_helpers.sandbox.github.common import (
    Call,
    error,
    json_response,
    node_id,
    route,
)
from rollback_helpers.sandbox.github.contents import _content_json

INLINE_LIMIT = 1024 * 1024  # GitHub returns file content inline up to 1 MB
LISTING_LIMIT = 1000  # GitHub lists at most 1,000 entries of a folder (then: the git trees API)
DOC = "repos/contents"
# Rules that stop a commit straight to the branch (rulesets or branch protection): GitHub answers
# 409 "Repository rule violations found" to a contents PUT on such a branch.
BLOCKING_RULES = ("pull_request", "update", "required_status_checks", "required_deployments",
                  "merge_queue")


def file_bytes(gh: dict[str, Any], path: str) -> bytes | None:
    """A file's bytes in the sandbox repository, or None."""
    if path in gh.get("files", {}):
        return str(gh["files"][path]).encode()
    if path in gh.get("binary_files", {}):
        return base64.b64decode(gh["binary_files"][path])
    return None


def store_file(gh: dict[str, Any], path: str, data: bytes) -> None:
    try:
        gh.setdefault("files", {})[path] = data.decode("utf-8")
        gh.get("binary_files", {}).pop(path, None)
    except UnicodeDecodeError:
        gh.get("files", {}).pop(path, None)
        gh.setdefault("binary_files", {})[path] = base64.b64encode(data).decode()


def _blob_sha(data: bytes) -> str:
    return hashlib.sha1(b"blob %d\0" % len(data) + data).hexdigest()


def _paths(gh: dict[str, Any]) -> list[str]:
    return sorted({*gh.get("files", {}), *gh.get("binary_files", {})})


def _ref_problem(call: Call, ref: str) -> httpx.Response | None:
    if ref.removeprefix("refs/heads/") not in call.gh.get("refs", ["main"]):
        return error(404, f"No commit found for the ref {ref}",
                      f"{DOC}#get-repository-content")
    return None


# -- GET contents --------------------------------------------------------------------------------
def _get(call: Call) -> httpx.Response:
    ref = call.params.get("ref", "main")
    path = unquote(call.args.get("path") or "").strip("/")
    problem = _ref_problem(call, ref)
    if problem is not None:
        return problem
    data = file_bytes(call.gh, path)
    if data is not None:
        item = _content_json(call, path, data, ref)
        if len(data) > INLINE_LIMIT:
            item.update(content="", encoding="none")
        return json_response(200, item)
    prefix = f"{path}/" if path else ""
    below = [p for p in _paths(call.gh) if p.startswith(prefix)]
    if not below:
        return error(404, "Not Found", f"{DOC}#get-repository-content")
    names = sorted({p[len(prefix):].split("/", 1)[0] for p in below})[:LISTING_LIMIT]
    return json_response(200, [_listing_item(call, prefix + name, ref) for name in names])


def _folder_sha(path: str) -> str:
    return hashlib.sha1(f"tree:{path}".encode()).hexdigest()


def folder_tree(call: Call, sha: str) -> httpx.Response | None:
    """``GET /git/trees/{sha}`` of a folder a listing named (every entry, no 1,000 cap); None
    when ``sha`` is no folder of the repository's files."""
    paths = _paths(call.gh)
    folders = {""} | {p.rsplit("/", 1)[0] if "/" in p else "" for p in paths}
    folders |= {"/".join(f.split("/")[:n]) for f in list(folders) for n in range(1, f.count("/") + 1)}
    folder = next((f for f in folders if _folder_sha(f) == sha), None)
    if folder is None:
        return None
    return json_response(200, _tree(call, folder, sha))


def _ref_tree(call: Call) -> httpx.Response:
    """``GET /git/trees/{branch}``: the branch's root folder."""
    if call.args["ref"] != "HEAD" and call.args["ref"] not in call.gh.get("refs", ["main"]):
        return error(404, "Not Found", "git/trees#get-a-tree")
    return json_response(200, _tree(call, "", _folder_sha("")))


def _tree(call: Call, folder: str, sha: str) -> dict[str, Any]:
    prefix = f"{folder}/" if folder else ""
    names = sorted({p[len(prefix):].split("/", 1)[0] for p in _paths(call.gh)
                    if p.startswith(prefix)})
    entries: list[dict[str, Any]] = []
    for name in names:
        data = file_bytes(call.gh, prefix + name)
        if data is None:
            entries.append({"path": name, "mode": "040000", "type": "tree",
                            "sha": _folder_sha(prefix + name),
                            "url": f"{call.repo_api}/git/trees/{_folder_sha(prefix + name)}"})
        else:
            entries.append({"path": name, "mode": "100644", "type": "blob",
                            "sha": _blob_sha(data), "size": len(data),
                            "url": f"{call.repo_api}/git/blobs/{_blob_sha(data)}"})
    return {"sha": sha, "url": f"{call.repo_api}/git/trees/{sha}", "truncated": False,
            "tree": entries}


def _listing_item(call: Call, path: str, ref: str) -> dict[str, Any]:
    data = file_bytes(call.gh, path)
    if data is not None:
        item = _content_json(call, path, data, ref)
        del item["content"], item["encoding"]
        return item
    url = f"{call.repo_api}/contents/{path}?ref={ref}"
    sha = hashlib.sha1(f"tree:{path}".encode()).hexdigest()
    git_url, html = f"{call.repo_api}/git/trees/{sha}", f"{call.repo_web}/tree/{ref}/{path}"
    return {"type": "dir", "size": 0, "name": path.rsplit("/", 1)[-1], "path": path, "sha": sha,
            "url": url, "git_url": git_url, "html_url": html, "download_url": None,
            "_links": {"self": url, "git": git_url, "html": html}}


# -- PUT contents ----------------------------------------------------------------------------------
def _put(call: Call) -> httpx.Response:
    doc = f"{DOC}#create-or-update-file-contents"
    if call.gh.get("faults", {}).get("contents_read_only"):
        return error(403, "Resource not accessible by personal access token", doc)
    body = call.body()
    path = unquote(call.args.get("path") or "").strip("/")
    if not isinstance(body, dict) or not isinstance(body.get("message"), str) \
            or not isinstance(body.get("content"), str) or not path:
        return error(422, 'Invalid request.\n\n"message" and "content" are required.', doc)
    branch = str(body.get("branch") or "main")
    if branch.removeprefix("refs/heads/") not in call.gh.get("refs", ["main"]):
        return error(404, f"Branch {branch} not found", doc)
    try:
        data = base64.b64decode(body["content"], validate=True)
    except (binascii.Error, ValueError):
        return error(422, "content is not valid Base64", doc)
    ruled = [r for r in branch_rules(call.gh, branch) if r.get("type") in BLOCKING_RULES]
    if ruled:
        return error(409, "Repository rule violations found\n\n" + "\n\n".join(
            RULE_MESSAGES.get(str(r["type"]), f"Rule {r['type']} blocks this push.")
            for r in ruled) + "\n\n", f"{DOC}#create-or-update-file-contents")
    existing = file_bytes(call.gh, path)
    if existing is not None and "sha" not in body:
        return error(422, 'Invalid request.\n\n"sha" wasn\'t supplied.', doc)
    if existing is not None and body.get("sha") != _blob_sha(existing):
        return error(409, f"{path} does not match {body.get('sha')}", doc)
    store_file(call.gh, path, data)
    return json_response(201 if existing is None else 200, _file_commit(call, path, data, branch,
                                                                str(body["message"])))


RULE_MESSAGES = {"pull_request": "Changes must be made through a pull request.",
                 "update": "Cannot update this protected ref.",
                 "required_status_checks": "Required status checks are expected.",
                 "required_deployments": "Required deployments must succeed.",
                 "merge_queue": "Changes must be made through the merge queue."}


def branch_rules(gh: dict[str, Any], branch: str) -> list[dict[str, Any]]:
    """The rules the world sets on ``branch`` (``state["github"]["branch_rules"][branch]``:
    a list of ``{"type": …}``)."""
    return [dict(r) for r in gh.get("branch_rules", {}).get(branch.removeprefix("refs/heads/"), [])]


def _file_commit(call: Call, path: str, data: bytes, branch: str,
                 message: str) -> dict[str, Any]:
    content = _content_json(call, path, data, branch)
    del content["content"], content["encoding"]
    number = call.world.next_id("commit", 1)
    sha = hashlib.sha1(f"commit:{number}:{path}".encode()).hexdigest()
    tree = hashlib.sha1(f"tree:{number}".encode()).hexdigest()
    parent = hashlib.sha1(f"commit:{number - 1}".encode()).hexdigest()
    who = {"name": call.gh.get("viewer", "runbook-operator"),
           "email": "runbook-operator@example.com", "date": call.world.iso_now()}
    commit = {"sha": sha, "node_id": node_id("C_kwDO", number),
              "url": f"{call.repo_api}/git/commits/{sha}", "html_url": f"{call.repo_web}/commit/{sha}",
              "author": who, "committer": who, "message": message,
              "tree": {"url": f"{call.repo_api}/git/trees/{tree}", "sha": tree},
              "parents": [{"url": f"{call.repo_api}/git/commits/{parent}",
                           "html_url": f"{call.repo_web}/commit/{parent}", "sha": parent}],
              "verification": {"verified": False, "reason": "unsigned", "signature": None,
                               "payload": None, "verified_at": None}}
    return {"content": content, "commit": commit}


# -- blobs and the repository ------------------------------------------------------------------------
def _blob(call: Call) -> httpx.Response:
    sha = call.args["sha"]
    for path in _paths(call.gh):
        data = file_bytes(call.gh, path)
        if data is not None and _blob_sha(data) == sha:
            return json_response(200, {"sha": sha, "node_id": node_id("B_kwDO", len(data)),
                               "size": len(data), "url": f"{call.repo_api}/git/blobs/{sha}",
                               "content": base64.b64encode(data).decode(), "encoding": "base64"})
    return error(404, "Not Found", "git/blobs#get-a-blob")


ROUTES = [
    route("GET", r"/contents(?:/(?P<path>.*))?", _get),
    route("PUT", r"/contents/(?P<path>.+)", _put),
    route("GET", r"/git/blobs/(?P<sha>[0-9a-f]{40})", _blob),
    route("GET", r"/git/trees/(?P<ref>(?![0-9a-f]{40}$)[^/]+)", _ref_tree),
]
