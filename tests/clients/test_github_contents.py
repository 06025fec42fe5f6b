"""The contents client sends what GitHub's published schema accepts, and reads its answers."""

from __future__ import annotations

import base64
import json
from pathlib import Path
from typing import Any

import httpx
import pytest
from githubkit_schemas.latest import models

from rollback_helpers.clients.github_contents import GitHubContents
from rollback_helpers.testing import Handler, sandbox_backends


@pytest.fixture
def sent(tmp_path: Path) -> tuple[GitHubContents, list[httpx.Request]]:
    requests: list[httpx.Request] = []

    def recording(handle: Handler) -> Handler:
        def record(request: httpx.Request) -> httpx.Response:
            requests.append(request)
            return handle(request)
        return record

    sandbox = sandbox_backends("default", tmp_path / "world", wrap=recording)
    return GitHubContents(sandbox.github().session, branch="main"), requests


def test_creating_a_file_sends_a_schema_valid_body_without_a_sha(
        sent: tuple[GitHubContents, list[httpx.Request]]) -> None:
    """PUT body: message, base64 content, branch — and never a sha (that would overwrite)."""
    from pydantic import TypeAdapter

    contents, requests = sent
    made = contents.create_file("inc/r.ipynb", b"{}\n", "Incident record r.ipynb")
    assert made is not None and made.path == "inc/r.ipynb"
    put = next(r for r in requests if r.method == "PUT")
    body: dict[str, Any] = json.loads(put.content)
    TypeAdapter(models.ReposOwnerRepoContentsPathPutBody).validate_python(body)
    assert set(body) == {"message", "content", "branch"}
    assert base64.b64decode(body["content"]) == b"{}\n"
    assert put.url.path == "/repos/renewa/renewa-one/contents/inc/r.ipynb"
    assert contents.create_file("inc/r.ipynb", b"other", "again") is None  # taken: refused


def test_reading_sends_the_branch_as_ref(sent: tuple[GitHubContents, list[httpx.Request]]) -> None:
    """Reads name the branch (?ref=main) and return the exact bytes and the folder's files."""
    contents, requests = sent
    contents.create_file("inc/r.ipynb", b"\x00\xffbytes", "add")
    assert contents.read_file("inc/r.ipynb") == b"\x00\xffbytes"
    assert [f.name for f in contents.list_folder("inc")] == ["r.ipynb"]
    assert contents.list_folder("not-yet") == []
    gets = [r for r in requests if r.method == "GET"]
    assert gets and all(r.url.params.get("ref") == "main" for r in gets)


@pytest.mark.parametrize("status, message, taken", [
    (422, 'Invalid request.\n\n"sha" wasn\'t supplied.', True),
    (422, "Invalid request.\n\nFor 'properties/content', nil is not a string.", False),
    (409, "Repository rule violations found\n\nChanges must be made through a pull request.",
     False),
])
def test_only_sha_not_supplied_means_the_name_is_taken(tmp_path: Path, status: int, message: str,
                                                       taken: bool) -> None:
    """GitHub's 422 '"sha" wasn't supplied' is "name taken" (None: try the next name); any other
    422 and a 409 (a branch rule) are errors that name GitHub's message, so the store stops."""
    from rollback_helpers.errors import GitHubError

    def refusing(handle: Handler) -> Handler:
        def answer(request: httpx.Request) -> httpx.Response:
            if request.method == "PUT":
                return httpx.Response(status, json={"message": message, "status": str(status)})
            return handle(request)
        return answer

    sandbox = sandbox_backends("default", tmp_path / "world", wrap=refusing)
    contents = GitHubContents(sandbox.github().session, branch="main")
    if taken:
        assert contents.create_file("inc/r.ipynb", b"{}", "r") is None
        return
    with pytest.raises(GitHubError, match=str(status)) as raised:
        contents.create_file("inc/r.ipynb", b"{}", "r")
    assert message.splitlines()[0] in str(raised.value)
