"""Issue comments: list, find by a hidden marker, create at most once, edit in place.

A run's record comment carries a hidden marker (an HTML comment on its first
line), so a re-run, or the same run after an ambiguous failure, finds it again
instead of writing a second one. Creating a comment is not idempotent on
GitHub: after a timeout or a 5xx once the request was sent, the comment may
exist; :meth:`GitHubComments.create_comment` looks for its marker before it sends
again, :meth:`GitHubComments.add_comment` (plain notes, no marker) for the same
body written since.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from rollback_helpers.clients.github_answers import json_object
from rollback_helpers.clients.github_session import GitHubSession
from rollback_helpers.clock import parse_iso

PER_PAGE = 100
CLOCK_SKEW = 300.0  # seconds a laptop's clock may be off GitHub's, when matching our own note


@dataclass(frozen=True)
class Comment:
    id: int
    body: str
    user: str
    created_at: str
    updated_at: str
    html_url: str


def comment_from_json(item: Mapping[str, Any]) -> Comment:
    return Comment(id=int(item["id"]), body=str(item.get("body") or ""),
                   user=str((item.get("user") or {}).get("login") or ""),
                   created_at=str(item.get("created_at") or ""),
                   updated_at=str(item.get("updated_at") or ""),
                   html_url=str(item.get("html_url") or ""))


class GitHubComments:
    """Comments on issues, over a GitHub session."""

    def __init__(self, session: GitHubSession, *,
                 own_login: Callable[[], str] = lambda: "") -> None:
        self.session = session
        self.own_login = own_login  # the token's account once known ("" reads any author)

    @property
    def repo(self) -> str:
        return self.session.repo

    def list_comments(self, number: int) -> list[Comment]:
        """Every comment on issue ``number``, oldest first (all pages)."""
        pages = self.session.pages(self.session.repo_url(f"/issues/{number}/comments"),
                                   {"per_page": str(PER_PAGE)},
                                   check=f"that issue #{number} exists in {self.session.repo}")
        return [comment_from_json(item) for page in pages for item in page]

    def find_comment(self, number: int, marker: str, *, author: str = "") -> Comment | None:
        """The oldest comment on issue ``number`` whose body starts with ``marker`` and, if
        ``author`` is given, that ``author`` wrote (a marker anyone else copied is not ours)."""
        found = [c for c in self.list_comments(number) if c.body.lstrip().startswith(marker)
                 and (not author or c.user.lower() == author.lower())]
        return min(found, key=_age, default=None)

    def get_comment(self, comment_id: int) -> Comment | None:
        """Comment ``comment_id`` of this repository's issues, or None if it does not exist."""
        found = self.session.find_object(
            self.session.repo_url(f"/issues/comments/{comment_id}"),
            check=f"that comment {comment_id} exists in {self.session.repo}")
        return comment_from_json(found) if found is not None else None

    def create_comment(self, number: int, body: str, *, marker: str) -> Comment:
        """Comment on issue ``number`` once: after an ambiguous failure, ``marker`` is
        looked for before the comment is sent again. ``body`` must contain ``marker``."""
        if not marker or marker not in body:
            raise ValueError("create_comment: the body must contain its marker")
        return self._post_comment(number, body, lambda: self.find_comment(
            number, marker, author=self.own_login()))

    def add_comment(self, number: int, body: str) -> str:
        """A plain note on issue ``number``; returns the comment's web address.

        After an ambiguous failure, a comment with this exact body written since the
        first attempt counts as this one.
        """
        since = self.session.clock.now() - CLOCK_SKEW

        def written() -> Comment | None:
            same = [c for c in self.list_comments(number)
                    if c.body == body and _created(c) >= since]
            return max(same, key=_age, default=None)

        return self._post_comment(number, body, written).html_url

    def edit_comment(self, comment_id: int, body: str) -> Comment:
        """Replace comment ``comment_id``'s body (``PATCH``: safe to repeat)."""
        url = self.session.repo_url(f"/issues/comments/{comment_id}")
        response = self.session.call("PATCH", url, json={"body": body},
                              check=f"that comment {comment_id} exists in {self.session.repo} and the "
                                    "token can write issues")
        return comment_from_json(json_object(response, self.session.endpoint("PATCH", url)))

    def _post_comment(self, number: int, body: str,
                      effect: Callable[[], Comment | None]) -> Comment:
        url = self.session.repo_url(f"/issues/{number}/comments")
        answer = self.session.create_once(url, {"body": body}, effect)
        if isinstance(answer, Comment):
            return answer
        self.session.raise_for_status(answer, "POST", url,
                                      f"that issue #{number} exists in {self.session.repo}")
        return comment_from_json(json_object(answer, self.session.endpoint("POST", url)))


def _created(comment: Comment) -> float:
    try:
        return parse_iso(comment.created_at)
    except ValueError:
        return 0.0


def _age(comment: Comment) -> tuple[float, int]:
    return _created(comment), comment.id
