"""Workflows: dispatching the promote workflow once, finding and watching its run
(conditional ETag polling), runs in flight, and reading a workflow's state."""

from __future__ import annotations

import logging
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

import httpx

from rollback_helpers.clients.github_answers import json_object
from rollback_helpers.clients.github_session import GitHubSession
from rollback_helpers.clock import PollSchedule, parse_iso, utc_iso
from rollback_helpers.errors import GitHubError, WorkflowFailed

log = logging.getLogger("rollback_helpers.clients.github")

RUN_LISTING_TRIES = 5
RUN_LISTING_INTERVAL = 2.0
CLOCK_SKEW = 60.0  # how far this machine's clock may be ahead of GitHub's
IN_FLIGHT_WINDOW = 30 * 86400.0  # the longest a run stays in flight (reviewers' 30 days)
LISTING_CAP = 1000  # GitHub lists at most 1,000 runs for a filtered listing
IN_FLIGHT = ("queued", "in_progress", "waiting", "requested", "pending")


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
class Workflow:
    id: int
    name: str
    path: str
    state: str  # "active", "disabled_manually", "disabled_inactivity", …
    html_url: str


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



class GitHubActions:
    """The workflow endpoints, over a GitHub session."""

    def __init__(self, session: GitHubSession) -> None:
        self.session = session
        self._etags: dict[str, tuple[str, WorkflowRun]] = {}

    def dispatch_workflow(self, workflow: str, ref: str, inputs: Mapping[str, str]) -> WorkflowRun:
        """Start ``workflow`` on ``ref`` once, and return its run, whichever way GitHub reports it.

        A dispatch cannot be de-duplicated by GitHub: after an ambiguous failure the
        runs created since are listed, and one with these inputs counts as ours.
        """
        url = self.session.repo_url(f"/actions/workflows/{quote(workflow, safe='')}/dispatches")
        check = (f"that .github/workflows/{workflow} exists in {self.session.repo} on ref {ref!r} and "
                 "declares `on: workflow_dispatch` (the file name, not the workflow's title)")
        body: dict[str, Any] = {"ref": ref, "inputs": dict(inputs), "return_run_details": True}
        since = self.session.clock.now()

        def taken() -> WorkflowRun | None:
            return self._dispatched_run(workflow, ref, inputs, since)

        answer = self.session.create_once(url, body, taken)
        if isinstance(answer, httpx.Response) and answer.status_code in (400, 422):
            log.info("dispatch without return_run_details (HTTP %s)", answer.status_code)
            del body["return_run_details"]  # older GHES rejects it
            answer = self.session.create_once(url, body, taken)
        if isinstance(answer, WorkflowRun):
            return answer
        self.session.raise_for_status(answer, "POST", url, check)
        if answer.status_code == 200:
            details = json_object(answer, self.session.endpoint("POST", url))
            return self.get_run(int(details["workflow_run_id"]))
        return self._find_dispatched_run(workflow, ref, inputs, since)

    def _find_dispatched_run(self, workflow: str, ref: str, inputs: Mapping[str, str],
                             since: float) -> WorkflowRun:
        for attempt in range(RUN_LISTING_TRIES):
            if attempt:
                self.session.clock.sleep(RUN_LISTING_INTERVAL)  # a fresh run takes a moment to be listed
            run = self._dispatched_run(workflow, ref, inputs, since)
            if run is not None:
                return run
        raise GitHubError(
            f"GitHub accepted the dispatch of {workflow} on {ref!r} in {self.session.repo}, but no run "
            f"created since {utc_iso(since)} was listed after {RUN_LISTING_TRIES} tries.",
            f"Open https://github.com/{self.session.repo}/actions/workflows/{workflow} and watch the run "
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
        url = self.session.repo_url(f"/actions/workflows/{quote(workflow, safe='')}/runs")
        listing = self.session.get_object(url, params=params,
                                   check=f"that the workflow {workflow} exists in {self.session.repo}")
        items = listing.get("workflow_runs") or []
        return [run_from_json(item) for item in items if isinstance(item, dict)]

    def in_flight_runs(self, workflow: str, env: str) -> list[WorkflowRun]:
        """Runs of ``workflow`` for ``env`` not yet completed, whoever started them, oldest first.

        One listing of the runs created in the last :data:`IN_FLIGHT_WINDOW` (a run cannot
        stay in flight longer: GitHub fails a job waiting for an Environment's reviewers after
        30 days), a page of 100 at a time; only if GitHub would not list them all (over 1,000
        for a filtered listing) one listing per in-flight status, as GitHub's API offers.
        A run's inputs are not in the API; its title is (``run-name``). A run whose
        title names ``env`` counts, and so does one whose title is just the
        workflow's name (it could be for any environment).
        """
        since = utc_iso(self.session.clock.now() - IN_FLIGHT_WINDOW - CLOCK_SKEW)
        runs = self._every_run(workflow, {"created": f">={since}", "per_page": "100"})
        if runs is None:
            runs = [run for status in IN_FLIGHT
                    for run in self._list_runs(workflow, {"status": status, "per_page": "100"})]
        found = {run.id: run for run in runs if not run.finished and _may_be_for(run, env)}
        return sorted(found.values(), key=lambda r: (r.created_at, r.id))

    def _every_run(self, workflow: str, params: Mapping[str, str]) -> list[WorkflowRun] | None:
        """Every run the listing holds, page by page; None if GitHub would not list them all."""
        url: str | None = self.session.repo_url(
            f"/actions/workflows/{quote(workflow, safe='')}/runs")
        query: Mapping[str, str] | None = params
        runs: list[WorkflowRun] = []
        while url is not None:
            response = self.session.call("GET", url, params=query, check=(
                f"that the workflow {workflow} exists in {self.session.repo}"))
            listing = json_object(response, self.session.endpoint("GET", url))
            if int(listing.get("total_count") or 0) > LISTING_CAP:
                return None
            items = listing.get("workflow_runs") or []
            runs += [run_from_json(item) for item in items if isinstance(item, dict)]
            url, query = response.links.get("next", {}).get("url"), None
        return runs

    def get_run(self, run_id: int) -> WorkflowRun:
        """One run; polled cheaply with ``If-None-Match`` (a 304 costs no rate limit)."""
        url = self.session.repo_url(f"/actions/runs/{run_id}")
        cached = self._etags.get(url)
        headers = {"If-None-Match": cached[0]} if cached else None
        response = self.session.call("GET", url, headers=headers,
                              check=f"that run {run_id} belongs to {self.session.repo}")
        if response.status_code == 304 and cached:
            return cached[1]
        run = run_from_json(json_object(response, self.session.endpoint("GET", url)))
        if response.headers.get("etag"):
            self._etags[url] = (response.headers["etag"], run)
        return run

    def watch_run(self, run_id: int, *, timeout: float, interval: float = 3.0,
                  on_update: Callable[[WorkflowRun, float], None] | None = None) -> WorkflowRun:
        """Poll every ``interval`` s (a fixed rate: ``on_update``'s work does not delay the next
        poll) until the run completes; the caller judges its conclusion."""
        schedule = PollSchedule(self.session.clock, interval)
        while True:
            run = self.get_run(run_id)
            elapsed = self.session.clock.now() - schedule.start
            if on_update is not None:
                on_update(run, elapsed)
            if run.finished:
                return run
            if elapsed >= timeout:
                raise self._watch_timeout(run, timeout)
            schedule.wait(until=schedule.start + timeout)

    def _watch_timeout(self, run: WorkflowRun, timeout: float) -> WorkflowFailed:
        return WorkflowFailed(
            f"Workflow run {run.html_url} in {self.session.repo} is still {run.status!r} after "
            f"{timeout:.0f} s of watching.",
            f"It may still finish: watch it with `gh run watch {run.id} --repo {self.session.repo}` or in "
            "the browser, then re-run the verification cells. Do not dispatch again while it runs "
            f"(cancel it first with `gh run cancel {run.id} --repo {self.session.repo}` if it is "
            "stuck).")

    def get_workflow(self, workflow: str) -> Workflow:
        """One workflow by file name or id; GitHubNotFound if the repository has no such one."""
        url = self.session.repo_url(f"/actions/workflows/{quote(workflow, safe='')}")
        item = self.session.get_object(url, check=f"that .github/workflows/{workflow} exists in "
                                                  f"{self.session.repo} on its default branch")
        return Workflow(id=int(item.get("id") or 0), name=str(item.get("name") or ""),
                        path=str(item.get("path") or ""), state=str(item.get("state") or ""),
                        html_url=str(item.get("html_url") or ""))
