"""The sandbox's GitHub: ``httpx.Request`` in, ``httpx.Response`` out, from the world's state.

It serves the handful of REST endpoints the runbook uses with GitHub's status
codes, headers (``x-ratelimit-*``, ``link``, ``etag``) and JSON shapes, so the
client code that talks to it is the code that talks to api.github.com. Faults
(bad token, primary/secondary rate limits, 502s) come from ``state["github"]``.
A dispatched ``promote-image`` run moves ``queued → in_progress → completed``
on the world's clock and, when it succeeds, repoints the environment's machines.
The sandbox adds (comments, labels, runs) but never deletes anything.

Importing this module registers the ``workflow_run_*`` event handlers.
"""

from __future__ import annotations

import base64
import hashlib
import json
import re
from collections.abc import Callable
from typing import Any
from urllib.parse import unquote, urlencode

import httpx

from rollback_helpers.clock import Clock, parse_iso, utc_iso
from rollback_helpers.sandbox.world import World, digest_for, on_event

WEB = "https://github.com"
DOCS = "https://docs.github.com/rest"
RATE_LIMIT = 5000
API_VERSIONS = ("2022-11-28", "2026-03-10")
MUTATING = frozenset({"POST", "PATCH", "PUT", "DELETE"})
DEFAULT_INPUTS = {"env": True, "image": True}  # input name -> required
Handler = Callable[["_Call"], httpx.Response]


class _Call:
    """One request being answered: its parsed parts and the world it acts on."""

    def __init__(self, world: World, request: httpx.Request, match: re.Match[str]) -> None:
        self.world = world
        self.request = request
        self.gh: dict[str, Any] = world.state["github"]
        self.args = match.groupdict()
        self.params = request.url.params
        self.api = f"{request.url.scheme}://{request.url.netloc.decode()}"
        self.repo_api = f"{self.api}/repos/{self.gh['repo']}"

    def body(self) -> Any:
        try:
            return json.loads(self.request.content or b"null")
        except ValueError:
            return None


class GitHubSandbox:
    """Answers GitHub REST requests from ``world.state["github"]``.

    ``clock``, if given, is the clock the client sleeps on: the world's time is
    moved forward to it before each request, so waits on that clock let
    scheduled events (a run starting, finishing) come due.
    """

    def __init__(self, world: World, clock: Clock | None = None) -> None:
        self.world = world
        self.clock = clock

    def __call__(self, request: httpx.Request) -> httpx.Response:
        return self.handle(request)

    def handle(self, request: httpx.Request) -> httpx.Response:
        with self.world.transaction():
            return self._handle(request)

    def _handle(self, request: httpx.Request) -> httpx.Response:
        world = self.world
        if self.clock is not None and self.clock.now() > world.now:
            world.state["now"] = self.clock.now()
        world.advance()
        gh = world.state["github"]
        gh["request_count"] = ordinal = int(gh.get("request_count", 0)) + 1
        response = self._refusal(request, ordinal) or self._route(request)
        for name, value in _standard_headers(world, counted=response.status_code != 304).items():
            response.headers.setdefault(name, value)  # a rate-limit refusal sets its own
        path = _api_path(request.url.path)
        world.log_call("github", f"{request.method} {path}", mutating=request.method in MUTATING,
                       status=response.status_code, **({"query": request.url.query.decode()}
                                                        if request.url.query else {}))
        world.save()
        return response

    # -- faults ----------------------------------------------------------------
    def _refusal(self, request: httpx.Request, ordinal: int) -> httpx.Response | None:
        gh = self.world.state["github"]
        faults = gh.get("faults", {})
        if ordinal in faults.get("server_error_on", []):
            return httpx.Response(502, text="<html><body><h1>502 Bad Gateway</h1></body></html>",
                                  headers={"content-type": "text/html"})
        if not _authorised(request, gh):
            return _error(401, "Bad credentials", "authentication")
        return self._primary_limit(ordinal) or self._secondary_limit(ordinal)

    def _primary_limit(self, ordinal: int) -> httpx.Response | None:
        gh, now = self.world.state["github"], self.world.now
        if ordinal in gh["faults"].get("rate_limit_on", []):
            gh["limited_until"] = now + 60
        until = float(gh.get("limited_until", 0))
        if now >= until:
            return None
        response = _error(403, "API rate limit exceeded for user ID 1. If you reach out to GitHub "
                          "Support for help, please include the request ID.", "rate-limits")
        response.headers.update({"x-ratelimit-remaining": "0",
                                 "x-ratelimit-reset": str(int(until))})
        return response

    def _secondary_limit(self, ordinal: int) -> httpx.Response | None:
        gh, now = self.world.state["github"], self.world.now
        if ordinal in gh["faults"].get("secondary_limit_on", []):
            gh["secondary_until"] = now + 30
        until = float(gh.get("secondary_until", 0))
        if now >= until:
            return None
        response = _error(403, "You have exceeded a secondary rate limit. Please wait a few "
                          "minutes before you try again.", "rate-limits#secondary-rate-limits")
        response.headers["retry-after"] = str(max(1, int(until - now)))
        return response

    # -- routing -----------------------------------------------------------------
    def _route(self, request: httpx.Request) -> httpx.Response:
        version = request.headers.get("x-github-api-version", API_VERSIONS[0])
        if version not in API_VERSIONS:
            return _error(400, f"API version {version} is not supported.", "about-the-rest-api")
        path = _api_path(request.url.path)
        for method, pattern, handler in ROUTES:
            match = pattern.fullmatch(path)
            if match and method == request.method:
                call = _Call(self.world, request, match)
                if match["repo"] != call.gh["repo"]:
                    break
                return handler(call)
        return _error(404, "Not Found", "")


