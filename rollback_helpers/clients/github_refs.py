"""Git commits and refs: what the environment lock (:mod:`rollback_helpers.run.lock`) is made of.

A ref is created atomically (GitHub answers 422 when it exists), fast-forwarded
to renew (refused when someone moved it meanwhile), deleted to release.
"""

from __future__ import annotations

from collections.abc import Sequence
from urllib.parse import quote

from rollback_helpers.clients.github_comments import CommentsMixin
from rollback_helpers.clients.github_session import json_object

EMPTY_TREE = "4b825dc642cb6eb9a060e54bf8d69288fbee4904"


class RefsMixin(CommentsMixin):
    """Git commits and refs for :class:`~rollback_helpers.clients.github.GitHubClient`."""

    # git objects and refs: the environment lock is a ref created atomically
    def create_commit(self, message: str, parents: Sequence[str] = ()) -> str:
        """A commit with an empty tree carrying ``message``; its SHA."""
        url = self._url("/git/commits")
        response = self._call("POST", url, json={"message": message, "tree": EMPTY_TREE,
                                                 "parents": list(parents)},
                              check=f"that the token can write contents in {self.repo}")
        return str(json_object(response, self._endpoint("POST", url))["sha"])

    def commit_message(self, sha: str) -> str:
        url = self._url(f"/git/commits/{sha}")
        response = self._call("GET", url, check=f"that commit {sha} exists in {self.repo}")
        return str(json_object(response, self._endpoint("GET", url)).get("message", ""))

    def ref_sha(self, ref: str) -> str | None:
        """The SHA ``refs/<ref>`` points at, or None when there is no such ref."""
        url = self._url(f"/git/ref/{quote(ref, safe='/')}")
        response = self._send("GET", url)
        if response.status_code == 404:
            return None
        self._raise_for_status(response, "GET", url, f"that the token can read {self.repo}")
        return str(json_object(response, self._endpoint("GET", url))["object"]["sha"])

    def create_ref(self, ref: str, sha: str) -> bool:
        """Create ``refs/<ref>``; False when it exists already (GitHub answers 422)."""
        url = self._url("/git/refs")
        response = self._send("POST", url, json={"ref": f"refs/{ref}", "sha": sha})
        if response.status_code == 422:
            return False
        self._raise_for_status(response, "POST", url, f"that the token can write {self.repo}")
        return True

    def move_ref(self, ref: str, sha: str) -> bool:
        """Fast-forward ``refs/<ref>`` to ``sha``; False when that is not a fast forward."""
        url = self._url(f"/git/refs/{quote(ref, safe='/')}")
        response = self._send("PATCH", url, json={"sha": sha, "force": False})
        if response.status_code == 422:
            return False
        self._raise_for_status(response, "PATCH", url, f"that the token can write {self.repo}")
        return True

    def delete_ref(self, ref: str) -> None:
        url = self._url(f"/git/refs/{quote(ref, safe='/')}")
        response = self._send("DELETE", url)
        if response.status_code not in (404, 422):
            self._raise_for_status(response, "DELETE", url, f"that the token can write {self.repo}")

