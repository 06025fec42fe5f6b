"""A thin GitHub REST client over an injected ``httpx.Client``.

Only what the runbook needs: deployment-record issues (list lazily, read,
comment, label), dispatching and watching the promote workflow, and reading one
file. Policy lives here, once: GitHub's headers, retries with exponential
backoff on 5xx and connection errors, waiting out primary and secondary rate
limits, spacing mutating requests, conditional (ETag) polling, and turning every
failure into an error from :mod:`rollback_helpers.errors` that names the repo,
the endpoint and the next step. All waiting goes through the injected clock.
"""

from __future__ import annotations

import base64
import binascii
import logging
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote, urlsplit

import httpx

from rollback_helpers import __version__
from rollback_helpers.clock import Clock, utc_iso
from rollback_helpers.errors import (
    GitHubAuthError,
    GitHubError,
    GitHubNotFound,
    GitHubRateLimited,
    GitHubUnavailable,
    WorkflowFailed,
)
from rollback_helpers.secrets import Secret

log = logging.getLogger(__name__)

API_VERSION = "2022-11-28"
MUTATING = frozenset({"POST", "PATCH", "PUT", "DELETE"})
# Transient transport failures; a bad URL or protocol (UnsupportedProtocol) is not.
TRANSIENT = (httpx.TimeoutException, httpx.NetworkError, httpx.RemoteProtocolError)
BACKOFF_BASE = 1.0
BACKOFF_CAP = 60.0
SECONDARY_MIN_WAIT = 60.0
MAX_RATE_LIMIT_WAIT = 900.0  # longer than this, tell the operator rather than hang silently
RUN_LISTING_TRIES = 5
RUN_LISTING_INTERVAL = 2.0
TOKEN_HELP = ("Set GITHUB_TOKEN or GH_TOKEN to a token that can read issues and contents and "
              "write issues and actions in {repo} (e.g. `export GH_TOKEN=$(gh auth token)`), "
              "then re-run this cell.")


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


