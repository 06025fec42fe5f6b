"""The sandbox GitHub's repository contents: files from ``state["github"]["files"]`` by path."""

from __future__ import annotations

import base64
import hashlib
from typing import Any
from urllib.parse import unquote

import httpx

from rollback_helpers.sandbox.github.common import (
    Call,
    error,
    json_response,
    route,
)


def _get_contents(call: Call) -> httpx.Response:
    doc = "repos/contents#get-repository-content"
    ref = call.params.get("ref", "main")
    path = unquote(call.args["path"]).strip("/")
    if ref.removeprefix("refs/heads/") not in call.gh.get("refs", ["main"]):
        return error(404, f"No commit found for the ref {ref}", doc)
    text = call.gh.get("files", {}).get(path)
    if text is None:
        return error(404, "Not Found", doc)
    return json_response(200, _content_json(call, path, text.encode(), ref))


def _content_json(call: Call, path: str, data: bytes, ref: str) -> dict[str, Any]:
    sha = hashlib.sha1(b"blob %d\0" % len(data) + data).hexdigest()
    encoded = base64.b64encode(data).decode()
    content = "\n".join(encoded[i:i + 60] for i in range(0, len(encoded), 60)) + "\n"
    repo = call.gh["repo"]
    url = f"{call.repo_api}/contents/{path}?ref={ref}"
    git_url = f"{call.repo_api}/git/blobs/{sha}"
    html = f"{call.repo_web}/blob/{ref}/{path}"
    return {"type": "file", "encoding": "base64", "size": len(data),
            "name": path.rsplit("/", 1)[-1], "path": path, "content": content, "sha": sha,
            "url": url, "git_url": git_url, "html_url": html,
            "download_url": f"https://raw.githubusercontent.com/{repo}/{ref}/{path}",
            "_links": {"self": url, "git": git_url, "html": html}}


ROUTES = [
    route("GET", r"/contents/(?P<path>.+)", _get_contents),
]
