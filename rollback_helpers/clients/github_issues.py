"""Deployment-record issues: listed lazily (newest first), read, labelled."""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from rollback_helpers.clients.github_answers import json_object
from rollback_helpers.clients.github_session import GitHubSession


@dataclass(frozen=True)
class Issue:
    number: int
    title: str
    body: str
    labels: tuple[str, ...]
    state: str
    created_at: str
    html_url: str
    author: str


def issue_from_json(item: Mapping[str, Any]) -> Issue:
    labels = tuple(label if isinstance(label, str) else str(label.get("name", ""))
                   for label in item.get("labels") or [])
    return Issue(number=int(item["number"]), title=str(item.get("title") or ""),
                 body=str(item.get("body") or ""), labels=labels,
                 state=str(item.get("state") or ""), created_at=str(item.get("created_at") or ""),
                 html_url=str(item.get("html_url") or ""),
                 author=str((item.get("user") or {}).get("login") or ""))



class GitHubIssues:
    """The issue endpoints, over a GitHub session."""

    def __init__(self, session: GitHubSession) -> None:
        self.session = session

    def iter_issues(self, labels: Sequence[str], *, per_page: int = 100) -> Iterator[Issue]:
        """Issues (never pull requests) with all ``labels``, newest first, a page at a time."""
        params = {"labels": ",".join(labels), "state": "all", "sort": "created",
                  "direction": "desc", "per_page": str(max(1, min(100, per_page)))}
        for page in self.session.pages(self.session.repo_url("/issues"), params,
                                check=f"that {self.session.repo} exists and the token can read issues"):
            yield from (issue_from_json(item) for item in page if "pull_request" not in item)

    def get_issue(self, number: int) -> Issue:
        response = self.session.call("GET", self.session.repo_url(f"/issues/{number}"),
                              check=f"that issue #{number} exists in {self.session.repo}")
        return issue_from_json(json_object(response, self.session.endpoint("GET", response.url)))

    def add_labels(self, number: int, labels: Sequence[str]) -> None:
        """Add labels (keeping the issue's others); unknown labels are created by GitHub."""
        self.session.call("POST", self.session.repo_url(f"/issues/{number}/labels"),
                          json={"labels": list(labels)},
                          check=f"that issue #{number} exists in {self.session.repo}")
