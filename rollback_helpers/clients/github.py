"""The GitHub endpoints the runbook uses, sent through :class:`GitHubSession`.

Only what the runbook needs: deployment-record issues (list lazily, read,
label; comments are :mod:`.github_comments`), dispatching and watching the
promote workflow (conditional, ETag polling), and reading one file. How requests
are sent (headers, retries, rate limits, redirects, errors) is the session's.
"""

from __future__ import annotations

import base64
import binascii
import logging
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

import httpx

from rollback_helpers.clients.github_comments import Comment
from rollback_helpers.clients.github_refs import RefsMixin
from rollback_helpers.clients.github_session import json_list, json_object
from rollback_helpers.clock import Clock, utc_iso
from rollback_helpers.errors import (
    GitHubError,
    WorkflowFailed,
)
from rollback_helpers.secrets import Secret

log = logging.getLogger(__name__)
__all__ = ["Comment", "GitHubClient", "Issue", "WorkflowRun"]

RUN_LISTING_TRIES = 5
IN_FLIGHT = ("queued", "in_progress", "waiting", "requested", "pending")
RUN_LISTING_INTERVAL = 2.0


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

    @property
    def finished(self) -> bool:
        return self.status == "completed"

    @property
    def succeeded(self) -> bool:
        return self.conclusion == "success"


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
                       display_title=str(item.get("display_title") or ""))


class GitHubClient(RefsMixin):
    """GitHub's REST API for one repository (``owner/name``)."""

    def __init__(self, http: httpx.Client, repo: str, token: Secret | None, *, clock: Clock,
                 api_url: str = "https://api.github.com", max_retries: int = 5,
                 mutation_spacing: float = 1.0) -> None:
        super().__init__(http, repo, token, clock=clock, api_url=api_url,
                         max_retries=max_retries, mutation_spacing=mutation_spacing)
        self._etags: dict[str, tuple[str, WorkflowRun]] = {}

    # -- issues ------------------------------------------------------------------
    def iter_issues(self, labels: Sequence[str], *, per_page: int = 100) -> Iterator[Issue]:
        """Issues (never pull requests) with all ``labels``, newest first, a page at a time."""
        params: dict[str, str] | None = {
            "labels": ",".join(labels), "state": "all", "sort": "created", "direction": "desc",
            "per_page": str(max(1, min(100, per_page)))}
        url: str | None = self._url("/issues")
        while url is not None:
            response = self._call("GET", url, params=params,
                                  check=f"that {self.repo} exists and the token can read issues")
            for item in json_list(response, self._endpoint("GET", url)):
                if "pull_request" not in item:
                    yield issue_from_json(item)
            url, params = response.links.get("next", {}).get("url"), None

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
        """Start ``workflow`` on ``ref`` and return its run, whichever way GitHub reports it."""
        url = self._url(f"/actions/workflows/{quote(workflow, safe='')}/dispatches")
        check = (f"that .github/workflows/{workflow} exists in {self.repo} on ref {ref!r} and "
                 "declares `on: workflow_dispatch` (the file name, not the workflow's title)")
        body: dict[str, Any] = {"ref": ref, "inputs": dict(inputs), "return_run_details": True}
        since = self.clock.now()
        response = self._send("POST", url, json=body)
        if response.status_code in (400, 422):  # older GHES rejects return_run_details
            log.info("dispatch without return_run_details (HTTP %s)", response.status_code)
            del body["return_run_details"]
            response = self._send("POST", url, json=body)
        self._raise_for_status(response, "POST", url, check)
        if response.status_code == 200:
            details = json_object(response, self._endpoint("POST", url))
            return self.get_run(int(details["workflow_run_id"]))
        return self._find_dispatched_run(workflow, ref, since)

    def _find_dispatched_run(self, workflow: str, ref: str, since: float) -> WorkflowRun:
        url = self._url(f"/actions/workflows/{quote(workflow, safe='')}/runs")
        params = {"event": "workflow_dispatch", "branch": ref, "created": f">={utc_iso(since)}",
                  "per_page": "20"}
        for attempt in range(RUN_LISTING_TRIES):
            if attempt:
                self.clock.sleep(RUN_LISTING_INTERVAL)  # a fresh run takes a moment to be listed
            response = self._call("GET", url, params=params,
                                  check=f"that the workflow {workflow} exists in {self.repo}")
            runs = json_object(response, self._endpoint("GET", url)).get("workflow_runs") or []
            if runs:  # the earliest since our dispatch is ours (later ones are someone else's)
                return run_from_json(min(runs, key=lambda r: (r["created_at"], r["id"])))
        raise GitHubError(
            f"GitHub accepted the dispatch of {workflow} on {ref!r} in {self.repo}, but no run "
            f"created since {utc_iso(since)} was listed after {RUN_LISTING_TRIES} tries.",
            f"Open https://github.com/{self.repo}/actions/workflows/{workflow} and watch the run "
            "there; do not dispatch again until you have checked it is not just queued late.")

    def in_flight_runs(self, workflow: str, env: str) -> list[WorkflowRun]:
        """Runs of ``workflow`` for ``env`` not yet completed, whoever started them."""
        url = self._url(f"/actions/workflows/{quote(workflow, safe='')}/runs")
        runs: list[WorkflowRun] = []
        for status in IN_FLIGHT:
            response = self._call("GET", url, params={"status": status, "per_page": "100"},
                                  check=f"that the workflow {workflow} exists in {self.repo}")
            items = json_object(response, self._endpoint("GET", url)).get("workflow_runs") or []
            runs += [run_from_json(r) for r in items if env in str(r.get("display_title", ""))]
        return runs

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
        """Poll until the run completes; the caller judges its conclusion."""
        started = self.clock.now()
        while True:
            run = self.get_run(run_id)
            elapsed = self.clock.now() - started
            if on_update is not None:
                on_update(run, elapsed)
            if run.finished:
                return run
            if elapsed >= timeout:
                raise self._watch_timeout(run, timeout)
            self.clock.sleep(min(interval, timeout - elapsed))

    def _watch_timeout(self, run: WorkflowRun, timeout: float) -> WorkflowFailed:
        return WorkflowFailed(
            f"Workflow run {run.html_url} in {self.repo} is still {run.status!r} after "
            f"{timeout:.0f} s of watching.",
            f"It may still finish: watch it with `gh run watch {run.id} --repo {self.repo}` or in "
            "the browser, then re-run the verification cells. Do not dispatch again while it runs "
            f"(cancel it first with `gh run cancel {run.id} --repo {self.repo}` if it is stuck).")

    # -- files -------------------------------------------------------------------------
    def get_file(self, path: str, ref: str | None = None) -> str:
        """A text file's content at ``ref`` (default branch if None)."""
        url = self._url(f"/contents/{quote(path.lstrip('/'), safe='/')}")
        where = f"at ref {ref!r}" if ref else "on the default branch"
        response = self._call("GET", url, params={"ref": ref} if ref else None,
                              check=f"that {path} exists in {self.repo} {where}")
        item = json_object(response, self._endpoint("GET", url))
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

