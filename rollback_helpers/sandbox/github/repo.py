"""The sandbox's GitHub, continued: the repository and its workflow, as a preflight reads them.

``GET /repos/{repo}`` answers GitHub's repository object with the ``permissions``
the token's user has (``state["github"]["permissions"]``) and, as GitHub does
for OAuth and classic tokens, the token's scopes in ``x-oauth-scopes``
(``state["github"]["token_scopes"]``; an empty list sends no header, as for a
fine-grained token). ``GET /repos/{repo}/actions/workflows/{file or id}``
answers the workflow object, or 404 when the world has no such workflow.

Its :data:`ROUTES` are part of the sandbox's router (:mod:`.api`).
"""

from __future__ import annotations

from typing import Any

import httpx

from rollback_helpers.sandbox.github.actions import _known_workflow
from rollback_helpers.sandbox.github.common import (
    DEFAULT_PERMISSIONS,
    Call,
    error,
    json_response,
    node_id,
    repository_json,
    route,
)

DEFAULT_SCOPES = ["gist", "read:org", "repo", "workflow"]  # what `gh auth login` asks for


def _full_repository(call: Call) -> dict[str, Any]:
    """The fields GitHub's ``full-repository`` schema requires beyond the short form."""
    repo = call.gh["repo"]
    issues = sum(1 for issue in call.gh.get("issues", []) if issue.get("state") == "open")
    stamp = "2025-01-14T10:02:11Z"
    return {"clone_url": f"https://github.com/{repo}.git", "git_url": f"git://github.com/{repo}.git",
            "ssh_url": f"git@github.com:{repo}.git", "svn_url": f"https://github.com/{repo}",
            "mirror_url": None, "homepage": None, "language": "Python", "license": None,
            "created_at": stamp, "updated_at": call.world.iso_now(),
            "pushed_at": call.world.iso_now(), "size": 4096, "forks": 0, "forks_count": 0,
            "stargazers_count": 0, "watchers": 0, "watchers_count": 0, "subscribers_count": 3,
            "network_count": 0, "open_issues": issues, "open_issues_count": issues,
            "has_projects": False, "has_wiki": False, "has_pages": False,
            "has_discussions": False}


def _get_repository(call: Call) -> httpx.Response:
    permissions = {**DEFAULT_PERMISSIONS, **call.gh.get("permissions", {})}  # the token's
    if call.gh.get("faults", {}).get("contents_read_only"):
        permissions["push"] = False
    payload = {**repository_json(call), **_full_repository(call),
               "default_branch": call.gh.get("refs", ["main"])[0],
               "has_issues": True, "visibility": "private", "archived": False,
               "disabled": False, "permissions": permissions}
    scopes = call.gh.get("token_scopes", DEFAULT_SCOPES)
    headers = {"x-oauth-scopes": ", ".join(scopes), "x-accepted-oauth-scopes": "repo"} \
        if scopes else {}
    return json_response(200, payload, headers)


def _get_workflow(call: Call) -> httpx.Response:
    if not _known_workflow(call):
        return error(404, "Not Found", "actions/workflows#get-a-workflow")
    wf = call.gh["workflow"]
    path = f".github/workflows/{wf['file']}"
    payload: dict[str, Any] = {
        "id": int(wf["id"]), "node_id": node_id("W_kwDO", int(wf["id"])),
        "name": wf.get("name", "Promote image"), "path": path,
        "state": wf.get("state", "active"), "created_at": "2025-01-14T10:02:11.000Z",
        "updated_at": "2026-05-02T08:40:51.000Z",
        "url": f"{call.repo_api}/actions/workflows/{wf['id']}",
        "html_url": f"{call.repo_web}/blob/main/{path}",
        "badge_url": f"{call.repo_web}/workflows/{wf.get('name', 'Promote image')}/badge.svg"}
    return json_response(200, payload)


def _get_branch_rules(call: Call) -> httpx.Response:
    """``GET /repos/{o}/{r}/rules/branches/{branch}``: every rule that applies to the branch (an
    empty list for a branch without rules, even one that does not exist, as GitHub answers)."""
    from rollback_helpers.sandbox.github.records import branch_rules

    rules = [{"ruleset_source_type": "Repository", "ruleset_source": call.gh["repo"],
              "ruleset_id": 4100 + n, **rule}
             for n, rule in enumerate(branch_rules(call.gh, call.args["branch"]))]
    return json_response(200, rules)


ROUTES = [
    route("GET", "", _get_repository),
    route("GET", r"/rules/branches/(?P<branch>.+)", _get_branch_rules),
    route("GET", r"/actions/workflows/(?P<workflow>[^/]+)", _get_workflow),
]
