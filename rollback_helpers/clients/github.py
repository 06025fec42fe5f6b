"""The GitHub endpoints the runbook uses, sent through :class:`GitHubSession`.

Only what the runbook needs: deployment-record issues (list lazily, read,
label), dispatching and watching the promote workflow (conditional, ETag
polling), runs in flight, and reading one file. Comments are
:mod:`.github_comments`, the Git database (the environment lock's references)
:mod:`.github_git`. How requests are sent (headers, retries, rate limits,
redirects, errors) is the session's.
"""

from __future__ import annotations

import base64
import binascii
import logging
import re
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

import httpx

from rollback_helpers.clients.github_access import AccessMixin
from rollback_helpers.clients.github_comments import Comment, CommentsMixin
from rollback_helpers.clients.github_git import GitCommit, GitDataMixin
from rollback_helpers.clients.github_session import json_object
from rollback_helpers.clock import Clock, PollSchedule, parse_iso, utc_iso
from rollback_helpers.errors import (
    GitHubError,
    WorkflowFailed,
)
from rollback_helpers.secrets import Secret

log = logging.getLogger(__name__)
__all__ = ["Comment", "GitCommit", "GitHubClient", "Issue", "WorkflowRun"]

RUN_LISTING_TRIES = 5
RUN_LISTING_INTERVAL = 2.0
CLOCK_SKEW = 60.0  # how far this machine's clock may be ahead of GitHub's
IN_FLIGHT = ("queued", "in_progress", "waiting", "requested", "pending")


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


@dataclass(frozen=True)
class WorkflowRun:
    id: int
    status: str
    conclusion: str | None
    html_url: str
    created_at: str
    updated_at: str
    run_number: int
    head_branch: str
    event: str
    display_title: str
    name: str = ""  # the workflow's name; the title is this too when no run-name is set

    @property
    def finished(self) -> bool:
        return self.status == "completed"

    @property
    def succeeded(self) -> bool:
        return self.conclusion == "success"


@dataclass(frozen=True)
class RepoAccess:
    """What the token may do in the repository, as GitHub tells it."""

    full_name: str
    private: bool
    permissions: Mapping[str, bool]  # the user's role: pull, triage, push, maintain, admin
    token_scopes: tuple[str, ...] | None  # x-oauth-scopes; None: not sent (fine-grained, app)


@dataclass(frozen=True)
class Workflow:
    id: int
    name: str
    path: str
    state: str  # "active", "disabled_manually", "disabled_inactivity", …
    html_url: str


def issue_from_json(item: Mapping[str, Any]) -> Issue:
    labels = tuple(label if isinstance(label, str) else str(label.get("name", ""))
                   for label in item.get("labels") or [])
    return Issue(number=int(item["number"]), title=str(item.get("title") or ""),
                 body=str(item.get("body") or ""), labels=labels,
                 state=str(item.get("state") or ""), created_at=str(item.get("created_at") or ""),
                 html_url=str(item.get("html_url") or ""),
                 author=str((item.get("user") or {}).get("login") or ""))


def run_from_json(item: Mapping[str, Any]) -> WorkflowRun:
    return WorkflowRun(id=int(item["id"]), status=str(item.get("status") or ""),
                       conclusion=item.get("conclusion"), html_url=str(item.get("html_url") or ""),
                       created_at=str(item.get("created_at") or ""),
                       updated_at=str(item.get("updated_at") or ""),
                       run_number=int(item.get("run_number") or 0),
                       head_branch=str(item.get("head_branch") or ""),
                       event=str(item.get("event") or ""),
                       display_title=str(item.get("display_title") or ""),
                       name=str(item.get("name") or ""))


def dispatched_by(runs: Sequence[WorkflowRun], inputs: Mapping[str, str],
                  since: float) -> WorkflowRun | None:
    """Which of ``runs`` (listed after a dispatch at ``since``) the dispatch made.

    When the workflow's ``run-name`` shows its inputs, the run must show all of
    ours (an image by its full reference or its digest's first 12 hex). When no
    title shows any input, the earliest run since the dispatch is ours, as
    before the lock (the lock keeps a second operator from dispatching meanwhile).
    Runs created at or after ``since`` are preferred to those in the clock-skew margin.
    """
    values = [v for v in inputs.values() if v]
    shows_inputs = any(_mentions(r.display_title, v) for r in runs for v in values)
    mine = [r for r in runs if all(_mentions(r.display_title, v) for v in values)] \
        if shows_inputs else list(runs)
    after = [r for r in mine if _created(r) >= since - 1]  # GitHub stamps whole seconds
    return min(after or mine, key=lambda r: (r.created_at, r.id), default=None)


def _mentions(title: str, value: str) -> bool:
    digest = value.partition("@sha256:")[2]
    return value in title or (len(digest) >= 12 and digest[:12] in title)


def _may_be_for(run: WorkflowRun, env: str) -> bool:
    named = re.search(rf"(?<![\w-]){re.escape(env)}(?![\w-])", run.display_title) is not None
    return named or not run.display_title or run.display_title == run.name


def _created(run: WorkflowRun) -> float:
    try:
        return parse_iso(run.created_at)
    except ValueError:
        return 0.0


