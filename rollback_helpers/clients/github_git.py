"""GitHub's Git database: trees, commits and references (what the environment lock uses).

References give GitHub's one atomic create (``POST /git/refs`` answers 422
``Reference already exists`` when the name is taken) and a compare-and-swap
(``PATCH /git/refs/{ref}`` without ``force`` only fast-forwards). Both are safe
to send again after an ambiguous failure: a second create or update of the same
SHA is refused or a no-op, and the caller reads the reference to see where it
points. Answers are returned as small frozen types; a refused create or update
is ``None``, not an exception, because it is the answer the lock asks for.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

import httpx

from rollback_helpers.clients.github_answers import json_object
from rollback_helpers.clients.github_session import GitHubSession
from rollback_helpers.errors import GitHubError

ALREADY_EXISTS = "reference already exists"
NOT_FAST_FORWARD = "not a fast forward"
DOES_NOT_EXIST = "reference does not exist"
WRITE_HELP = "that the token can write contents in {repo}"


@dataclass(frozen=True)
class GitCommit:
    sha: str
    message: str
    tree: str
    parents: tuple[str, ...]
    html_url: str


def commit_from_json(item: Mapping[str, Any]) -> GitCommit:
    return GitCommit(sha=str(item["sha"]), message=str(item.get("message") or ""),
                     tree=str((item.get("tree") or {}).get("sha") or ""),
                     parents=tuple(str(p.get("sha")) for p in item.get("parents") or []),
                     html_url=str(item.get("html_url") or ""))


class GitHubGit:
    """The Git database (trees, commits, references), over a GitHub session."""

    def __init__(self, session: GitHubSession) -> None:
        self.session = session

    def create_tree(self, files: Mapping[str, str]) -> str:
        """A tree of regular text files (path → content); returns its SHA."""
        url = self.session.repo_url("/git/trees")
        tree = [{"path": path, "mode": "100644", "type": "blob", "content": content}
                for path, content in sorted(files.items())]
        response = self.session.call("POST", url, json={"tree": tree},
                              check=WRITE_HELP.format(repo=self.session.repo))
        return str(json_object(response, self.session.endpoint("POST", url))["sha"])

    def create_commit(self, message: str, tree: str, parents: Sequence[str] = ()) -> GitCommit:
        """A commit object (on no branch); the same content twice is the same SHA."""
        url = self.session.repo_url("/git/commits")
        response = self.session.call("POST", url, json={"message": message, "tree": tree,
                                                 "parents": list(parents)},
                              check=WRITE_HELP.format(repo=self.session.repo))
        return commit_from_json(json_object(response, self.session.endpoint("POST", url)))

    def get_commit(self, sha: str) -> GitCommit:
        return commit_from_json(self.session.get_object(self.session.repo_url(f"/git/commits/{sha}"),
                                                 check=f"that commit {sha} exists in {self.session.repo}"))

    def get_ref(self, ref: str) -> str | None:
        """The SHA that ``ref`` (``refs/…``) points at, or None if there is no such ref."""
        found = self.session.find_object(self.session.repo_url(f"/git/ref/{_short(ref)}"),
                                  check=f"that {self.session.repo} exists")
        return None if found is None else _ref_sha(found)

    def create_ref(self, ref: str, sha: str) -> bool:
        """Create ``ref`` at ``sha``; False if the name is taken (whoever took it).

        GitHub answers a transient 422 "Reference update failed" now and then
        (github/rest-api-description#4887): tried again after a pause, a few times. A retry
        that finds the ref already at ``sha`` is this call's own earlier success."""
        url = self.session.repo_url("/git/refs")
        failed_before = False
        for attempt in range(1, REF_UPDATE_TRIES + 1):
            response = self.session.send("POST", url, json={"ref": ref, "sha": sha})
            if _refused(response, ALREADY_EXISTS):
                return failed_before and self.get_ref(ref) == sha
            if _refused(response, UPDATE_FAILED) and attempt < REF_UPDATE_TRIES:
                failed_before = True
                self.session.clock.sleep(float(attempt))
                continue
            break
        self.session.raise_for_status(response, "POST", url, WRITE_HELP.format(repo=self.session.repo))
        return True

    def update_ref(self, ref: str, sha: str) -> bool:
        """Move ``ref`` to ``sha`` only if that is a fast-forward (``force: false``).

        False if ``ref`` moved elsewhere meanwhile, or no longer exists.
        """
        url = self.session.repo_url(f"/git/refs/{_short(ref)}")
        response = self.session.send("PATCH", url, json={"sha": sha, "force": False})
        if _refused(response, NOT_FAST_FORWARD) or _refused(response, DOES_NOT_EXIST):
            return False
        self.session.raise_for_status(response, "PATCH", url, WRITE_HELP.format(repo=self.session.repo))
        return True

    def delete_ref(self, ref: str) -> bool:
        """Delete ``ref``; False if it did not exist."""
        url = self.session.repo_url(f"/git/refs/{_short(ref)}")
        response = self.session.send("DELETE", url)
        if _refused(response, DOES_NOT_EXIST):
            return False
        self.session.raise_for_status(response, "DELETE", url, WRITE_HELP.format(repo=self.session.repo))
        return True


REF_UPDATE_TRIES = 4
UPDATE_FAILED = "reference update failed"


def _short(ref: str) -> str:
    if not ref.startswith("refs/"):
        raise ValueError(f"not a fully qualified reference: {ref!r}")
    return quote(ref.removeprefix("refs/"), safe="/")


def _refused(response: httpx.Response, reason: str) -> bool:
    if response.status_code != 422:
        return False
    try:
        message = str(response.json().get("message", ""))
    except (ValueError, AttributeError):
        return False
    return reason in message.lower()


def _ref_sha(item: Mapping[str, Any]) -> str:
    target = item.get("object")
    if not isinstance(target, dict) or not isinstance(target.get("sha"), str):
        raise GitHubError("GitHub's answer for a reference has no object SHA.",
                          "Check the GitHub API URL in the config.")
    return str(target["sha"])