# -- headers and errors ------------------------------------------------------------
def _api_path(path: str) -> str:
    return path.removeprefix("/api/v3")  # GitHub Enterprise Server serves the API there


def _authorised(request: httpx.Request, gh: dict[str, Any]) -> bool:
    if gh.get("faults", {}).get("token", "valid") == "expired":
        return False
    scheme, _, token = request.headers.get("authorization", "").partition(" ")
    return scheme.lower() in {"bearer", "token"} and token == gh["token"]


def _standard_headers(world: World, *, counted: bool) -> dict[str, str]:
    """Rate-limit headers; a 304 does not count against the primary limit."""
    rate = world.state["github"].setdefault("rate", {"used": 0, "reset": world.now + 3600})
    if world.now >= rate["reset"]:
        rate.update(used=0, reset=world.now + 3600)
    rate["used"] += 1 if counted else 0
    seq = world.state["github"]["request_count"]
    return {"x-ratelimit-limit": str(RATE_LIMIT), "x-ratelimit-used": str(rate["used"]),
            "x-ratelimit-remaining": str(max(0, RATE_LIMIT - rate["used"])),
            "x-ratelimit-reset": str(int(rate["reset"])), "x-ratelimit-resource": "core",
            "x-github-api-version-selected": API_VERSIONS[0],
            "x-github-request-id": f"SBX0:{seq:06d}:{int(world.now):X}",
            "x-github-media-type": "github.v3; format=json"}


def _error(status: int, message: str, doc: str) -> httpx.Response:
    return httpx.Response(status, json={"message": message, "documentation_url": f"{DOCS}/{doc}",
                                        "status": str(status)})


def _json(status: int, payload: Any, headers: dict[str, str] | None = None) -> httpx.Response:
    return httpx.Response(status, json=payload, headers=headers)


def _stable_id(*parts: object, base: int = 1_000_000_000) -> int:
    digest = hashlib.sha256(":".join(map(str, parts)).encode()).hexdigest()
    return base + int(digest[:8], 16) % 900_000_000


def _node_id(prefix: str, number: int) -> str:
    return prefix + base64.b64encode(f"sandbox:{number}".encode()).decode().rstrip("=")


# -- JSON objects in GitHub's shapes -------------------------------------------------
def _user(login: str, api: str) -> dict[str, Any]:
    uid = _stable_id("user", login, base=1000)
    base = f"{api}/users/{login}"
    return {"login": login, "id": uid, "node_id": _node_id("U_kgDO", uid),
            "avatar_url": f"https://avatars.githubusercontent.com/u/{uid}?v=4", "gravatar_id": "",
            "url": base, "html_url": f"{WEB}/{login}", "followers_url": f"{base}/followers",
            "following_url": f"{base}/following{{/other_user}}",
            "gists_url": f"{base}/gists{{/gist_id}}",
            "starred_url": f"{base}/starred{{/owner}}{{/repo}}",
            "subscriptions_url": f"{base}/subscriptions", "organizations_url": f"{base}/orgs",
            "repos_url": f"{base}/repos", "events_url": f"{base}/events{{/privacy}}",
            "received_events_url": f"{base}/received_events", "type": "User",
            "user_view_type": "public", "site_admin": False}


