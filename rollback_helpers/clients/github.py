"""GitHub's REST API for one repository, as composed parts over one :class:`GitHubSession`.

Only what the runbook needs: deployment-record issues (:mod:`.github_issues`),
their comments (:mod:`.github_comments`), the promote workflow and its runs
(:mod:`.github_actions`), the Git database the environment lock is made of
(:mod:`.github_git`), who may do what (:mod:`.github_access`) and files
(:mod:`.github_contents`). How requests are sent (headers, retries, rate limits,
redirects, errors) is the session's, through its public methods only.
"""

from __future__ import annotations

import httpx

from rollback_helpers.clients.github_access import GitHubAccess, RepoAccess
from rollback_helpers.clients.github_actions import GitHubActions, Workflow, WorkflowRun
from rollback_helpers.clients.github_comments import Comment, GitHubComments
from rollback_helpers.clients.github_contents import GitHubContents
from rollback_helpers.clients.github_git import GitCommit, GitHubGit
from rollback_helpers.clients.github_issues import GitHubIssues, Issue
from rollback_helpers.clients.github_session import GitHubSession
from rollback_helpers.clock import Clock
from rollback_helpers.secrets import Secret

__all__ = ["Comment", "GitCommit", "GitHubClient", "Issue", "RepoAccess", "Workflow",
           "WorkflowRun"]


class GitHubClient:
    """GitHub's REST API for one repository (``owner/name``): one session, and a part per
    family of endpoints (``issues``, ``comments``, ``actions``, ``git``, ``access``,
    ``contents``)."""

    def __init__(self, http: httpx.Client, repo: str, token: Secret | None, *, clock: Clock,
                 api_url: str = "https://api.github.com", max_retries: int = 5,
                 mutation_spacing: float = 1.0) -> None:
        self.session = GitHubSession(http, repo, token, clock=clock, api_url=api_url,
                                     max_retries=max_retries, mutation_spacing=mutation_spacing)
        self.issues = GitHubIssues(self.session)
        self.access = GitHubAccess(self.session)
        self.comments = GitHubComments(self.session, own_login=lambda: self.access.known_login)
        self.actions = GitHubActions(self.session)
        self.git = GitHubGit(self.session)
        self.contents = GitHubContents(self.session)

    def __repr__(self) -> str:
        return f"{type(self).__name__}(repo={self.repo!r}, api_url={self.session.api_url!r})"

    @property
    def repo(self) -> str:
        return self.session.repo

    @property
    def clock(self) -> Clock:
        return self.session.clock
