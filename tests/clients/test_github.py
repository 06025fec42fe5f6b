"""The GitHub client against the sandbox's GitHub, on a virtual clock (no real sleeps)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import pytest
from clocks import RecordingClock

from rollback_helpers.clients import github_actions
from rollback_helpers.clients.github import GitHubClient, WorkflowRun
from rollback_helpers.clients.github_session import MUTATION_BURST
from rollback_helpers.clock import parse_iso, utc_iso
from rollback_helpers.errors import (
    GitHubAuthError,
    GitHubError,
    GitHubNotFound,
    GitHubRateLimited,
    GitHubUnavailable,
    WorkflowFailed,
)
from rollback_helpers.sandbox.core.world import World, digest_for
from rollback_helpers.sandbox.github.api import GitHubSandbox
from rollback_helpers.sandbox.scenarios import create_world
from rollback_helpers.secrets import Secret

RECORD_LABELS = ["deployment-record", "env:staging"]
DAY = 86400.0
Transport = Callable[[httpx.Request], httpx.Response]


class Harness:
    """A client wired to a sandbox world; records what reached the transport and when."""

    def __init__(self, world: World, *, token: str | None = "world", max_retries: int = 5,
                 wrap: Callable[[Transport], Transport] | None = None) -> None:
        self.world = world
        self.clock = RecordingClock(world.now)
        self.sandbox = GitHubSandbox(world, clock=self.clock)
        self.sent: list[tuple[float, httpx.Request]] = []
        handler: Transport = wrap(self._handle) if wrap else self._handle
        self.token = world.state["github"]["token"] if token == "world" else token
        self.client = GitHubClient(httpx.Client(transport=httpx.MockTransport(handler)),
                                   world.state["github"]["repo"],
                                   Secret(self.token) if self.token else None, clock=self.clock,
                                   max_retries=max_retries)

    def _handle(self, request: httpx.Request) -> httpx.Response:
        self.sent.append((self.clock.now(), request))
        return self.sandbox.handle(request)

    def statuses(self, call: str = "") -> list[int]:
        return [c["status"] for c in self.world.calls() if call in c["call"]]


@pytest.fixture
def world(tmp_path: Path) -> World:
    return create_world("default", tmp_path)


@pytest.fixture
def gh(world: World) -> Harness:
    return Harness(world)


def add_issue(world: World, number: int, *, labels: list[str], created: float,
              pull_request: bool = False) -> None:
    issue: dict[str, Any] = {"number": number, "title": f"Issue {number}", "body": "b",
                             "labels": labels, "state": "open", "created_at": utc_iso(created),
                             "updated_at": utc_iso(created), "user": "deploy-bot"}
    if pull_request:
        issue["pull_request"] = True
    world.state["github"]["issues"].append(issue)


def staging_image(name: str) -> str:
    return f"registry.fly.io/renewa-one@{digest_for(name)}"


# -- requests ------------------------------------------------------------------------
def test_every_request_carries_githubs_headers_and_the_bearer_token(gh: Harness) -> None:
    gh.client.issues.get_issue(1001)
    headers = gh.sent[0][1].headers
    assert headers["accept"] == "application/vnd.github+json"
    assert headers["x-github-api-version"] == "2022-11-28"
    assert headers["authorization"] == f"Bearer {gh.token}"
    assert headers["user-agent"].startswith("rollback-runbook/")


def test_the_token_does_not_appear_in_the_clients_repr(gh: Harness) -> None:
    assert gh.token is not None and gh.token not in repr(gh.client)


# -- listing issues ----------------------------------------------------------------------
def test_iter_issues_yields_newest_first_with_all_labels(gh: Harness) -> None:
    issues = list(gh.client.issues.iter_issues(RECORD_LABELS))
    assert [i.title for i in issues] == [f"Deploy v{n} to staging" for n in (42, 41, 40, 39)]
    assert all(set(RECORD_LABELS) <= set(i.labels) for i in issues)
    assert issues[0].author == "deploy-bot"
    assert issues[0].html_url.endswith(f"/issues/{issues[0].number}")
    query = gh.sent[0][1].url.params
    assert (query["labels"], query["state"], query["sort"], query["direction"], query["per_page"]) \
        == ("deployment-record,env:staging", "all", "created", "desc", "100")


def test_iter_issues_skips_pull_requests(world: World) -> None:
    add_issue(world, 5000, labels=RECORD_LABELS, created=world.now - 10, pull_request=True)
    issues = list(Harness(world).client.issues.iter_issues(RECORD_LABELS))
    assert 5000 not in [i.number for i in issues]
    assert len(issues) == 4


def test_iter_issues_fetches_the_next_page_only_when_iterated_past_the_current_one(
        world: World) -> None:
    for n in range(10_000):
        add_issue(world, 100_000 + n, labels=RECORD_LABELS, created=world.now - 30 * DAY + n)
    gh = Harness(world)
    issues = gh.client.issues.iter_issues(RECORD_LABELS)
    assert gh.client.session.request_count == 0
    newest = next(issue for issue in issues if "v42" in issue.title)
    assert newest.title == "Deploy v42 to staging"
    assert gh.client.session.request_count == 1
    for _ in range(99):
        next(issues)
    assert gh.client.session.request_count == 1
    next(issues)
    assert gh.client.session.request_count == 2
    assert gh.sent[1][1].url.params["page"] == "2"


def test_iter_issues_follows_pages_to_the_end(world: World) -> None:
    for n in range(7):
        add_issue(world, 9000 + n, labels=["paged"], created=world.now - 100 + n)
    gh = Harness(world)
    numbers = [i.number for i in gh.client.issues.iter_issues(["paged"], per_page=3)]
    assert numbers == list(range(9006, 8999, -1))
    assert gh.client.session.request_count == 3



# -- reading, commenting, labelling ---------------------------------------------------------
def test_add_comment_returns_the_comment_url_and_stores_it(gh: Harness) -> None:
    url = gh.client.comments.add_comment(1001, "Rolled back by the runbook.")
    comments = gh.world.state["github"]["comments"]["1001"]
    assert comments[-1]["body"] == "Rolled back by the runbook."
    assert url == f"https://github.sandbox.invalid/renewa/renewa-one/issues/1001#issuecomment-{comments[-1]['id']}"


def test_add_labels_keeps_the_issues_other_labels(gh: Harness) -> None:
    before = gh.client.issues.get_issue(1001).labels
    gh.client.issues.add_labels(1001, ["rolled-back"])
    assert gh.client.issues.get_issue(1001).labels == (*before, "rolled-back")


def test_a_runs_first_writes_go_at_once(gh: Harness) -> None:
    for n in range(MUTATION_BURST):
        gh.client.comments.add_comment(1001, f"write {n}")
    assert gh.clock.sleeps == []


def test_writes_beyond_the_burst_are_paced_a_second_apart(gh: Harness) -> None:
    for n in range(MUTATION_BURST + 3):
        gh.client.comments.add_comment(1001, f"write {n}")
    posts = [t for t, request in gh.sent if request.method == "POST"]
    assert len(posts) == MUTATION_BURST + 3
    paced = posts[MUTATION_BURST - 1:]
    assert all(later - earlier >= 1.0 for earlier, later in zip(paced, paced[1:], strict=False))


def test_the_pace_comes_back_after_a_quiet_while(gh: Harness) -> None:
    for n in range(MUTATION_BURST + 1):
        gh.client.comments.add_comment(1001, f"write {n}")
    waited = len(gh.clock.sleeps)
    gh.clock.sleep(float(MUTATION_BURST))  # eight quiet seconds earn the burst back
    for n in range(MUTATION_BURST):
        gh.client.comments.add_comment(1002, f"later {n}")
    assert waited == 1 and len(gh.clock.sleeps) == waited + 1  # only the quiet wait itself


def test_reads_are_not_spaced(gh: Harness) -> None:
    gh.client.issues.get_issue(1001)
    gh.client.issues.get_issue(1002)
    assert gh.clock.sleeps == []


def test_a_transferred_issue_is_followed_to_its_new_number(world: World) -> None:
    world.state["github"]["issues"][0]["transferred_to"] = 1002
    gh = Harness(world)
    assert gh.client.issues.get_issue(1001).number == 1002
    assert gh.statuses("/issues/100") == [301, 200]
    assert gh.client.session.request_count == 2


CLUSTER_MAP = ("# env -> Fly Managed Postgres cluster id\ndeclare -A MPG_CLUSTERS=(\n"
               "  [staging]=p0o9i8u7y6t5r4e3\n  [production]=gjpkdon1pn60yln4\n)\n")


def test_get_file_decodes_the_cluster_map(world: World) -> None:
    world.state["github"]["files"]["scripts/lib/mpg-clusters.sh"] = CLUSTER_MAP
    gh = Harness(world)
    text = gh.client.contents.get_file("scripts/lib/mpg-clusters.sh", ref="main")
    assert text == CLUSTER_MAP
    assert gh.sent[0][1].url.params["ref"] == "main"


def test_get_file_names_a_missing_path(world: World) -> None:
    world.state["github"]["files"]["scripts/lib/mpg-clusters.sh"] = CLUSTER_MAP
    gh = Harness(world)
    with pytest.raises(GitHubNotFound) as raised:
        gh.client.contents.get_file("scripts/lib/nope.sh")
    assert "scripts/lib/nope.sh" in str(raised.value)
    assert "renewa/renewa-one" in str(raised.value)


# -- retries --------------------------------------------------------------------------------
def test_5xx_is_retried_with_exponential_backoff_then_succeeds(world: World) -> None:
    world.state["github"]["faults"]["server_error_on"] = [1, 2, 3]
    gh = Harness(world)
    assert gh.client.issues.get_issue(1001).number == 1001
    assert gh.client.session.request_count == 4
    assert gh.clock.sleeps == [1.0, 2.0, 4.0]
    assert gh.statuses() == [502, 502, 502, 200]


def test_connection_errors_are_retried(world: World) -> None:
    failures = iter([httpx.ConnectError("refused"), httpx.ReadTimeout("slow")])

    def flaky(inner: Transport) -> Transport:
        def handle(request: httpx.Request) -> httpx.Response:
            error = next(failures, None)
            if error is not None:
                raise error
            return inner(request)
        return handle

    gh = Harness(world, wrap=flaky)
    assert gh.client.issues.get_issue(1001).number == 1001
    assert gh.client.session.request_count == 3


@pytest.mark.parametrize(("fault", "retries", "raised", "says"), [
    ("server_error_on", 3, GitHubUnavailable, ["/issues/1001", "HTTP 502", "githubstatus"]),
    ("rate_limit_on", 2, GitHubRateLimited, ["lifts at", "re-run"]),
], ids=["persistent-5xx-is-unavailable", "rate-limit-outlasting-retries-is-rate-limited"])
def test_a_fault_that_outlasts_the_retries_gives_up_naming_the_repository(
        world: World, fault: str, retries: int, raised: type[Exception], says: list[str]) -> None:
    """After the first try and ``retries`` more, the error names the repository and says why."""
    world.state["github"]["faults"][fault] = list(range(1, 50))
    gh = Harness(world, max_retries=retries)
    with pytest.raises(raised) as caught:
        gh.client.issues.get_issue(1001)
    message = str(caught.value)
    assert gh.client.session.request_count == retries + 1
    assert "renewa/renewa-one" in message
    assert all(phrase in message for phrase in says), message


# -- rate limits ----------------------------------------------------------------------------
def test_primary_rate_limit_waits_until_the_reset(world: World) -> None:
    world.state["github"]["faults"]["rate_limit_on"] = [1]
    gh = Harness(world)
    start = gh.clock.now()
    issue = gh.client.issues.get_issue(1001)
    assert issue.number == 1001
    reset = start + 60
    assert gh.clock.now() >= reset
    assert gh.statuses() == [403, 200]  # the sandbox refuses any retry before the reset


def test_secondary_rate_limit_honours_retry_after(world: World) -> None:
    world.state["github"]["faults"]["secondary_limit_on"] = [2]
    gh = Harness(world)
    gh.client.comments.add_comment(1001, "first")
    before = gh.clock.now()
    gh.client.comments.add_comment(1001, "second")
    waited = gh.clock.now() - before
    assert 30 <= waited < 60  # retry-after (30 s), not the one-minute default
    assert gh.statuses("POST") == [201, 403, 201]


def test_secondary_limit_without_retry_after_waits_a_minute_then_longer(world: World) -> None:
    refusals = iter(range(2))

    def limited(inner: Transport) -> Transport:
        def handle(request: httpx.Request) -> httpx.Response:
            if next(refusals, None) is not None:
                return httpx.Response(429, json={"message": "You have exceeded a secondary rate "
                                                 "limit."})
            return inner(request)
        return handle

    gh = Harness(world, wrap=limited)
    gh.client.issues.get_issue(1001)
    assert gh.clock.sleeps == [60.0, 120.0]


def test_a_403_that_is_not_a_rate_limit_is_an_auth_error_not_retried(world: World) -> None:
    def forbidden(inner: Transport) -> Transport:
        return lambda request: httpx.Response(
            403, json={"message": "Resource not accessible by personal access token"},
            headers={"x-ratelimit-remaining": "4999"})

    gh = Harness(world, wrap=forbidden)
    with pytest.raises(GitHubAuthError, match="Resource not accessible"):
        gh.client.comments.add_comment(1001, "x")
    assert gh.client.session.request_count == 1


# -- errors that are not retried ---------------------------------------------------------------
def test_bad_token_is_an_auth_error_that_never_shows_the_token(world: World) -> None:
    gh = Harness(world, token="ghp_" + "x" * 36)
    with pytest.raises(GitHubAuthError) as raised:
        gh.client.issues.get_issue(1001)
    message = str(raised.value)
    assert "ghp_" not in message
    assert "GITHUB_TOKEN" in message and "GH_TOKEN" in message
    assert "renewa/renewa-one" in message and "401" in message
    assert gh.client.session.request_count == 1


def test_expired_token_is_an_auth_error(world: World) -> None:
    world.state["github"]["faults"]["token"] = "expired"
    gh = Harness(world)
    with pytest.raises(GitHubAuthError, match="expired") as raised:
        list(gh.client.issues.iter_issues(RECORD_LABELS))
    assert gh.token is not None and gh.token not in str(raised.value)
    assert gh.statuses() == [401]


def test_missing_token_says_so(world: World) -> None:
    gh = Harness(world, token=None)
    with pytest.raises(GitHubAuthError, match="no token was given"):
        gh.client.issues.get_issue(1001)
    assert "authorization" not in gh.sent[0][1].headers


def test_missing_issue_is_not_found_naming_the_issue(gh: Harness) -> None:
    with pytest.raises(GitHubNotFound) as raised:
        gh.client.issues.get_issue(99999)
    assert "#99999" in str(raised.value) and "renewa/renewa-one" in str(raised.value)
    assert gh.client.session.request_count == 1


def test_unknown_workflow_is_not_found_naming_the_file(gh: Harness) -> None:
    with pytest.raises(GitHubNotFound) as raised:
        gh.client.actions.dispatch_workflow("promote.yml", "main", {"env": "staging", "image": "x"})
    assert "promote.yml" in str(raised.value)
    assert "/actions/workflows/promote.yml/dispatches" in str(raised.value)


def test_422_carries_githubs_message(gh: Harness) -> None:
    with pytest.raises(GitHubError) as raised:
        gh.client.actions.dispatch_workflow("promote-image.yml", "main", {"env": "staging"})
    assert "Required input 'image' not provided" in str(raised.value)
    assert not isinstance(raised.value, (GitHubNotFound, GitHubAuthError))


# -- dispatching ------------------------------------------------------------------------------
INPUTS = {"env": "staging", "image": staging_image("v41")}


def test_dispatch_with_run_details_returns_the_run_in_two_requests(gh: Harness) -> None:
    run = gh.client.actions.dispatch_workflow("promote-image.yml", "main", INPUTS)
    assert run.status == "queued" and run.event == "workflow_dispatch"
    assert run.id == gh.world.state["github"]["runs"][-1]["id"]
    assert gh.statuses() == [200, 200]
    assert gh.sent[0][1].read() and b'"return_run_details":true' in gh.sent[0][1].content


def test_dispatch_answered_204_finds_the_run_by_listing(world: World) -> None:
    world.state["github"]["workflow"]["dispatch"] = "no-content"
    gh = Harness(world)
    run = gh.client.actions.dispatch_workflow("promote-image.yml", "main", INPUTS)
    assert run.id == world.state["github"]["runs"][-1]["id"]
    listing = gh.sent[1][1].url
    assert listing.path.endswith("/actions/workflows/promote-image.yml/runs")
    assert listing.params["event"] == "workflow_dispatch"
    assert listing.params["branch"] == "main"
    assert listing.params["created"] == f">={utc_iso(world.now - 60)}"  # clock-skew margin


def test_dispatch_on_legacy_ghes_resends_without_run_details(world: World) -> None:
    world.state["github"]["workflow"]["dispatch"] = "legacy"
    gh = Harness(world)
    run = gh.client.actions.dispatch_workflow("promote-image.yml", "main", INPUTS)
    assert run.id == world.state["github"]["runs"][-1]["id"]
    assert len(world.state["github"]["runs"]) == 1
    assert gh.statuses("POST") == [400, 204]
    assert b"return_run_details" not in gh.sent[1][1].content


def test_dispatch_polls_the_listing_until_the_run_appears(world: World) -> None:
    world.state["github"]["workflow"].update(dispatch="no-content", list_delay=3)
    gh = Harness(world)
    run = gh.client.actions.dispatch_workflow("promote-image.yml", "main", INPUTS)
    assert run.id == world.state["github"]["runs"][-1]["id"]
    assert gh.statuses("/runs") == [200, 200, 200]  # empty, empty, found
    assert gh.clock.sleeps == [2.0, 2.0]


def test_dispatch_gives_up_when_no_run_is_ever_listed(world: World) -> None:
    world.state["github"]["workflow"].update(dispatch="no-content", list_delay=3600)
    gh = Harness(world)
    with pytest.raises(GitHubError) as raised:
        gh.client.actions.dispatch_workflow("promote-image.yml", "main", INPUTS)
    assert "do not dispatch again" in str(raised.value)
    assert "promote-image.yml" in str(raised.value)


# -- polling runs ------------------------------------------------------------------------------
def test_get_run_sends_if_none_match_and_uses_the_cached_run_on_304(gh: Harness) -> None:
    run = gh.client.actions.dispatch_workflow("promote-image.yml", "main", INPUTS)
    again = gh.client.actions.get_run(run.id)
    assert again == run
    assert gh.statuses("/actions/runs/") == [200, 304]
    assert gh.sent[-1][1].headers["if-none-match"].startswith('W/"')


def test_get_run_sees_a_change_after_a_304(gh: Harness) -> None:
    run = gh.client.actions.dispatch_workflow("promote-image.yml", "main", INPUTS)
    gh.client.actions.get_run(run.id)
    gh.clock.sleep(10)
    assert gh.client.actions.get_run(run.id).status == "in_progress"
    assert gh.statuses("/actions/runs/") == [200, 304, 200]


def test_watch_run_reports_queued_in_progress_completed_and_promotes(gh: Harness) -> None:
    run = gh.client.actions.dispatch_workflow("promote-image.yml", "main", INPUTS)
    seen: list[tuple[str, float]] = []
    final = gh.client.actions.watch_run(run.id, timeout=600,
                                on_update=lambda r, t: seen.append((r.status, t)))
    statuses = [status for status, _ in seen]
    assert statuses[0] == "queued" and "in_progress" in statuses and statuses[-1] == "completed"
    assert statuses.index("in_progress") > 0
    assert final.finished and final.succeeded
    assert all(t2 >= t1 for (_, t1), (_, t2) in zip(seen, seen[1:], strict=False))
    assert set(gh.clock.sleeps) == {3.0}
    machines = gh.world.state["fly"]["apps"]["renewa-one-staging"]["machines"]
    assert {m["image"] for m in machines} == {"v41"}


def test_watch_run_polls_at_a_fixed_rate_whatever_on_update_does(gh: Harness) -> None:
    """A 2 s write in ``on_update`` (a lease renewal) does not push the later polls back: they
    stay at 3 s steps from the first, where a delay after each poll would make them 5 s apart."""
    run = gh.client.actions.dispatch_workflow("promote-image.yml", "main", INPUTS)
    polled: list[float] = []

    def slow_update(r: WorkflowRun, elapsed: float) -> None:
        polled.append(gh.clock.now())
        gh.clock.advance(2.0)

    final = gh.client.actions.watch_run(run.id, timeout=600, on_update=slow_update)
    assert final.finished and len(polled) >= 4
    assert [t - polled[0] for t in polled] == [3.0 * k for k in range(len(polled))]


def test_watch_run_returns_a_failed_run_without_judging_it(world: World) -> None:
    world.state["github"]["workflow"]["conclusion"] = "failure"
    gh = Harness(world)
    run = gh.client.actions.dispatch_workflow("promote-image.yml", "main", INPUTS)
    final = gh.client.actions.watch_run(run.id, timeout=600)
    assert final.finished and not final.succeeded
    assert final.conclusion == "failure"
    machines = world.state["fly"]["apps"]["renewa-one-staging"]["machines"]
    assert {m["image"] for m in machines} == {"v42"}


def test_watch_run_times_out_with_the_run_url_and_what_to_do(gh: Harness) -> None:
    run = gh.client.actions.dispatch_workflow("promote-image.yml", "main", INPUTS)
    with pytest.raises(WorkflowFailed) as raised:
        gh.client.actions.watch_run(run.id, timeout=20, interval=3)
    message = str(raised.value)
    assert run.html_url in message
    assert "gh run watch" in message and "Do not dispatch again" in message
    assert gh.clock.now() - parse_iso(run.created_at) <= 21


def lease_commit(gh: Harness) -> str:
    return gh.client.git.create_commit("lease", gh.client.git.create_tree({"lease.json": "{}"})).sha


def test_a_transient_reference_update_failure_is_retried(world: World) -> None:
    """422 "Reference update failed" is GitHub's transient refusal: tried again after a pause
    (on the clock), not raised, and not read as "the lock is taken"."""
    world.state["github"].setdefault("faults", {})["ref_update_failures"] = 2
    gh = Harness(world)
    sha = lease_commit(gh)
    assert gh.client.git.create_ref("refs/rollback-locks/staging", sha) is True
    assert gh.statuses("POST /repos/renewa/renewa-one/git/refs") == [422, 422, 201]
    assert 2.0 in gh.clock.sleeps  # the pause after the second refusal
    assert gh.client.git.create_ref("refs/rollback-locks/staging", sha) is False  # now taken


def test_a_reference_update_failure_that_took_effect_is_this_calls_own(world: World) -> None:
    """The failed answer hid a success: the retry finds the ref already at this SHA (ours)."""
    answered: list[int] = []

    def first_lost(handle: Transport) -> Transport:
        def send(request: httpx.Request) -> httpx.Response:
            response = handle(request)
            if request.method == "POST" and request.url.path.endswith("/git/refs") \
                    and not answered:
                answered.append(response.status_code)
                return httpx.Response(422, json={"message": "Reference update failed"})
            return response
        return send

    gh = Harness(world, wrap=first_lost)
    sha = lease_commit(gh)
    assert gh.client.git.create_ref("refs/rollback-locks/staging", sha) is True
    assert answered == [201]


def test_a_403_for_want_of_push_access_is_not_an_authentication_error(world: World) -> None:
    """'Must have push access to view collaborator permission': the token works; its user lacks
    a permission. Said as such (a GitHubError naming the access), not "token expired"."""
    from rollback_helpers.errors import GitHubAuthError

    world.state["github"]["permissions"] = {"push": False}
    gh = Harness(world)
    with pytest.raises(GitHubError, match="Must have push access") as raised:
        gh.client.access.permission("alice")
    assert not isinstance(raised.value, GitHubAuthError)
    assert "lacks that access" in raised.value.what and "expired" not in str(raised.value)


def test_after_a_301_the_client_goes_to_the_new_address_directly(world: World) -> None:
    """A permanent move is remembered: the second read of a transferred issue costs one request,
    not a redirect each time."""
    world.state["github"]["issues"][0]["transferred_to"] = 1002
    gh = Harness(world)
    assert gh.client.issues.get_issue(1001).number == 1002
    assert gh.client.issues.get_issue(1001).number == 1002
    assert gh.statuses("/issues/100") == [301, 200, 200]
    assert gh.client.session.request_count == 3


def _runs_in_flight(world: World, *, count: int, ages: list[float]) -> list[int]:
    """``count`` completed promote runs for staging, then one run still queued per age."""
    from rollback_helpers.sandbox.github.actions import start_run

    completed = [start_run(world, "main", {"env": "staging", "image": f"i{n}"}, actor="ci",
                           created=world.now - 3600 - n) for n in range(count)]
    for run in completed:
        run.update(status="completed", conclusion="success")
    queued = [start_run(world, "main", {"env": "staging", "image": "q"}, actor="dana",
                        created=world.now - age)["id"] for age in ages]
    world.state["events"] = []  # they stay as they are
    world.save()
    return queued


def test_the_runs_in_flight_are_one_listing_of_the_last_30_days(world: World) -> None:
    queued = _runs_in_flight(world, count=3, ages=[600.0, 20 * DAY, 40 * DAY])
    gh = Harness(world)
    found = gh.client.actions.in_flight_runs("promote-image.yml", "staging")
    assert [run.id for run in found] == [queued[1], queued[0]]  # oldest first; 40 days: gone
    listings = [r for _, r in gh.sent if r.url.path.endswith("/runs")]
    assert len(listings) == 1 and listings[0].url.params["created"].startswith(">=")


def test_the_runs_in_flight_follow_the_listings_pages(world: World) -> None:
    queued = _runs_in_flight(world, count=150, ages=[600.0])
    gh = Harness(world)
    found = gh.client.actions.in_flight_runs("promote-image.yml", "staging")
    assert [run.id for run in found] == queued
    assert len([r for _, r in gh.sent if r.url.path.endswith("/runs")]) == 2


def test_more_runs_than_github_lists_fall_back_to_one_listing_per_status(
        world: World, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(github_actions, "LISTING_CAP", 10)  # GitHub's 1,000, made small
    queued = _runs_in_flight(world, count=11, ages=[600.0])
    gh = Harness(world)
    found = gh.client.actions.in_flight_runs("promote-image.yml", "staging")
    assert [run.id for run in found] == queued
    statuses = [r.url.params.get("status") for _, r in gh.sent if r.url.path.endswith("/runs")]
    assert statuses == [None, "queued", "in_progress", "waiting", "requested", "pending"]