class GitHubClient(GitDataMixin, CommentsMixin, AccessMixin):
    """GitHub's REST API for one repository (``owner/name``)."""

    def _own_login(self) -> str:
        return self._login  # known once login() was read; never a request of its own

    def __init__(self, http: httpx.Client, repo: str, token: Secret | None, *, clock: Clock,
                 api_url: str = "https://api.github.com", max_retries: int = 5,
                 mutation_spacing: float = 1.0) -> None:
        super().__init__(http, repo, token, clock=clock, api_url=api_url,
                         max_retries=max_retries, mutation_spacing=mutation_spacing)
        self._etags: dict[str, tuple[str, WorkflowRun]] = {}

    # -- issues ------------------------------------------------------------------
    def iter_issues(self, labels: Sequence[str], *, per_page: int = 100) -> Iterator[Issue]:
        """Issues (never pull requests) with all ``labels``, newest first, a page at a time."""
        params = {"labels": ",".join(labels), "state": "all", "sort": "created",
                  "direction": "desc", "per_page": str(max(1, min(100, per_page)))}
        for page in self._pages(self._url("/issues"), params,
                                check=f"that {self.repo} exists and the token can read issues"):
            yield from (issue_from_json(item) for item in page if "pull_request" not in item)

    def get_issue(self, number: int) -> Issue:
        response = self._call("GET", self._url(f"/issues/{number}"),
                              check=f"that issue #{number} exists in {self.repo}")
        return issue_from_json(json_object(response, self._endpoint("GET", response.url)))

    def add_labels(self, number: int, labels: Sequence[str]) -> None:
        """Add labels (keeping the issue's others); unknown labels are created by GitHub."""
        self._call("POST", self._url(f"/issues/{number}/labels"), json={"labels": list(labels)},
                   check=f"that issue #{number} exists in {self.repo}")

    # -- workflows -------------------------------------------------------------------
    def dispatch_workflow(self, workflow: str, ref: str, inputs: Mapping[str, str]) -> WorkflowRun:
        """Start ``workflow`` on ``ref`` once, and return its run, whichever way GitHub reports it.

        A dispatch cannot be de-duplicated by GitHub: after an ambiguous failure the
        runs created since are listed, and one with these inputs counts as ours.
        """
        url = self._url(f"/actions/workflows/{quote(workflow, safe='')}/dispatches")
        check = (f"that .github/workflows/{workflow} exists in {self.repo} on ref {ref!r} and "
                 "declares `on: workflow_dispatch` (the file name, not the workflow's title)")
        body: dict[str, Any] = {"ref": ref, "inputs": dict(inputs), "return_run_details": True}
        since = self.clock.now()

        def taken() -> WorkflowRun | None:
            return self._dispatched_run(workflow, ref, inputs, since)

        answer = self._create_once(url, body, taken)
        if isinstance(answer, httpx.Response) and answer.status_code in (400, 422):
            log.info("dispatch without return_run_details (HTTP %s)", answer.status_code)
            del body["return_run_details"]  # older GHES rejects it
            answer = self._create_once(url, body, taken)
        if isinstance(answer, WorkflowRun):
            return answer
        self._raise_for_status(answer, "POST", url, check)
        if answer.status_code == 200:
            details = json_object(answer, self._endpoint("POST", url))
            return self.get_run(int(details["workflow_run_id"]))
        return self._find_dispatched_run(workflow, ref, inputs, since)

    def _find_dispatched_run(self, workflow: str, ref: str, inputs: Mapping[str, str],
                             since: float) -> WorkflowRun:
        for attempt in range(RUN_LISTING_TRIES):
            if attempt:
                self.clock.sleep(RUN_LISTING_INTERVAL)  # a fresh run takes a moment to be listed
            run = self._dispatched_run(workflow, ref, inputs, since)
            if run is not None:
                return run
        raise GitHubError(
            f"GitHub accepted the dispatch of {workflow} on {ref!r} in {self.repo}, but no run "
            f"created since {utc_iso(since)} was listed after {RUN_LISTING_TRIES} tries.",
            f"Open https://github.com/{self.repo}/actions/workflows/{workflow} and watch the run "
            "there; do not dispatch again until you have checked it is not just queued late.")

    def _dispatched_run(self, workflow: str, ref: str, inputs: Mapping[str, str],
                        since: float) -> WorkflowRun | None:
        """The run our dispatch made, if listed: dispatched on ``ref`` since ``since``, with
        ``inputs`` as far as its title shows them (see :func:`dispatched_by`)."""
        params = {"event": "workflow_dispatch", "branch": ref,
                  "created": f">={utc_iso(since - CLOCK_SKEW)}", "per_page": "100"}
        runs = self._list_runs(workflow, params)
        return dispatched_by(runs, inputs, since)

    def _list_runs(self, workflow: str, params: Mapping[str, str]) -> list[WorkflowRun]:
        url = self._url(f"/actions/workflows/{quote(workflow, safe='')}/runs")
        listing = self._get_object(url, params=params,
                                   check=f"that the workflow {workflow} exists in {self.repo}")
        items = listing.get("workflow_runs") or []
        return [run_from_json(item) for item in items if isinstance(item, dict)]

    def in_flight_runs(self, workflow: str, env: str) -> list[WorkflowRun]:
        """Runs of ``workflow`` for ``env`` not yet completed, whoever started them, oldest first.

        A run's inputs are not in the API; its title is (``run-name``). A run whose
        title names ``env`` counts, and so does one whose title is just the
        workflow's name (it could be for any environment).
        """
        found: dict[int, WorkflowRun] = {}
        for status in IN_FLIGHT:
            for run in self._list_runs(workflow, {"status": status, "per_page": "100"}):
                if not run.finished and _may_be_for(run, env):
                    found[run.id] = run
        return sorted(found.values(), key=lambda r: (r.created_at, r.id))

    def get_run(self, run_id: int) -> WorkflowRun:
        """One run; polled cheaply with ``If-None-Match`` (a 304 costs no rate limit)."""
        url = self._url(f"/actions/runs/{run_id}")
        cached = self._etags.get(url)
        headers = {"If-None-Match": cached[0]} if cached else None
        response = self._call("GET", url, headers=headers,
                              check=f"that run {run_id} belongs to {self.repo}")
        if response.status_code == 304 and cached:
            return cached[1]
        run = run_from_json(json_object(response, self._endpoint("GET", url)))
        if response.headers.get("etag"):
            self._etags[url] = (response.headers["etag"], run)
        return run

    def watch_run(self, run_id: int, *, timeout: float, interval: float = 3.0,
                  on_update: Callable[[WorkflowRun, float], None] | None = None) -> WorkflowRun:
        """Poll every ``interval`` s (a fixed rate: ``on_update``'s work does not delay the next
        poll) until the run completes; the caller judges its conclusion."""
        schedule = PollSchedule(self.clock, interval)
        while True:
            run = self.get_run(run_id)
            elapsed = self.clock.now() - schedule.start
            if on_update is not None:
                on_update(run, elapsed)
            if run.finished:
                return run
            if elapsed >= timeout:
                raise self._watch_timeout(run, timeout)
            schedule.wait(until=schedule.start + timeout)

    def _watch_timeout(self, run: WorkflowRun, timeout: float) -> WorkflowFailed:
        return WorkflowFailed(
            f"Workflow run {run.html_url} in {self.repo} is still {run.status!r} after "
            f"{timeout:.0f} s of watching.",
            f"It may still finish: watch it with `gh run watch {run.id} --repo {self.repo}` or in "
            "the browser, then re-run the verification cells. Do not dispatch again while it runs "
            f"(cancel it first with `gh run cancel {run.id} --repo {self.repo}` if it is stuck).")

    # -- the repository and its workflow (read only: what a preflight checks) ---------------
    def get_repository(self) -> RepoAccess:
        """The repository, the user's permissions in it and the token's scopes."""
        url = self._url("")
        response = self._call("GET", url, check=f"that {self.repo} exists and the token can see it")
        item = json_object(response, self._endpoint("GET", url))
        scopes = response.headers.get("x-oauth-scopes")
        found = item.get("permissions")
        return RepoAccess(
            full_name=str(item.get("full_name") or self.repo), private=bool(item.get("private")),
            permissions={str(k): bool(v) for k, v in found.items()} if isinstance(found, dict)
            else {},
            token_scopes=None if scopes is None else tuple(
                s.strip() for s in scopes.split(",") if s.strip()))

    def get_workflow(self, workflow: str) -> Workflow:
        """One workflow by file name or id; GitHubNotFound if the repository has no such one."""
        item = self._get_object(self._url(f"/actions/workflows/{quote(workflow, safe='')}"),
                                check=f"that .github/workflows/{workflow} exists in {self.repo} "
                                      "on its default branch")
        return Workflow(id=int(item.get("id") or 0), name=str(item.get("name") or ""),
                        path=str(item.get("path") or ""), state=str(item.get("state") or ""),
                        html_url=str(item.get("html_url") or ""))

    # -- files -------------------------------------------------------------------------
    def get_file(self, path: str, ref: str | None = None) -> str:
        """A text file's content at ``ref`` (default branch if None)."""
        url = self._url(f"/contents/{quote(path.lstrip('/'), safe='/')}")
        where = f"at ref {ref!r}" if ref else "on the default branch"
        item = self._get_object(url, params={"ref": ref} if ref else None,
                                check=f"that {path} exists in {self.repo} {where}")
        if item.get("type") != "file" or item.get("encoding") != "base64":
            kind, encoding = item.get("type"), item.get("encoding")
            raise GitHubError(f"{path} in {self.repo} is not a regular file GitHub can return "
                              f"inline (type {kind!r}, encoding {encoding!r}).",
                              f"Check the path, or set a local copy of {path} in the config.")
        try:
            return base64.b64decode(str(item.get("content", ""))).decode("utf-8")
        except (binascii.Error, UnicodeDecodeError) as exc:
            raise GitHubError(f"{path} in {self.repo} is not UTF-8 text.",
                              f"Check that {path} is the file you meant.") from exc