class GitHubClient:
    """GitHub's REST API for one repository (``owner/name``)."""

    def __init__(self, http: httpx.Client, repo: str, token: Secret | None, *, clock: Clock,
                 api_url: str = "https://api.github.com", max_retries: int = 5,
                 mutation_spacing: float = 1.0) -> None:
        self.http = http
        self.repo = repo
        self._token = token
        self.clock = clock
        self.api_url = api_url.rstrip("/")
        self.max_retries = max_retries
        self.mutation_spacing = mutation_spacing
        self.request_count = 0
        self._last_mutation: float | None = None
        self._etags: dict[str, tuple[str, WorkflowRun]] = {}

    def __repr__(self) -> str:
        return f"GitHubClient(repo={self.repo!r}, api_url={self.api_url!r})"

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
            for item in _json_list(response, self._endpoint("GET", url)):
                if "pull_request" not in item:
                    yield issue_from_json(item)
            url, params = response.links.get("next", {}).get("url"), None

    def get_issue(self, number: int) -> Issue:
        response = self._call("GET", self._url(f"/issues/{number}"),
                              check=f"that issue #{number} exists in {self.repo}")
        return issue_from_json(_json_object(response, self._endpoint("GET", response.url)))

    def add_comment(self, number: int, body: str) -> str:
        """Comment on an issue; returns the comment's web address."""
        url = self._url(f"/issues/{number}/comments")
        response = self._call("POST", url, json={"body": body},
                              check=f"that issue #{number} exists in {self.repo}")
        return str(_json_object(response, self._endpoint("POST", url)).get("html_url", ""))

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
            details = _json_object(response, self._endpoint("POST", url))
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
            runs = _json_object(response, self._endpoint("GET", url)).get("workflow_runs") or []
            if runs:  # the earliest since our dispatch is ours (later ones are someone else's)
                return run_from_json(min(runs, key=lambda r: (r["created_at"], r["id"])))
        raise GitHubError(
            f"GitHub accepted the dispatch of {workflow} on {ref!r} in {self.repo}, but no run "
            f"created since {utc_iso(since)} was listed after {RUN_LISTING_TRIES} tries.",
            f"Open https://github.com/{self.repo}/actions/workflows/{workflow} and watch the run "
            "there; do not dispatch again until you have checked it is not just queued late.")

    def get_run(self, run_id: int) -> WorkflowRun:
        """One run; polled cheaply with ``If-None-Match`` (a 304 costs no rate limit)."""
        url = self._url(f"/actions/runs/{run_id}")
        cached = self._etags.get(url)
        headers = {"If-None-Match": cached[0]} if cached else None
        response = self._call("GET", url, headers=headers,
                              check=f"that run {run_id} belongs to {self.repo}")
        if response.status_code == 304 and cached:
            return cached[1]
        run = run_from_json(_json_object(response, self._endpoint("GET", url)))
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
        item = _json_object(response, self._endpoint("GET", url))
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

    # -- the request policy ------------------------------------------------------------
    def _url(self, suffix: str) -> str:
        return f"{self.api_url}/repos/{self.repo}{suffix}"

    def _endpoint(self, method: str, url: str | httpx.URL) -> str:
        return f"{method} {urlsplit(str(url)).path}"

    def _headers(self, extra: Mapping[str, str] | None) -> dict[str, str]:
        headers = {"Accept": "application/vnd.github+json", "X-GitHub-Api-Version": API_VERSION,
                   "User-Agent": f"rollback-runbook/{__version__}"}
        if self._token:
            headers["Authorization"] = f"Bearer {self._token.reveal()}"
        return {**headers, **(extra or {})}

    def _call(self, method: str, url: str, *, check: str, params: Mapping[str, str] | None = None,
              json: Any = None, headers: Mapping[str, str] | None = None) -> httpx.Response:
        response = self._send(method, url, params=params, json=json, headers=headers)
        self._raise_for_status(response, method, url, check)
        return response

    def _send(self, method: str, url: str, *, params: Mapping[str, str] | None = None,
              json: Any = None, headers: Mapping[str, str] | None = None) -> httpx.Response:
        """Send, retrying transient failures and waiting out rate limits."""
        endpoint = self._endpoint(method, url)
        rate_limited = failed = 0
        for attempt in range(self.max_retries + 1):
            response, last = self._attempt(method, url, params, json, headers)
            if response is None or response.status_code >= 500:
                failed += 1
                if attempt < self.max_retries:
                    self._backoff(failed, endpoint, last)
                continue
            wait = self._rate_limit_wait(response, rate_limited)
            if wait is None:
                return response
            if wait > MAX_RATE_LIMIT_WAIT or attempt == self.max_retries:
                raise self._rate_limited(endpoint, response, attempt + 1)
            log.warning("GitHub rate limit on %s; waiting %.0f s", endpoint, wait)
            self.clock.sleep(wait)
            rate_limited += 1
        raise GitHubUnavailable(
            f"GitHub did not answer {endpoint} for {self.repo} after {self.max_retries + 1} "
            f"attempts (last: {last}).",
            "Check https://www.githubstatus.com and your network or VPN, then re-run this cell.")

    def _attempt(self, method: str, url: str, params: Mapping[str, str] | None, json: Any,
                 headers: Mapping[str, str] | None) -> tuple[httpx.Response | None, str]:
        self._space_mutation(method)
        self.request_count += 1
        try:
            response = self.http.request(method, url, params=params, json=json,
                                         headers=self._headers(headers), follow_redirects=True)
        except TRANSIENT as exc:
            return None, f"{type(exc).__name__}: {exc}"
        except httpx.HTTPError as exc:
            endpoint = self._endpoint(method, url)
            raise GitHubUnavailable(f"Could not send {endpoint} for {self.repo}: "
                                    f"{type(exc).__name__}: {exc}",
                                    f"Check the GitHub API URL ({self.api_url}).") from exc
        finally:
            if method in MUTATING:
                self._last_mutation = self.clock.now()
        self.request_count += len(response.history)  # redirects followed are requests too
        return response, f"HTTP {response.status_code}"

    def _space_mutation(self, method: str) -> None:
        """GitHub asks for mutating requests one at a time, at least a second apart."""
        if method in MUTATING and self._last_mutation is not None:
            wait = self.mutation_spacing - (self.clock.now() - self._last_mutation)
            if wait > 0:
                self.clock.sleep(wait)

    def _backoff(self, attempt: int, endpoint: str, last: str) -> None:
        delay = min(BACKOFF_CAP, BACKOFF_BASE * 2.0 ** (attempt - 1))
        log.warning("GitHub %s failed (%s); retrying in %.0f s", endpoint, last, delay)
        self.clock.sleep(delay)

    def _rate_limit_wait(self, response: httpx.Response, earlier: int) -> float | None:
        """Seconds to wait before retrying, or None if this is not a rate-limit answer."""
        if response.status_code not in (403, 429):
            return None
        remaining = response.headers.get("x-ratelimit-remaining")
        secondary = "secondary rate limit" in _message(response).lower()
        if not secondary and remaining != "0" and response.status_code == 403:
            return None  # a permission problem, not a limit
        retry_after = _number(response.headers.get("retry-after"))
        if retry_after is not None:
            return retry_after
        if remaining == "0":
            return max(1.0, self._reset_at(response) - self.clock.now() + 1)
        return SECONDARY_MIN_WAIT * 2.0 ** earlier

    def _reset_at(self, response: httpx.Response) -> float:
        reset = _number(response.headers.get("x-ratelimit-reset"))
        return reset if reset is not None else self.clock.now() + SECONDARY_MIN_WAIT

    def _rate_limited(self, endpoint: str, response: httpx.Response,
                      tries: int) -> GitHubRateLimited:
        reset = self._reset_at(response)
        retry_after = _number(response.headers.get("retry-after"))
        if retry_after is not None:
            reset = self.clock.now() + retry_after
        minutes = max(0.0, reset - self.clock.now()) / 60
        return GitHubRateLimited(
            f"GitHub's rate limit stopped {endpoint} for {self.repo} after {tries} tries "
            f"({_message(response) or response.status_code}); it lifts at {utc_iso(reset)} "
            f"(in about {minutes:.0f} min).",
            "Wait until then and re-run this cell, or use a token with its own quota (another "
            "GITHUB_TOKEN/GH_TOKEN); do not run several runbooks against the repo at once.")

    def _raise_for_status(self, response: httpx.Response, method: str, url: str,
                          check: str) -> None:
        status = response.status_code
        if status < 400:
            return
        endpoint = f"{self._endpoint(method, url)} ({self.repo})"
        message = _message(response) or response.reason_phrase
        if status == 401 or status == 403:
            token = "no token was given" if not self._token else "the token was refused"
            raise GitHubAuthError(
                f"GitHub answered {status} ({message}) to {endpoint}: {token}; it is missing, "
                "expired or lacking scope.", TOKEN_HELP.format(repo=self.repo))
        if status == 404:
            raise GitHubNotFound(f"GitHub answered 404 to {endpoint}.",
                                 f"Check {check}, and that the token can see {self.repo} "
                                 "(private repositories answer 404 to tokens without access).")
        raise GitHubError(f"GitHub refused {endpoint} with {status}: {message}",
                          f"Check {check}, and the values the runbook sent (GitHub's message "
                          "above says which one).")


