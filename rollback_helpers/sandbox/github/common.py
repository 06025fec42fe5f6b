"""What the sandbox GitHub's endpoints share: the call being answered, errors, ids, pages.

:class:`Call` is one request being answered; :func:`error` and :func:`json_response`
build GitHub's responses, :func:`paginate` GitHub's ``per_page``/``page`` paging with
its ``link`` header, and :func:`user_json` / :func:`repository_json` the objects
that many of GitHub's payloads embed. Each endpoint module (:mod:`.issues`,
:mod:`.actions`, :mod:`.contents`) lists its ``ROUTES``, each made by
:func:`route`; :mod:`.api` routes requests to them.
"""

from __future__ import annotations

import base64
import hashlib
import json
import re
from collections.abc import Callable
from typing import Any
from urllib.parse import urlencode

import httpx

from rollback_helpers.sandbox.core.world import World

WEB = "https://github.sandbox.invalid"  # a drill's links: never the real repository's
DOCS = "https://docs.github.com/rest"
REPO = r"/repos/(?P<repo>[^/]+/[^/]+)"
Handler = Callable[["Call"], httpx.Response]
Route = tuple[str, re.Pattern[str], Handler]


class Call:
    """One request being answered: its parsed parts and the world it acts on."""

    def __init__(self, world: World, request: httpx.Request, match: re.Match[str]) -> None:
        self.world = world
        self.request = request
        self.gh: dict[str, Any] = world.state["github"]
        self.args = match.groupdict()
        self.params = request.url.params
        self.api = f"{request.url.scheme}://{request.url.netloc.decode()}"
        self.repo_api = f"{self.api}/repos/{self.gh['repo']}"
        self.repo_web = f"{WEB}/{self.gh['repo']}"

    def body(self) -> Any:
        try:
            return json.loads(self.request.content or b"null")
        except ValueError:
            return None


# -- responses and ids ------------------------------------------------------------
def error(status: int, message: str, doc: str) -> httpx.Response:
    return httpx.Response(status, json={"message": message, "documentation_url": f"{DOCS}/{doc}",
                                        "status": str(status)})


def route(method: str, path: str, handler: Handler) -> Route:
    """An endpoint of the repository: ``path`` is a regular expression for what follows
    ``/repos/{owner}/{repo}`` (the router answers 404 for any other repository)."""
    return method, re.compile(REPO + path), handler


def missing_field(body: Any, *names: str, doc: str, empty: bool = True) -> httpx.Response | None:
    """GitHub's 422 for a JSON body without one of the string fields ``names`` (or, unless
    ``empty``, with one of them empty); None when they are all there."""
    if isinstance(body, dict) and all(isinstance(body.get(name), str) and (empty or body[name])
                                      for name in names):
        return None
    quoted = " and ".join(f'"{name}"' for name in names)
    said = "are required" if len(names) > 1 else "wasn't supplied"
    return error(422, f"Invalid request.\n\n{quoted} {said}.", doc)


def json_response(status: int, payload: Any, headers: dict[str, str] | None = None) -> httpx.Response:
    return httpx.Response(status, json=payload, headers=headers)


def stable_id(*parts: object, base: int = 1_000_000_000) -> int:
    digest = hashlib.sha256(":".join(map(str, parts)).encode()).hexdigest()
    return base + int(digest[:8], 16) % 900_000_000


def node_id(prefix: str, number: int) -> str:
    return prefix + base64.b64encode(f"sandbox:{number}".encode()).decode().rstrip("=")


# -- JSON objects in GitHub's shapes -------------------------------------------------
def user_json(login: str, api: str) -> dict[str, Any]:
    uid = stable_id("user", login, base=1000)
    base = f"{api}/users/{login}"
    return {"login": login, "id": uid, "node_id": node_id("U_kgDO", uid),
            "avatar_url": f"https://avatars.githubusercontent.com/u/{uid}?v=4", "gravatar_id": "",
            "url": base, "html_url": f"{WEB}/{login}", "followers_url": f"{base}/followers",
            "following_url": f"{base}/following{{/other_user}}",
            "gists_url": f"{base}/gists{{/gist_id}}",
            "starred_url": f"{base}/starred{{/owner}}{{/repo}}",
            "subscriptions_url": f"{base}/subscriptions", "organizations_url": f"{base}/orgs",
            "repos_url": f"{base}/repos", "events_url": f"{base}/events{{/privacy}}",
            "received_events_url": f"{base}/received_events", "type": "User",
            "user_view_type": "public", "site_admin": False}


DEFAULT_PERMISSIONS = {"admin": False, "maintain": False, "push": True, "triage": True,
                       "pull": True}  # the token's user's, unless state["github"]["permissions"]


def token_can_push(call: Call) -> bool:
    """Whether the token's user may push (``state["github"]["permissions"]``, and the
    ``contents_read_only`` fault)."""
    permissions = {**DEFAULT_PERMISSIONS, **call.gh.get("permissions", {})}
    return bool(permissions["push"]) and not call.gh.get("faults", {}).get("contents_read_only")


def repository_json(call: Call) -> dict[str, Any]:
    repo, base = call.gh["repo"], call.repo_api
    owner, name = repo.split("/", 1)
    rid = stable_id("repo", repo)
    urls = {f"{key}_url": f"{base}/{path}" for key, path in _REPO_URLS.items()}
    return {"id": rid, "node_id": node_id("R_kgDO", rid), "name": name, "full_name": repo,
            "owner": user_json(owner, call.api), "private": True, "html_url": f"{WEB}/{repo}",
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


# -- pagination ------------------------------------------------------------------------
def paginate(call: Call, items: list[dict[str, Any]],
             render: Callable[[dict[str, Any]], dict[str, Any]]) -> httpx.Response:
    try:
        per_page = max(1, min(100, int(call.params.get("per_page", 30))))
        page = max(1, int(call.params.get("page", 1)))
    except ValueError:
        return error(422, "Validation Failed", "using-the-rest-api/using-pagination")
    last = max(1, -(-len(items) // per_page))
    chunk = items[(page - 1) * per_page: page * per_page]
    return json_response(200, [render(i) for i in chunk], _link_header(call, page, last))


def _link_header(call: Call, page: int, last: int) -> dict[str, str]:
    def url(n: int) -> str:
        query = {**dict(call.params.multi_items()), "page": str(n)}
        return f"<{call.api}{call.request.url.path}?{urlencode(query)}>"

    rels = ([(page + 1, "next"), (last, "last")] if page < last else []) + (
        [(page - 1, "prev"), (1, "first")] if page > 1 else [])
    return {"link": ", ".join(f'{url(n)}; rel="{rel}"' for n, rel in rels)} if rels else {}
