"""Who may approve: collaborator permissions, GitHub Environments' required reviewers, and
a workflow run waiting on them (pending deployments, reviews).

The runbook's own approval gate asks :meth:`GitHubAccess.permission` whether an
approver has write access (``admin``, ``maintain`` and ``write`` answer
``admin``/``write``), and :meth:`GitHubAccess.writers` who could approve at all.
GitHub's native gate is an Environment with required reviewers: a run that
deploys to it waits (``status: waiting``) until one of them approves or rejects.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

from rollback_helpers.clients.github_answers import json_object
from rollback_helpers.clients.github_session import GitHubSession

WRITE = frozenset({"admin", "write"})  # the legacy field: maintain reads "write", triage "read"


@dataclass(frozen=True)
class RepoAccess:
    """What the token may do in the repository, as GitHub tells it."""

    full_name: str
    private: bool
    permissions: Mapping[str, bool]  # the user's role: pull, triage, push, maintain, admin
    token_scopes: tuple[str, ...] | None  # x-oauth-scopes; None: not sent (fine-grained, app)


@dataclass(frozen=True)
class EnvironmentGate:
    """A GitHub Environment's required-reviewers rule."""

    name: str
    reviewers: tuple[str, ...]        # logins, and teams as ``org/slug``
    prevent_self_review: bool


@dataclass(frozen=True)
class PendingDeployment:
    environment: str
    reviewers: tuple[str, ...]
    current_user_can_approve: bool


@dataclass(frozen=True)
class Review:
    """One approval or rejection of a waiting run's deployment."""

    user: str
    state: str                        # "approved" or "rejected"
    comment: str
    environments: tuple[str, ...]


def _reviewer(item: Mapping[str, Any]) -> str:
    who = item.get("reviewer") or {}
    if item.get("type") == "Team":
        org = ((who.get("organization") or {}).get("login")) or ""
        return f"{org}/{who.get('slug', '')}" if org else str(who.get("slug") or who.get("name"))
    return str(who.get("login") or "")


class GitHubAccess:
    """Who may do what: the repository's permissions and environment reviews, over a GitHub session."""

    def __init__(self, session: GitHubSession) -> None:
        self.session = session
        self.known_login = ""  # the token's account once login() was read ("" before)

    def get_repository(self) -> RepoAccess:
        """The repository, the user's permissions in it and the token's scopes."""
        url = self.session.repo_url("")
        response = self.session.call(
            "GET", url, check=f"that {self.session.repo} exists and the token can see it")
        item = json_object(response, self.session.endpoint("GET", url))
        scopes = response.headers.get("x-oauth-scopes")
        found = item.get("permissions")
        return RepoAccess(
            full_name=str(item.get("full_name") or self.session.repo), private=bool(item.get("private")),
            permissions={str(k): bool(v) for k, v in found.items()} if isinstance(found, dict)
            else {},
            token_scopes=None if scopes is None else tuple(
                s.strip() for s in scopes.split(",") if s.strip()))

    def login(self) -> str:
        """The account the token acts as (``GET /user``), read once: the runbook's own voice."""
        if not self.known_login:
            found = self.session.get_object(f"{self.session.api_url}/user",
                                            check="that the token is valid")
            self.known_login = str(found.get("login") or "")
        return self.known_login

    def permission(self, user: str) -> str:
        """``admin``, ``write``, ``read`` or ``none``: ``user``'s access to the repository."""
        url = self.session.repo_url(f"/collaborators/{quote(user, safe='')}/permission")
        found = self.session.find_object(url, check=f"that {user} is a GitHub user")
        return str((found or {}).get("permission") or "none")

    def writers(self, *, limit: int = 100) -> list[str]:
        """Logins with write access or more (the first ``limit``; one page of GitHub's)."""
        found = self.session.get_list(self.session.repo_url("/collaborators"),
                               params={"permission": "push", "per_page": str(limit)},
                               check=f"that the token can list the collaborators of {self.session.repo}")
        return [str((item or {}).get("login") or "") for item in found]

    def environment_gate(self, name: str) -> EnvironmentGate | None:
        """The Environment's required-reviewers rule, or None (no such environment or rule)."""
        found = self.session.find_object(self.session.repo_url(f"/environments/{quote(name, safe='')}"),
                                  check=f"the environment {name!r}")
        rules = (found or {}).get("protection_rules") or []
        for rule in rules:
            if rule.get("type") == "required_reviewers" and rule.get("reviewers"):
                return EnvironmentGate(name, tuple(_reviewer(r) for r in rule["reviewers"]),
                                       bool(rule.get("prevent_self_review")))
        return None

    def pending_deployments(self, run_id: int) -> list[PendingDeployment]:
        found = self.session.get_list(self.session.repo_url(f"/actions/runs/{run_id}/pending_deployments"),
                               check=f"that run {run_id} belongs to {self.session.repo}")
        return [PendingDeployment(str((item.get("environment") or {}).get("name") or ""),
                                  tuple(_reviewer(r) for r in item.get("reviewers") or []),
                                  bool(item.get("current_user_can_approve")))
                for item in found]

    def reviews(self, run_id: int) -> list[Review]:
        """Approvals and rejections of a run's deployments, as GitHub keeps them."""
        found = self.session.get_list(self.session.repo_url(f"/actions/runs/{run_id}/approvals"),
                               check=f"that run {run_id} belongs to {self.session.repo}")
        return [Review(str((item.get("user") or {}).get("login") or ""), str(item.get("state")),
                       str(item.get("comment") or ""),
                       tuple(str(e.get("name")) for e in item.get("environments") or []))
                for item in found]