def _label(call: _Call, name: str) -> dict[str, Any]:
    known = call.gh.get("labels", {}).get(name, {})
    lid = _stable_id("label", name)
    return {"id": lid, "node_id": _node_id("LA_kwDO", lid),
            "url": f"{call.repo_api}/labels/{name.replace(':', '%3A')}", "name": name,
            "color": known.get("color", hashlib.sha256(name.encode()).hexdigest()[:6]),
            "default": False, "description": known.get("description"),
            "archived_at": None, "archived_by": None}


def _reactions(url: str) -> dict[str, Any]:
    return {"url": f"{url}/reactions", "total_count": 0, "+1": 0, "-1": 0, "laugh": 0,
            "confused": 0, "heart": 0, "hooray": 0, "eyes": 0, "rocket": 0}


def _issue_json(call: _Call, issue: dict[str, Any]) -> dict[str, Any]:
    number, repo = int(issue["number"]), call.gh["repo"]
    url = f"{call.repo_api}/issues/{number}"
    kind = "pull" if issue.get("pull_request") else "issues"
    closed = issue.get("state") == "closed"
    payload: dict[str, Any] = {
        "url": url, "repository_url": call.repo_api, "labels_url": f"{url}/labels{{/name}}",
        "comments_url": f"{url}/comments", "events_url": f"{url}/events",
        "html_url": f"{WEB}/{repo}/{kind}/{number}", "id": _stable_id("issue", repo, number),
        "node_id": _node_id("I_kwDO", number), "number": number, "title": issue["title"],
        "user": _user(issue.get("user", "ghost"), call.api),
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
        pr_web = f"{WEB}/{repo}/pull/{number}"
        payload["draft"] = False
        payload["pull_request"] = {"url": f"{call.repo_api}/pulls/{number}", "html_url": pr_web,
                                   "diff_url": f"{pr_web}.diff", "patch_url": f"{pr_web}.patch",
                                   "merged_at": None}
    return payload


def _comment_json(call: _Call, number: int, comment: dict[str, Any]) -> dict[str, Any]:
    cid, repo = int(comment["id"]), call.gh["repo"]
    url = f"{call.repo_api}/issues/comments/{cid}"
    return {"url": url, "html_url": f"{WEB}/{repo}/issues/{number}#issuecomment-{cid}",
            "issue_url": f"{call.repo_api}/issues/{number}", "id": cid,
            "node_id": _node_id("IC_kwDO", cid), "user": _user(comment["user"], call.api),
            "created_at": comment["created_at"], "updated_at": comment["updated_at"],
            "author_association": "MEMBER", "body": comment["body"], "reactions": _reactions(url),
            "performed_via_github_app": None}


def _repository_json(call: _Call) -> dict[str, Any]:
    repo, base = call.gh["repo"], call.repo_api
    owner, name = repo.split("/", 1)
    rid = _stable_id("repo", repo)
    urls = {f"{key}_url": f"{base}/{path}" for key, path in _REPO_URLS.items()}
    return {"id": rid, "node_id": _node_id("R_kgDO", rid), "name": name, "full_name": repo,
            "owner": _user(owner, call.api), "private": True, "html_url": f"{WEB}/{repo}",
            "description": None, "fork": False, "url": base, **urls}


_REPO_URLS = {
    "archive": "{archive_format}{/ref}", "assignees": "assignees{/user}",
    "blobs": "git/blobs{/sha}", "branches": "branches{/branch}",
    "collaborators": "collaborators{/collaborator}", "comments": "comments{/number}",
    "commits": "commits{/sha}", "compare": "compare/{base}...{head}",
    "contents": "contents/{+path}",
    "contributors": "contributors", "deployments": "deployments", "downloads": "downloads",
    "events": "events", "forks": "forks", "git_commits": "git/commits{/sha}",
    "git_refs": "git/refs{/sha}", "git_tags": "git/tags{/sha}", "hooks": "hooks",
    "issue_comment": "issues/comments{/number}", "issue_events": "issues/events{/number}",
    "issues": "issues{/number}", "keys": "keys{/key_id}", "labels": "labels{/name}",
    "languages": "languages", "merges": "merges", "milestones": "milestones{/number}",
    "notifications": "notifications{?since,all,participating}", "pulls": "pulls{/number}",
    "releases": "releases{/id}", "stargazers": "stargazers", "statuses": "statuses/{sha}",
    "subscribers": "subscribers", "subscription": "subscription", "tags": "tags", "teams": "teams",
    "trees": "git/trees{/sha}",
}


def _run_json(call: _Call, run: dict[str, Any]) -> dict[str, Any]:
    rid, repo, wf = int(run["id"]), call.gh["repo"], call.gh["workflow"]
    url = f"{call.repo_api}/actions/runs/{rid}"
    repository = _repository_json(call)
    actor = _user(run.get("actor", "runbook-operator"), call.api)
    return {
        "id": rid, "name": wf.get("name", "Promote image"), "node_id": _node_id("WFR_kwLO", rid),
        "head_branch": run["head_branch"], "head_sha": run["head_sha"],
        "path": f".github/workflows/{wf['file']}", "display_title": run["display_title"],
        "run_number": run["run_number"], "event": "workflow_dispatch", "status": run["status"],
        "conclusion": run.get("conclusion"), "workflow_id": int(wf["id"]),
        "check_suite_id": rid + 1, "check_suite_node_id": _node_id("CS_kwDO", rid + 1),
        "url": url, "html_url": f"{WEB}/{repo}/actions/runs/{rid}", "pull_requests": [],
        "created_at": run["created_at"], "updated_at": run["updated_at"], "actor": actor,
        "triggering_actor": actor, "run_attempt": 1, "referenced_workflows": [],
        "run_started_at": run.get("run_started_at") or run["created_at"],
        "jobs_url": f"{url}/jobs", "logs_url": f"{url}/logs",
        "check_suite_url": f"{call.repo_api}/check-suites/{rid + 1}",
        "artifacts_url": f"{url}/artifacts", "cancel_url": f"{url}/cancel",
        "rerun_url": f"{url}/rerun", "previous_attempt_url": None,
        "workflow_url": f"{call.repo_api}/actions/workflows/{wf['id']}",
        "head_commit": {"id": run["head_sha"],
                        "tree_id": digest_for("tree" + run["head_sha"])[7:47],
                        "message": "Merge pull request", "timestamp": run["created_at"],
                        "author": {"name": "deploy-bot", "email": "deploy-bot@example.com"},
                        "committer": {"name": "GitHub", "email": "noreply@github.com"}},
        "repository": repository, "head_repository": repository,
    }


# -- issues --------------------------------------------------------------------------
def _find_issue(call: _Call) -> dict[str, Any] | None:
    number = int(call.args["number"])
    return next((i for i in call.gh["issues"] if int(i["number"]) == number), None)


def _issue_or_redirect(call: _Call) -> dict[str, Any] | httpx.Response:
    issue = _find_issue(call)
    if issue is None:
        return _error(404, "Not Found", "issues/issues#get-an-issue")
    if issue.get("transferred_to"):  # GitHub answers 301 for an issue moved elsewhere
        target = f"{call.repo_api}/issues/{issue['transferred_to']}"
        suffix = call.request.url.path.split(f"/issues/{call.args['number']}", 1)[1]
        return httpx.Response(301, json={"message": "Moved Permanently", "url": target + suffix,
                                         "documentation_url": f"{DOCS}/issues"},
                              headers={"location": target + suffix})
    return issue


def _list_issues(call: _Call) -> httpx.Response:
    wanted = [name for name in call.params.get("labels", "").split(",") if name]
    state = call.params.get("state", "open")
    issues = [i for i in call.gh["issues"] if set(wanted) <= set(i.get("labels", []))
              and (state == "all" or i.get("state", "open") == state)]
    key = {"created": "created_at", "updated": "updated_at"}.get(call.params.get("sort", "created"))
    if key is None:
        return _error(422, "Validation Failed", "issues/issues#list-repository-issues")
    issues.sort(key=lambda i: (parse_iso(i.get(key) or i["created_at"]), int(i["number"])),
                reverse=call.params.get("direction", "desc") != "asc")
    return _page(call, issues, lambda i: _issue_json(call, i))


def _page(call: _Call, items: list[dict[str, Any]],
          render: Callable[[dict[str, Any]], dict[str, Any]]) -> httpx.Response:
    try:
        per_page = max(1, min(100, int(call.params.get("per_page", 30))))
        page = max(1, int(call.params.get("page", 1)))
    except ValueError:
        return _error(422, "Validation Failed", "using-the-rest-api/using-pagination")
    last = max(1, -(-len(items) // per_page))
    chunk = items[(page - 1) * per_page: page * per_page]
    return _json(200, [render(i) for i in chunk], _link_header(call, page, last))


def _link_header(call: _Call, page: int, last: int) -> dict[str, str]:
    def url(n: int) -> str:
        query = {**dict(call.params.multi_items()), "page": str(n)}
        return f"<{call.api}{call.request.url.path}?{urlencode(query)}>"

    rels = ([(page + 1, "next"), (last, "last")] if page < last else []) + (
        [(page - 1, "prev"), (1, "first")] if page > 1 else [])
    return {"link": ", ".join(f'{url(n)}; rel="{rel}"' for n, rel in rels)} if rels else {}


def _get_issue(call: _Call) -> httpx.Response:
    found = _issue_or_redirect(call)
    return found if isinstance(found, httpx.Response) else _json(200, _issue_json(call, found))


def _list_comments(call: _Call) -> httpx.Response:
    found = _issue_or_redirect(call)
    if isinstance(found, httpx.Response):
        return found
    number = int(found["number"])
    comments = call.gh["comments"].get(str(number), [])
    return _page(call, comments, lambda c: _comment_json(call, number, c))


def _add_comment(call: _Call) -> httpx.Response:
    found = _issue_or_redirect(call)
    if isinstance(found, httpx.Response):
        return found
    body = call.body()
    if not isinstance(body, dict) or not isinstance(body.get("body"), str) or not body["body"]:
        return _error(422, 'Invalid request.\n\n"body" wasn\'t supplied.',
                      "issues/comments#create-an-issue-comment")
    number, now = int(found["number"]), call.world.iso_now()
    comment = {"id": call.world.next_id("comment", 2_100_000_000), "body": body["body"],
               "user": call.gh.get("viewer", "runbook-operator"), "created_at": now,
               "updated_at": now}
    call.gh["comments"].setdefault(str(number), []).append(comment)
    found["updated_at"] = now
    rendered = _comment_json(call, number, comment)
    return _json(201, rendered, {"location": rendered["url"]})


def _add_labels(call: _Call) -> httpx.Response:
    found = _issue_or_redirect(call)
    if isinstance(found, httpx.Response):
        return found
    body = call.body()
    names = body.get("labels") if isinstance(body, dict) else body
    if not isinstance(names, list) or not all(isinstance(n, str) and n for n in names):
        return _error(422, 'Invalid request.\n\n"labels" wasn\'t supplied.',
                      "issues/labels#add-labels-to-an-issue")
    for name in names:  # like GitHub, adding an unknown label creates it
        call.gh.setdefault("labels", {}).setdefault(name, {"description": None})
    labels = found.setdefault("labels", [])
    labels.extend(n for n in dict.fromkeys(names) if n not in labels)
    found["updated_at"] = call.world.iso_now()
    return _json(200, [_label(call, name) for name in labels])


# -- workflow dispatch and runs ----------------------------------------------------------
def _known_workflow(call: _Call) -> bool:
    wf = call.gh["workflow"]
    return call.args["workflow"] in {wf["file"], str(wf["id"])}


def _dispatch(call: _Call) -> httpx.Response:
    doc = "actions/workflows#create-a-workflow-dispatch-event"
    if not _known_workflow(call):
        return _error(404, "Not Found", doc)
    body = call.body()
    mode = call.gh["workflow"].get("dispatch", "details")
    if mode == "legacy" and isinstance(body, dict) and "return_run_details" in body:
        return _error(400, 'Invalid request.\n\n"return_run_details" is not a permitted key.', doc)
    problem = _dispatch_problem(call, body)
    if problem:
        return _error(422, problem, doc)
    run = _create_run(call, body["ref"], body.get("inputs") or {})
    details = mode == "details" and (body.get("return_run_details") is True or call.request.headers
                                     .get("x-github-api-version") == "2026-03-10")
    if not details:
        return httpx.Response(204)
    return _json(200, {"workflow_run_id": run["id"],
                       "run_url": f"{call.repo_api}/actions/runs/{run['id']}",
                       "html_url": f"{WEB}/{call.gh['repo']}/actions/runs/{run['id']}"})


def _dispatch_problem(call: _Call, body: Any) -> str:
    if not isinstance(body, dict) or not isinstance(body.get("ref"), str) or not body["ref"]:
        return 'Invalid request.\n\n"ref" wasn\'t supplied.'
    if body["ref"].removeprefix("refs/heads/") not in call.gh.get("refs", ["main"]):
        return f"No ref found for: {body['ref']}"
    inputs = body.get("inputs") or {}
    if not isinstance(inputs, dict) or len(inputs) > 25:
        return "Invalid request.\n\nFor 'properties/inputs', must be an object of at most 25 keys."
    declared: dict[str, bool] = call.gh["workflow"].get("inputs", DEFAULT_INPUTS)
    unexpected = sorted(set(inputs) - set(declared))
    if unexpected:
        return f"Unexpected inputs provided: {json.dumps(unexpected)}"
    missing = [name for name, required in declared.items() if required and not inputs.get(name)]
    if missing:
        return f"Required input '{missing[0]}' not provided"
    return ""


def _create_run(call: _Call, ref: str, inputs: dict[str, Any]) -> dict[str, Any]:
    world, wf = call.world, call.gh["workflow"]
    run_id = world.next_id("run", 7_000_000)
    now = world.iso_now()
    run = {"id": run_id, "run_number": world.next_id("run_number", 100), "status": "queued",
           "conclusion": None, "head_branch": ref.removeprefix("refs/heads/"),
           "head_sha": digest_for(f"git-{ref}")[7:47],
           "inputs": {k: str(v) for k, v in inputs.items()},
           "created_at": now, "updated_at": now, "run_started_at": None,
           "display_title": f"Promote {inputs.get('image', '?')} to {inputs.get('env', '?')}",
           "actor": call.gh.get("viewer", "runbook-operator")}
    call.gh["runs"].append(run)
    world.schedule(float(wf["queue_time"]), "workflow_run_started", run_id=run_id)
    world.schedule(float(wf["queue_time"]) + float(wf["duration"]), "workflow_run_completed",
                   run_id=run_id)
    return run


def _find_run(gh: dict[str, Any], run_id: int) -> dict[str, Any] | None:
    return next((r for r in gh["runs"] if int(r["id"]) == run_id), None)


def _get_run(call: _Call) -> httpx.Response:
    run = _find_run(call.gh, int(call.args["run_id"]))
    if run is None:
        return _error(404, "Not Found", "actions/workflow-runs#get-a-workflow-run")
    payload = _run_json(call, run)
    etag = 'W/"' + hashlib.sha256(json.dumps(payload, sort_keys=True).encode()).hexdigest() + '"'
    headers = {"etag": etag, "cache-control": "private, max-age=60, s-maxage=60"}
    if etag in {t.strip() for t in call.request.headers.get("if-none-match", "").split(",")}:
        return httpx.Response(304, headers=headers)
    return _json(200, payload, headers)


def _list_runs(call: _Call) -> httpx.Response:
    if not _known_workflow(call):
        return _error(404, "Not Found", "actions/workflow-runs#list-workflow-runs-for-a-workflow")
    visible_after = float(call.gh["workflow"].get("list_delay", 0))
    runs = [r for r in call.gh["runs"] if _run_matches(r, call.params)
            and parse_iso(r["created_at"]) + visible_after <= call.world.now]
    runs.sort(key=lambda r: int(r["id"]), reverse=True)
    response = _page(call, runs, lambda r: _run_json(call, r))
    if response.status_code != 200:
        return response
    payload = {"total_count": len(runs), "workflow_runs": response.json()}
    return _json(200, payload, {k: v for k, v in response.headers.items() if k == "link"})


def _run_matches(run: dict[str, Any], params: httpx.QueryParams) -> bool:
    checks = [("event", "workflow_dispatch"), ("branch", run["head_branch"]),
              ("status", run["status"]), ("status", run.get("conclusion"))]
    for name in ("event", "branch", "status"):
        if name in params and params[name] not in {v for n, v in checks if n == name}:
            return False
    return "created" not in params or _created_matches(parse_iso(run["created_at"]),
                                                       params["created"])


def _created_matches(created: float, spec: str) -> bool:
    """GitHub's date filter: ``>=X``, ``>X``, ``<=X``, ``<X``, ``A..B`` or a day ``YYYY-MM-DD``."""
    for op, test in ((">=", float.__ge__), ("<=", float.__le__), (">", float.__gt__),
                     ("<", float.__lt__)):
        if spec.startswith(op):
            return bool(test(created, _when(spec[len(op):])))
    if ".." in spec:
        start, end = spec.split("..", 1)
        return (start in {"", "*"} or created >= _when(start)) and (
            end in {"", "*"} or created <= _when(end))
    return utc_iso(created).startswith(spec)


def _when(text: str) -> float:
    return parse_iso(text if "T" in text else text + "T00:00:00Z")


@on_event("workflow_run_started")
def _run_started(world: World, event: dict[str, Any]) -> None:
    run = _find_run(world.state["github"], int(event["run_id"]))
    if run is not None and run["status"] == "queued":
        run.update(status="in_progress", run_started_at=world.iso_now(), updated_at=world.iso_now())


@on_event("workflow_run_completed")
def _run_completed(world: World, event: dict[str, Any]) -> None:
    run = _find_run(world.state["github"], int(event["run_id"]))
    if run is None or run["status"] == "completed":
        return
    conclusion = world.state["github"]["workflow"].get("conclusion", "success")
    if conclusion == "success" and not _promote(world, run["inputs"]):
        conclusion = "failure"  # the registry has no such manifest, or no app for the env
    run.update(status="completed", conclusion=conclusion, updated_at=world.iso_now())


def _promote(world: World, inputs: dict[str, str]) -> bool:
    """What promote-image.yml does: point every machine of the env's app at the image."""
    fly = world.state.get("fly", {})
    digest = inputs.get("image", "").partition("@")[2]
    name = next((n for n, img in fly.get("images", {}).items() if img["digest"] == digest), None)
    apps = [app for app in fly.get("apps", {}).values() if app.get("env") == inputs.get("env")]
    if name is None or not digest or not apps:
        return False
    for app in apps:
        for machine in app["machines"]:
            machine.update(image=name, updated_at=world.iso_now())
        app["release"] = int(app["release"]) + 1
    return True


# -- contents ------------------------------------------------------------------------------
def _get_contents(call: _Call) -> httpx.Response:
    doc = "repos/contents#get-repository-content"
    ref = call.params.get("ref", "main")
    path = unquote(call.args["path"]).strip("/")
    if ref.removeprefix("refs/heads/") not in call.gh.get("refs", ["main"]):
        return _error(404, f"No commit found for the ref {ref}", doc)
    text = call.gh.get("files", {}).get(path)
    if text is None:
        return _error(404, "Not Found", doc)
    return _json(200, _content_json(call, path, text.encode(), ref))


def _content_json(call: _Call, path: str, data: bytes, ref: str) -> dict[str, Any]:
    sha = hashlib.sha1(b"blob %d\0" % len(data) + data).hexdigest()
    encoded = base64.b64encode(data).decode()
    content = "\n".join(encoded[i:i + 60] for i in range(0, len(encoded), 60)) + "\n"
    repo = call.gh["repo"]
    url = f"{call.repo_api}/contents/{path}?ref={ref}"
    git_url = f"{call.repo_api}/git/blobs/{sha}"
    html = f"{WEB}/{repo}/blob/{ref}/{path}"
    return {"type": "file", "encoding": "base64", "size": len(data),
            "name": path.rsplit("/", 1)[-1], "path": path, "content": content, "sha": sha,
            "url": url, "git_url": git_url, "html_url": html,
            "download_url": f"https://raw.githubusercontent.com/{repo}/{ref}/{path}",
            "_links": {"self": url, "git": git_url, "html": html}}


def _edit_comment(call: _Call) -> httpx.Response:
    cid = int(call.args["comment_id"])
    for number, comments in call.gh["comments"].items():
        for comment in comments:
            if int(comment["id"]) == cid:
                body = call.body()
                if not isinstance(body, dict) or not isinstance(body.get("body"), str):
                    return _error(422, 'Invalid request.\n\n"body" wasn\'t supplied.',
                                  "issues/comments#update-an-issue-comment")
                comment.update(body=body["body"], updated_at=call.world.iso_now())
                return _json(200, _comment_json(call, int(number), comment))
    return _error(404, "Not Found", "issues/comments#update-an-issue-comment")


# -- git objects and refs (the environment lock) ------------------------------------------
def _git(call: _Call) -> dict[str, Any]:
    git: dict[str, Any] = call.gh.setdefault("git", {"commits": {}, "refs": {}})
    return git


def _create_commit(call: _Call) -> httpx.Response:
    body = call.body()
    if not isinstance(body, dict) or not isinstance(body.get("message"), str) \
            or not isinstance(body.get("tree"), str):
        return _error(422, "Invalid request.", "git/commits#create-a-commit")
    parents = [str(p) for p in body.get("parents") or []]
    sha = hashlib.sha1(json.dumps([body["message"], parents, call.world.now,
                                   call.world.next_id("commit")]).encode()).hexdigest()
    _git(call)["commits"][sha] = {"message": body["message"], "parents": parents,
                                  "tree": body["tree"]}
    return _json(201, _commit_json(call, sha))


def _commit_json(call: _Call, sha: str) -> dict[str, Any]:
    commit = _git(call)["commits"][sha]
    url = f"{call.repo_api}/git/commits/{sha}"
    return {"sha": sha, "url": url, "message": commit["message"],
            "tree": {"sha": commit["tree"], "url": f"{call.repo_api}/git/trees/{commit['tree']}"},
            "parents": [{"sha": p, "url": f"{call.repo_api}/git/commits/{p}"}
                        for p in commit["parents"]]}


def _get_commit(call: _Call) -> httpx.Response:
    if call.args["sha"] not in _git(call)["commits"]:
        return _error(404, "Not Found", "git/commits#get-a-commit-object")
    return _json(200, _commit_json(call, call.args["sha"]))


def _ref_json(call: _Call, ref: str) -> dict[str, Any]:
    sha = _git(call)["refs"][ref]
    return {"ref": ref, "url": f"{call.repo_api}/git/{ref}",
            "object": {"type": "commit", "sha": sha, "url": f"{call.repo_api}/git/commits/{sha}"}}


def _create_ref(call: _Call) -> httpx.Response:
    body, refs = call.body(), _git(call)["refs"]
    if not isinstance(body, dict) or not str(body.get("ref", "")).startswith("refs/") \
            or body.get("sha") not in _git(call)["commits"]:
        return _error(422, "Invalid request.", "git/refs#create-a-reference")
    if body["ref"] in refs:
        return _error(422, "Reference already exists", "git/refs#create-a-reference")
    refs[body["ref"]] = body["sha"]
    return _json(201, _ref_json(call, body["ref"]))


def _get_ref(call: _Call) -> httpx.Response:
    ref = "refs/" + call.args["ref"]
    if ref not in _git(call)["refs"]:
        return _error(404, "Not Found", "git/refs#get-a-reference")
    return _json(200, _ref_json(call, ref))


def _update_ref(call: _Call) -> httpx.Response:
    ref, body, git = "refs/" + call.args["ref"], call.body(), _git(call)
    if ref not in git["refs"]:
        return _error(422, "Reference does not exist", "git/refs#update-a-reference")
    if not isinstance(body, dict) or body.get("sha") not in git["commits"]:
        return _error(422, "Invalid request.", "git/refs#update-a-reference")
    if not body.get("force") and git["refs"][ref] not in git["commits"][body["sha"]]["parents"]:
        return _error(422, "Update is not a fast forward", "git/refs#update-a-reference")
    git["refs"][ref] = body["sha"]
    return _json(200, _ref_json(call, ref))


def _delete_ref(call: _Call) -> httpx.Response:
    ref = "refs/" + call.args["ref"]
    if _git(call)["refs"].pop(ref, None) is None:
        return _error(422, "Reference does not exist", "git/refs#delete-a-reference")
    return httpx.Response(204)


_REPO = r"/repos/(?P<repo>[^/]+/[^/]+)"
ROUTES: list[tuple[str, re.Pattern[str], Handler]] = [
    ("GET", re.compile(_REPO + r"/issues"), _list_issues),
    ("GET", re.compile(_REPO + r"/issues/(?P<number>\d+)"), _get_issue),
    ("GET", re.compile(_REPO + r"/issues/(?P<number>\d+)/comments"), _list_comments),
    ("POST", re.compile(_REPO + r"/issues/(?P<number>\d+)/comments"), _add_comment),
    ("POST", re.compile(_REPO + r"/issues/(?P<number>\d+)/labels"), _add_labels),
    ("POST", re.compile(_REPO + r"/actions/workflows/(?P<workflow>[^/]+)/dispatches"), _dispatch),
    ("GET", re.compile(_REPO + r"/actions/workflows/(?P<workflow>[^/]+)/runs"), _list_runs),
    ("GET", re.compile(_REPO + r"/actions/runs/(?P<run_id>\d+)"), _get_run),
    ("GET", re.compile(_REPO + r"/contents/(?P<path>.+)"), _get_contents),
    ("PATCH", re.compile(_REPO + r"/issues/comments/(?P<comment_id>\d+)"), _edit_comment),
    ("POST", re.compile(_REPO + r"/git/commits"), _create_commit),
    ("GET", re.compile(_REPO + r"/git/commits/(?P<sha>[0-9a-f]{40})"), _get_commit),
    ("POST", re.compile(_REPO + r"/git/refs"), _create_ref),
    ("GET", re.compile(_REPO + r"/git/ref/(?P<ref>.+)"), _get_ref),
    ("PATCH", re.compile(_REPO + r"/git/refs/(?P<ref>.+)"), _update_ref),
    ("DELETE", re.compile(_REPO + r"/git/refs/(?P<ref>.+)"), _delete_ref),
]
