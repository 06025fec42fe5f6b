"""The sandbox GitHub's issues: listing, reading, comments (create, list, edit) and labels.

Issues, their comments and the repository's labels come from ``state["github"]``
(``issues``, ``comments`` by issue number, ``labels``). An issue with
``transferred_to`` answers ``301 Moved Permanently`` pointing at its new number,
as GitHub does for a transferred issue. The sandbox adds comments and labels but
never deletes anything.
"""

from __future__ import annotations

import hashlib
from typing import Any

import httpx

from rollback_helpers.clock import parse_iso
from rollback_helpers.sandbox.github.common import (
    DOCS,
    Call,
    error,
    json_response,
    missing_field,
    node_id,
    paginate,
    route,
    stable_id,
    user_json,
)


# -- JSON objects in GitHub's shapes -------------------------------------------------
def _label(call: Call, name: str) -> dict[str, Any]:
    known = call.gh.get("labels", {}).get(name, {})
    lid = stable_id("label", name)
    return {"id": lid, "node_id": node_id("LA_kwDO", lid),
            "url": f"{call.repo_api}/labels/{name.replace(':', '%3A')}", "name": name,
            "color": known.get("color", hashlib.sha256(name.encode()).hexdigest()[:6]),
            "default": False, "description": known.get("description"),
            "archived_at": None, "archived_by": None}


def _reactions(url: str) -> dict[str, Any]:
    return {"url": f"{url}/reactions", "total_count": 0, "+1": 0, "-1": 0, "laugh": 0,
            "confused": 0, "heart": 0, "hooray": 0, "eyes": 0, "rocket": 0}


def _issue_json(call: Call, issue: dict[str, Any]) -> dict[str, Any]:
    number, repo = int(issue["number"]), call.gh["repo"]
    url = f"{call.repo_api}/issues/{number}"
    kind = "pull" if issue.get("pull_request") else "issues"
    closed = issue.get("state") == "closed"
    payload: dict[str, Any] = {
        "url": url, "repository_url": call.repo_api, "labels_url": f"{url}/labels{{/name}}",
        "comments_url": f"{url}/comments", "events_url": f"{url}/events",
        "html_url": f"{call.repo_web}/{kind}/{number}", "id": stable_id("issue", repo, number),
        "node_id": node_id("I_kwDO", number), "number": number, "title": issue["title"],
        "user": user_json(issue.get("user", "ghost"), call.api),
        "labels": [_label(call, name) for name in issue.get("labels", [])],
        "state": issue.get("state", "open"), "locked": False, "assignee": None, "assignees": [],
        "milestone": None, "comments": len(call.gh["comments"].get(str(number), [])),
        "created_at": issue["created_at"],
        "updated_at": issue.get("updated_at", issue["created_at"]),
        "closed_at": (issue.get("closed_at") or issue.get("updated_at")) if closed else None,
        "author_association": "MEMBER", "active_lock_reason": None, "body": issue.get("body"),
        "closed_by": None, "reactions": _reactions(url), "timeline_url": f"{url}/timeline",
        "performed_via_github_app": None, "state_reason": "completed" if closed else None,
    }
    if issue.get("pull_request"):
        pr_web = f"{call.repo_web}/pull/{number}"
        payload["draft"] = False
        payload["pull_request"] = {"url": f"{call.repo_api}/pulls/{number}", "html_url": pr_web,
                                   "diff_url": f"{pr_web}.diff", "patch_url": f"{pr_web}.patch",
                                   "merged_at": None}
    return payload


def _comment_json(call: Call, number: int, comment: dict[str, Any]) -> dict[str, Any]:
    cid = int(comment["id"])
    url = f"{call.repo_api}/issues/comments/{cid}"
    return {"url": url, "html_url": f"{call.repo_web}/issues/{number}#issuecomment-{cid}",
            "issue_url": f"{call.repo_api}/issues/{number}", "id": cid,
            "node_id": node_id("IC_kwDO", cid), "user": user_json(comment["user"], call.api),
            "created_at": comment["created_at"], "updated_at": comment["updated_at"],
            "author_association": "MEMBER", "body": comment["body"], "reactions": _reactions(url),
            "performed_via_github_app": None}


# -- issues --------------------------------------------------------------------------
def _find_issue(call: Call) -> dict[str, Any] | None:
    number = int(call.args["number"])
    return next((i for i in call.gh["issues"] if int(i["number"]) == number), None)


def _issue_or_redirect(call: Call) -> dict[str, Any] | httpx.Response:
    issue = _find_issue(call)
    if issue is None:
        return error(404, "Not Found", "issues/issues#get-an-issue")
    if issue.get("transferred_to"):  # GitHub answers 301 for an issue moved elsewhere
        target = f"{call.repo_api}/issues/{issue['transferred_to']}"
        suffix = call.request.url.path.split(f"/issues/{call.args['number']}", 1)[1]
        return httpx.Response(301, json={"message": "Moved Permanently", "url": target + suffix,
                                         "documentation_url": f"{DOCS}/issues"},
                              headers={"location": target + suffix})
    return issue


