"""The request policy for GitHub's REST API, once, over an injected ``httpx.Client``.

GitHub's headers, retries with exponential backoff on 5xx and connection errors,
waiting out primary and secondary rate limits, pacing mutating requests, and
turning every failure into an error from :mod:`rollback_helpers.errors` that
names the repo, the endpoint and the next step. All waiting goes through the
injected clock. The endpoints the runbook uses are :class:`~rollback_helpers.
clients.github.GitHubClient`.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any, TypeVar
from urllib.parse import urlsplit

import httpx

from rollback_helpers import __version__
from rollback_helpers.clients.github_answers import (
    error_message,
    header_number,
    json_list,
    json_object,
)
from rollback_helpers.clock import Clock, utc_iso
from rollback_helpers.errors import (
    GitHubAuthError,
    GitHubError,
    GitHubNotFound,
    GitHubRateLimited,
    GitHubUnavailable,
)
from rollback_helpers.hints import Rerun, hint
from rollback_helpers.secrets import Secret

log = logging.getLogger("rollback_helpers.clients.github")
T = TypeVar("T")

API_VERSION = "2022-11-28"
MUTATING = frozenset({"POST", "PATCH", "PUT", "DELETE"})
# Transient transport failures; a bad URL or protocol (UnsupportedProtocol) is not.
TRANSIENT = (httpx.TimeoutException, httpx.NetworkError, httpx.RemoteProtocolError)
# Failures before the request left this machine: safe to send again, whatever it was.
NOT_SENT = (httpx.ConnectError, httpx.ConnectTimeout, httpx.PoolTimeout)
REDIRECTS = frozenset({301, 302, 307, 308})
PERMANENT = frozenset({301, 308})
MAX_REDIRECTS = 5
BACKOFF_BASE = 1.0
BACKOFF_CAP = 60.0
SECONDARY_MIN_WAIT = 60.0
MUTATION_BURST = 8  # writes that go at once before the pacing starts (see _space_mutation)
MAX_RATE_LIMIT_WAIT = 900.0  # longer than this, tell the operator rather than hang silently
TOKEN_HELP = ("Set GITHUB_TOKEN or GH_TOKEN to a token that can read and write issues, contents "
              "(the environment lock is a git ref) and actions in {repo} (e.g. `export "
              "GH_TOKEN=$(gh auth token)`), then start the run again.")


class AmbiguousSend(Exception):
    """A non-idempotent request may or may not have taken effect (never leaves the session)."""

    def __init__(self, endpoint: str, last: str) -> None:
        super().__init__(f"{endpoint}: {last}")
        self.endpoint = endpoint
        self.last = last


@dataclass(frozen=True)
class Attempt:
    """One try of a request: GitHub's answer, or None when the transport failed; whether the
    request may have reached GitHub (False only when it never left this machine); and what
    happened, for the log and the error."""

    response: httpx.Response | None
    sent: bool
    last: str

    @property
    def ambiguous(self) -> bool:
        """Whether a non-idempotent request may or may not have taken effect."""
        if self.response is None:
            return self.sent
        return self.response.status_code >= 500


class GitHubSession:
    """How every request to GitHub is sent: headers, retries, rate limits, spacing, errors."""

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
        self.moved: dict[str, str] = {}  # address GitHub redirected -> where it pointed
        self._allowance = float(MUTATION_BURST)  # writes that may go now without waiting
        self._allowance_at: float | None = None
        self._pacing = threading.Lock()

    def __repr__(self) -> str:
        return f"{type(self).__name__}(repo={self.repo!r}, api_url={self.api_url!r})"

    def repo_url(self, suffix: str) -> str:
        return f"{self.api_url}/repos/{self.repo}{suffix}"

    def endpoint(self, method: str, url: str | httpx.URL) -> str:
        return f"{method} {urlsplit(str(url)).path}"

    def _headers(self, extra: Mapping[str, str] | None) -> dict[str, str]:
        headers = {"Accept": "application/vnd.github+json", "X-GitHub-Api-Version": API_VERSION,
                   "User-Agent": f"rollback-runbook/{__version__}"}
        if self._token:
            headers["Authorization"] = f"Bearer {self._token.reveal()}"
        return {**headers, **(extra or {})}

    def call(self, method: str, url: str, *, check: str, params: Mapping[str, str] | None = None,
              json: Any = None, headers: Mapping[str, str] | None = None) -> httpx.Response:
        response = self.send(method, url, params=params, json=json, headers=headers)
        self.raise_for_status(response, method, url, check)
        return response

    def get_object(self, url: str, *, check: str,
                    params: Mapping[str, str] | None = None) -> dict[str, Any]:
        """GET a JSON object; a GitHubError names the endpoint if the answer is not one."""
        response = self.call("GET", url, check=check, params=params)
        return json_object(response, self.endpoint("GET", url))

    def get_list(self, url: str, *, check: str,
                  params: Mapping[str, str] | None = None) -> list[dict[str, Any]]:
        """GET a JSON list (one page); a GitHubError names the endpoint if the answer is not one."""
        response = self.call("GET", url, check=check, params=params)
        return json_list(response, self.endpoint("GET", url))

    def pages(self, url: str, params: Mapping[str, str], *,
               check: str) -> Iterator[list[dict[str, Any]]]:
        """GET a listing a page at a time, following GitHub's ``link: <…>; rel="next"``."""
        next_url: str | None = url
        next_params: Mapping[str, str] | None = params
        while next_url is not None:
            response = self.call("GET", next_url, params=next_params, check=check)
            yield json_list(response, self.endpoint("GET", next_url))
            next_url, next_params = response.links.get("next", {}).get("url"), None

    def find_object(self, url: str, *, check: str) -> dict[str, Any] | None:
        """GET a JSON object, or None where GitHub answers 404 Not Found."""
        try:
            return self.get_object(url, check=check)
        except GitHubNotFound:
            return None

    def create_once(self, url: str, body: Any,
                     effect: Callable[[], T | None]) -> httpx.Response | T:
        """POST something GitHub cannot de-duplicate, at most once in effect.

        After an ambiguous failure (a timeout, a dropped connection, a 5xx once the
        request was sent) ``effect()`` looks for what the POST would have made (the
        run, the comment) and returns it if it is there; only if it is not is the
        POST sent again. Returns GitHub's answer (any status: the caller judges it)
        or what ``effect()`` found.
        """
        endpoint = self.endpoint("POST", url)
        last = ""
        for attempt in range(1, self.max_retries + 2):
            try:
                return self.send("POST", url, json=body, once=True)
            except AmbiguousSend as exc:
                last = exc.last
            self._backoff(attempt, endpoint, last)  # let GitHub settle before looking
            found = effect()
            if found is not None:
                log.warning("GitHub did take %s despite %s; not sending it again", endpoint, last)
                return found
        raise GitHubUnavailable(
            f"GitHub did not answer {endpoint} for {self.repo} after {self.max_retries + 1} "
            f"attempts (last: {last}), and none of them took effect.",
            hint("Check https://www.githubstatus.com and your network or VPN, then ", Rerun(), "."))

    def send(self, method: str, url: str, *, params: Mapping[str, str] | None = None,
              json: Any = None, headers: Mapping[str, str] | None = None,
              once: bool = False) -> httpx.Response:
        """Send, retrying transient failures and waiting out rate limits.

        ``once``: the request is not idempotent (a dispatch, a new comment), so a
        failure after it may have reached GitHub (a timeout, a dropped connection,
        a 5xx) raises :class:`AmbiguousSend` instead of sending it again: the caller
        checks whether it took effect (:meth:`create_once`).
        """
        endpoint = self.endpoint(method, url)
        rate_limited = failed = 0
        began = self.clock.now()
        for attempt in range(self.max_retries + 1):
            tried = self._attempt(method, url, params, json, headers)
            response, last = tried.response, tried.last
            if once and tried.ambiguous:
                raise AmbiguousSend(endpoint, last)
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
            f"attempts over {self.clock.now() - began:.0f} s (at most {self.retry_budget():.0f} s "
            f"of retries; last: {last}).",
            hint("Check https://www.githubstatus.com and your network or VPN, then ", Rerun(), "."))

    def _attempt(self, method: str, url: str, params: Mapping[str, str] | None, json: Any,
                 headers: Mapping[str, str] | None) -> Attempt:
        self._space_mutation(method)
        self.request_count += 1
        try:
            response = self._follow(method, url, params, json, headers)
        except NOT_SENT as exc:
            return Attempt(None, sent=False, last=f"not sent: {type(exc).__name__}: {exc}")
        except TRANSIENT as exc:
            return Attempt(None, sent=True, last=f"{type(exc).__name__}: {exc}")
        except httpx.HTTPError as exc:
            endpoint = self.endpoint(method, url)
            raise GitHubUnavailable(f"Could not send {endpoint} for {self.repo}: "
                                    f"{type(exc).__name__}: {exc}",
                                    f"Check the GitHub API URL ({self.api_url}).") from exc
        return Attempt(response, sent=True, last=f"HTTP {response.status_code}")

    def _follow(self, method: str, url: str, params: Mapping[str, str] | None, json: Any,
                headers: Mapping[str, str] | None) -> httpx.Response:
        """Send, following GitHub's redirects with the method and body preserved.

        A transferred issue answers 301 with its new address. httpx (like browsers)
        would turn a redirected POST into a GET, and the comment or label would
        silently never be written; GitHub asks clients to repeat the request as it
        was. Only redirects within the API's own host are followed (the token goes along).
        """
        response = self.http.request(method, self.remembered(url), params=params, json=json,
                                     headers=self._headers(headers))
        for _ in range(MAX_REDIRECTS):
            location = response.headers.get("location")
            if response.status_code not in REDIRECTS or not location:
                return response
            target = response.url.join(location)
            if target.host != response.url.host:
                raise GitHubError(
                    f"GitHub redirected {self.endpoint(method, url)} ({self.repo}) to another "
                    f"host ({target.host}); the runbook does not send its token there.",
                    f"Check the GitHub API URL in the config ({self.api_url}).")
            log.warning("GitHub moved %s to %s (a transferred issue or renamed repository)",
                        self.endpoint(method, response.url), target.path)
            if response.status_code in PERMANENT:  # remembered: the next request goes there
                self.moved[str(response.url.copy_with(query=None))] = str(target.copy_with(
                    query=None))
            self.request_count += 1
            response = self.http.request(method, target, json=json,
                                         headers=self._headers(headers))
        return response

    def remembered(self, url: str) -> str:
        """``url`` at the address GitHub said it moved to for good (301, 308): the issue's new
        number, the renamed repository (its sub-paths too), so a move costs one redirect only."""
        for old in sorted(self.moved, key=len, reverse=True):
            if url == old or url.startswith(old + "/") or url.startswith(old + "?"):
                return self.moved[old] + url[len(old):]
        return url

    def _space_mutation(self, method: str) -> None:
        """GitHub asks for many mutating requests to go at least a second apart: a run's first
        :data:`MUTATION_BURST` writes go at once, and from then on one per ``mutation_spacing``
        (a token bucket). So no minute holds more than 8 + 60 writes, under GitHub's 80
        content-creating requests a minute, and the writes before a dispatch wait for nothing."""
        if method not in MUTATING or self.mutation_spacing <= 0:
            return
        with self._pacing:
            now = self.clock.now()
            if self._allowance_at is not None:
                earned = (now - self._allowance_at) / self.mutation_spacing
                self._allowance = min(float(MUTATION_BURST), self._allowance + earned)
            self._allowance_at = now
            wait = max(0.0, 1.0 - self._allowance) * self.mutation_spacing
            self._allowance -= 1.0  # below zero: the writes already waiting for their turn
        if wait > 0:
            self.clock.sleep(wait)

    def retry_budget(self) -> float:
        """The longest the retries of one request wait (rate limits aside): their bound."""
        return sum(min(BACKOFF_CAP, BACKOFF_BASE * 2.0 ** k) for k in range(self.max_retries))

    def _backoff(self, attempt: int, endpoint: str, last: str) -> None:
        delay = min(BACKOFF_CAP, BACKOFF_BASE * 2.0 ** (attempt - 1))
        log.warning("GitHub %s failed (%s); retrying in %.0f s", endpoint, last, delay)
        self.clock.sleep(delay)

    def _rate_limit_wait(self, response: httpx.Response, earlier: int) -> float | None:
        """Seconds to wait before retrying, or None if this is not a rate-limit answer."""
        if response.status_code not in (403, 429):
            return None
        remaining = response.headers.get("x-ratelimit-remaining")
        secondary = "secondary rate limit" in error_message(response).lower()
        if not secondary and remaining != "0" and response.status_code == 403:
            return None  # a permission problem, not a limit
        retry_after = header_number(response.headers.get("retry-after"))
        if retry_after is not None:
            return retry_after
        if remaining == "0":
            return max(1.0, self._reset_at(response) - self.clock.now() + 1)
        return SECONDARY_MIN_WAIT * 2.0 ** earlier

    def _reset_at(self, response: httpx.Response) -> float:
        reset = header_number(response.headers.get("x-ratelimit-reset"))
        return reset if reset is not None else self.clock.now() + SECONDARY_MIN_WAIT

    def _rate_limited(self, endpoint: str, response: httpx.Response,
                      tries: int) -> GitHubRateLimited:
        reset = self._reset_at(response)
        retry_after = header_number(response.headers.get("retry-after"))
        if retry_after is not None:
            reset = self.clock.now() + retry_after
        minutes = max(0.0, reset - self.clock.now()) / 60
        return GitHubRateLimited(
            f"GitHub's rate limit stopped {endpoint} for {self.repo} after {tries} tries "
            f"({error_message(response) or response.status_code}); it lifts at {utc_iso(reset)} "
            f"(in about {minutes:.0f} min).",
            "Wait until then and re-run this cell, or use a token with its own quota (another "
            "GITHUB_TOKEN/GH_TOKEN); do not run several runbooks against the repo at once.")

    def raise_for_status(self, response: httpx.Response, method: str, url: str,
                          check: str) -> None:
        status = response.status_code
        if status < 400:
            return
        endpoint = f"{self.endpoint(method, url)} ({self.repo})"
        message = error_message(response) or response.reason_phrase
        if status == 403 and message.lower().startswith("must have"):
            raise GitHubError(  # the token is good; its user lacks a permission (e.g. push)
                f"GitHub answered 403 to {endpoint}: {message} The token was accepted, but its "
                f"user lacks that access to {self.repo}.",
                f"Grant the token's user that access to {self.repo} (or use a token of someone "
                f"who has it); then check {check}.")
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