# -- response bodies -----------------------------------------------------------------
def _message(response: httpx.Response) -> str:
    try:
        data = response.json()
    except ValueError:
        return ""
    if not isinstance(data, dict):
        return ""
    errors = data.get("errors")
    detail = f" {errors}" if errors else ""
    return f"{data.get('message', '')}{detail}".strip()


def _number(text: str | None) -> float | None:
    if text is None:
        return None
    try:
        return float(text)
    except ValueError:
        return None


def _json(response: httpx.Response, endpoint: str) -> Any:
    try:
        return response.json()
    except ValueError as exc:
        status = response.status_code
        raise GitHubError(f"GitHub's answer to {endpoint} is not JSON (HTTP {status}).",
                          "Check the GitHub API URL in the config (a proxy or login page may "
                          "be answering instead).") from exc


def _json_object(response: httpx.Response, endpoint: str) -> dict[str, Any]:
    data = _json(response, endpoint)
    if not isinstance(data, dict):
        raise GitHubError(f"GitHub's answer to {endpoint} is not a JSON object.",
                          "Check the GitHub API URL in the config.")
    return data


def _json_list(response: httpx.Response, endpoint: str) -> list[dict[str, Any]]:
    data = _json(response, endpoint)
    if not isinstance(data, list):
        raise GitHubError(f"GitHub's answer to {endpoint} is not a JSON list.",
                          "Check the GitHub API URL in the config.")
    return [item for item in data if isinstance(item, dict)]