def _list_issues(call: Call) -> httpx.Response:
    wanted = [name for name in call.params.get("labels", "").split(",") if name]
    state = call.params.get("state", "open")
    issues = [i for i in call.gh["issues"] if set(wanted) <= set(i.get("labels", []))
              and (state == "all" or i.get("state", "open") == state)
              and not i.get("transferred_to")]  # listed under its new number only
    key = {"created": "created_at", "updated": "updated_at"}.get(call.params.get("sort", "created"))
    if key is None:
        return error(422, "Validation Failed", "issues/issues#list-repository-issues")
    issues.sort(key=lambda i: (parse_iso(i.get(key) or i["created_at"]), int(i["number"])),
                reverse=call.params.get("direction", "desc") != "asc")
    return paginate(call, issues, lambda i: _issue_json(call, i))


def _get_issue(call: Call) -> httpx.Response:
    found = _issue_or_redirect(call)
    return found if isinstance(found, httpx.Response) else json_response(200, _issue_json(call, found))


def _list_comments(call: Call) -> httpx.Response:
    found = _issue_or_redirect(call)
    if isinstance(found, httpx.Response):
        return found
    number = int(found["number"])
    comments = call.gh["comments"].get(str(number), [])
    return paginate(call, comments, lambda c: _comment_json(call, number, c))


def _add_comment(call: Call) -> httpx.Response:
    found = _issue_or_redirect(call)
    if isinstance(found, httpx.Response):
        return found
    body = call.body()
    if (missing := missing_field(body, "body", doc="issues/comments#create-an-issue-comment",
                                empty=False)) is not None:
        return missing
    number, now = int(found["number"]), call.world.iso_now()
    comment = {"id": call.world.next_id("comment", 2_100_000_000), "body": body["body"],
               "user": call.gh.get("viewer", "runbook-operator"), "created_at": now,
               "updated_at": now}
    call.gh["comments"].setdefault(str(number), []).append(comment)
    found["updated_at"] = now
    rendered = _comment_json(call, number, comment)
    return json_response(201, rendered, {"location": rendered["url"]})


def _find_comment(call: Call) -> tuple[int, dict[str, Any]] | None:
    wanted = int(call.args["comment_id"])
    for number, comments in call.gh["comments"].items():
        for comment in comments:
            if int(comment["id"]) == wanted:
                return int(number), comment
    return None


def _get_comment(call: Call) -> httpx.Response:
    found = _find_comment(call)
    if found is None:
        return error(404, "Not Found", "issues/comments#get-an-issue-comment")
    return json_response(200, _comment_json(call, *found))


def _edit_comment(call: Call) -> httpx.Response:
    doc = "issues/comments#update-an-issue-comment"
    found = _find_comment(call)
    if found is None:
        return error(404, "Not Found", doc)
    body = call.body()
    if (missing := missing_field(body, "body", doc=doc, empty=False)) is not None:
        return missing
    number, comment = found
    comment.update(body=body["body"], updated_at=call.world.iso_now())
    return json_response(200, _comment_json(call, number, comment))


def _add_labels(call: Call) -> httpx.Response:
    found = _issue_or_redirect(call)
    if isinstance(found, httpx.Response):
        return found
    body = call.body()
    names = body.get("labels") if isinstance(body, dict) else body
    if not isinstance(names, list) or not all(isinstance(n, str) and n for n in names):
        return error(422, 'Invalid request.\n\n"labels" wasn\'t supplied.',
                     "issues/labels#add-labels-to-an-issue")
    for name in names:  # like GitHub, adding an unknown label creates it
        call.gh.setdefault("labels", {}).setdefault(name, {"description": None})
    labels = found.setdefault("labels", [])
    labels.extend(n for n in dict.fromkeys(names) if n not in labels)
    found["updated_at"] = call.world.iso_now()
    return json_response(200, [_label(call, name) for name in labels])


ROUTES = [
    route("GET", r"/issues", _list_issues),
    route("GET", r"/issues/(?P<number>\d+)", _get_issue),
    route("GET", r"/issues/(?P<number>\d+)/comments", _list_comments),
    route("POST", r"/issues/(?P<number>\d+)/comments", _add_comment),
    route("POST", r"/issues/(?P<number>\d+)/labels", _add_labels),
    route("GET", r"/issues/comments/(?P<comment_id>\d+)", _get_comment),
    route("PATCH", r"/issues/comments/(?P<comment_id>\d+)", _edit_comment),
]
