"""A folder of a GitHub repository as a write-once file store, through the contents API.

Files are created with ``PUT /repos/{owner}/{repo}/contents/{path}`` without a
``sha``: GitHub answers 422 when the path exists, so a file is never
overwritten. Reading uses the contents API and, for files over 1 MB (which it
does not return inline), the git blobs API. Requests go through the same
:class:`~rollback_helpers.clients.github_session.GitHubSession` policy as every
other GitHub call (headers, retries, rate limits, errors).
"""

from __future__ import annotations

import base64
import binascii
from dataclasses import dataclass
from urllib.parse import quote

from rollback_helpers.clients.github_answers import error_message, json_list, json_object
from rollback_helpers.clients.github_session import GitHubSession
from rollback_helpers.errors import GitHubError, GitHubNotFound


@dataclass(frozen=True)
class RepoFile:
    """One entry of a folder listing (or a file just written)."""

    path: str
    name: str
    sha: str
    size: int
    html_url: str
    type: str = "file"


LISTING_LIMIT = 1000  # the contents API lists at most 1,000 entries of a folder
# Rules that stop a commit straight to the branch: a write there answers 409 (GitHub's REST docs,
# "Get rules for a branch"; rulesets and branch protection alike).
BLOCKING_RULES = frozenset({"pull_request", "update", "required_status_checks",
                            "required_deployments", "merge_queue"})


def _entry(item: dict[str, object]) -> RepoFile:
    return RepoFile(path=str(item.get("path", "")), name=str(item.get("name", "")),
                    sha=str(item.get("sha", "")), size=int(str(item.get("size") or 0)),
                    html_url=str(item.get("html_url") or ""), type=str(item.get("type", "file")))


class GitHubContents:
    """Files in one repository's branch, over an existing GitHub session."""

    def __init__(self, session: GitHubSession, branch: str = "") -> None:
        self.session = session
        self.branch = branch

    def _path_url(self, path: str) -> str:
        return self.session.repo_url(f"/contents/{quote(path.strip('/'), safe='/')}")

    def _where(self) -> str:
        return f"{self.session.repo}" + (f" on branch {self.branch!r}" if self.branch else "")

    def writable(self) -> None:
        """The repository is reachable with push permission and the branch exists."""
        repo = self.session.get_object(self.session.repo_url(""), check=f"that {self.session.repo} "
                                        "exists and the token can see it")
        if not (repo.get("permissions") or {}).get("push", False):
            raise GitHubError(f"The token cannot push to {self.session.repo}, so records cannot "
                              "be written there.",
                              "Use a token with contents: write on that repository, or another "
                              "incidents_dir.")
        if self.branch:
            self.list_folder("")  # a missing branch answers 404 "No commit found for the ref"
        branch = self.branch or str(repo.get("default_branch") or "main")
        self.check_rules(branch)

    def check_rules(self, branch: str) -> None:
        """The branch's rules (``GET /repos/{o}/{r}/rules/branches/{branch}``): one that stops a
        commit straight to it (a pull request required, updates restricted, …) makes it no place
        for records, said now rather than after the run."""
        url = self.session.repo_url(f"/rules/branches/{quote(branch, safe='')}")
        rules = self.session.get_list(url, check=f"the rules of branch {branch!r} in "
                                      f"{self.session.repo}")
        blocking = sorted({str(r.get("type")) for r in rules} & BLOCKING_RULES)
        if blocking:
            raise GitHubError(f"The branch {branch!r} of {self.session.repo} has rules that refuse "
                              f"a commit straight to it ({', '.join(blocking)}), so records cannot "
                              "be written there.",
                              "Name a branch without such rules in the location (e.g. "
                              "github://OWNER/REPO@incident-records/incidents), or let the "
                              "runbook's token bypass the ruleset.")

    def create_file(self, path: str, data: bytes, message: str) -> RepoFile | None:
        """Create ``path``; None when it already exists (GitHub never overwrites it here)."""
        url = self._path_url(path)
        body: dict[str, str] = {"message": message, "content": base64.b64encode(data).decode()}
        if self.branch:
            body["branch"] = self.branch
        response = self.session.send("PUT", url, json=body)
        if response.status_code == 422 and "sha" in error_message(response) \
                and "supplied" in error_message(response):
            return None  # '"sha" wasn't supplied': the path is taken
        if response.status_code == 409:  # a ruleset, branch protection or push protection
            raise GitHubError(f"GitHub refused to write {path} to {self._where()} (409): "
                              f"{error_message(response).strip()}",
                              "The branch's rules refuse a commit straight to it: name a branch "
                              "without such rules in the location, or let the token bypass them; "
                              "`rollback-runbook check` reads the branch's rules.")
        self.session.raise_for_status(response, "PUT", url,
                                       f"that {self._where()} exists and the token can write it")
        content = json_object(response, self.session.endpoint("PUT", url)).get("content")
        return _entry(content) if isinstance(content, dict) else None

    def list_folder(self, folder: str) -> list[RepoFile]:
        """The files and folders directly in ``folder`` ([] when it does not exist yet)."""
        url = self._path_url(folder)
        response = self.session.send("GET", url, params=self._ref())
        if response.status_code == 404 and "No commit found" in response.text:
            raise GitHubNotFound(f"The branch {self.branch!r} does not exist in "
                                 f"{self.session.repo}.",
                                 "Create it (records are added to it as commits), or name an "
                                 "existing branch in the location.")
        if response.status_code == 404:
            return []
        self.session.raise_for_status(response, "GET", url, f"that {self._where()} exists")
        endpoint = self.session.endpoint("GET", url)
        if response.text.lstrip().startswith("{"):  # a file, not a folder
            return [_entry(json_object(response, endpoint))]
        listed = [_entry(item) for item in json_list(response, endpoint)]
        if len(listed) < LISTING_LIMIT:
            return listed
        return self._tree_listing(folder)  # the contents API stopped at 1,000: every entry

    def _tree_listing(self, folder: str) -> list[RepoFile]:
        """Every entry of ``folder`` through the git trees API (no 1,000-entry cap): the
        folder's tree, found by its entry in the parent's listing (or the branch's root)."""
        folder = folder.strip("/")
        parent, _, name = folder.rpartition("/")
        if name:
            found = [e for e in self.list_folder(parent) if e.name == name and e.type == "dir"]
            if not found:
                return []
            tree = found[0].sha
        else:
            tree = self.branch or "HEAD"
        answer = self.session.get_object(self.session.repo_url(f"/git/trees/{quote(tree)}"),
                                         check=f"the folder {folder or '/'} of {self._where()}")
        if answer.get("truncated"):
            raise GitHubError(f"GitHub truncated the listing of {folder or '/'} in "
                              f"{self._where()}.", "Split the records into sub-folders.")
        prefix = f"{folder}/" if folder else ""
        return [RepoFile(path=prefix + str(e.get("path", "")), name=str(e.get("path", "")),
                         sha=str(e.get("sha", "")), size=int(str(e.get("size") or 0)),
                         html_url="", type="file" if e.get("type") == "blob" else "dir")
                for e in answer.get("tree", []) if isinstance(e, dict)]

    def read_file(self, path: str) -> bytes:
        """A file's exact bytes (through the blobs API when it is too large to come inline)."""
        item = self.session.get_object(self._path_url(path), params=self._ref(),
                                        check=f"that {path} exists in {self._where()}")
        if item.get("type") != "file":
            raise GitHubNotFound(f"{path} in {self._where()} is not a file.", "Check the path.")
        if item.get("encoding") == "base64" and item.get("content"):
            return _decode(str(item["content"]), path)
        return self._blob(str(item.get("sha", "")), path)

    def _blob(self, sha: str, path: str) -> bytes:
        item = self.session.get_object(self.session.repo_url(f"/git/blobs/{sha}"),
                                        check=f"that blob {sha} of {path} exists")
        return _decode(str(item.get("content", "")), path)

    def get_file(self, path: str, ref: str | None = None) -> str:
        """A text file's content at ``ref`` (default branch if None)."""
        url = self.session.repo_url(f"/contents/{quote(path.lstrip('/'), safe='/')}")
        where = f"at ref {ref!r}" if ref else "on the default branch"
        item = self.session.get_object(url, params={"ref": ref} if ref else None,
                                check=f"that {path} exists in {self.session.repo} {where}")
        if item.get("type") != "file" or item.get("encoding") != "base64":
            kind, encoding = item.get("type"), item.get("encoding")
            raise GitHubError(f"{path} in {self.session.repo} is not a regular file GitHub can return "
                              f"inline (type {kind!r}, encoding {encoding!r}).",
                              f"Check the path, or set a local copy of {path} in the config.")
        try:
            return base64.b64decode(str(item.get("content", ""))).decode("utf-8")
        except (binascii.Error, UnicodeDecodeError) as exc:
            raise GitHubError(f"{path} in {self.session.repo} is not UTF-8 text.",
                              f"Check that {path} is the file you meant.") from exc

    def _ref(self) -> dict[str, str] | None:
        return {"ref": self.branch} if self.branch else None


def _decode(content: str, path: str) -> bytes:
    try:
        return base64.b64decode(content)
    except (binascii.Error, ValueError) as exc:
        raise GitHubError(f"GitHub returned {path} in an encoding the runbook cannot read.",
                          "Check the file on GitHub.") from exc
