"""The sandbox's GitHub answers with GitHub's status codes, headers and (schema-valid) shapes."""

from __future__ import annotations

import base64
import threading
from typing import Any

import httpx
import pytest
from github_rest import API, REPO, client_for, validate
from githubkit_schemas.latest import models  # GitHub's published schemas

from rollback_helpers.clock import parse_iso, started
from rollback_helpers.run.backends import WorldClock
from rollback_helpers.sandbox.core.world import World, digest_for

IMAGE_V41 = f"registry.fly.io/renewa-one@{digest_for('v41')}"


def dispatch(api: httpx.Client, **body: Any) -> httpx.Response:
    payload = {"ref": "main", "inputs": {"env": "staging", "image": IMAGE_V41}, **body}
    return api.post(f"{REPO}/actions/workflows/promote-image.yml/dispatches", json=payload)


def staging_issue(world: World) -> dict[str, Any]:
    return next(i for i in world.state["github"]["issues"] if "env:staging" in i["labels"])


def add_pull_request(world: World, number: int = 4242) -> None:
    world.state["github"]["issues"].append({
        "number": number, "title": "Bump deps", "body": None, "state": "open",
        "labels": ["deployment-record", "env:staging"], "created_at": world.iso_now(),
        "updated_at": world.iso_now(), "user": "some-dev", "pull_request": True})


# -- schemas -----------------------------------------------------------------------------
def test_issue_listing_items_are_valid_issues_and_prs_carry_pull_request(
        world: World, api: httpx.Client) -> None:
    add_pull_request(world)
    items = api.get(f"{REPO}/issues", params={"state": "all"}).json()
    issues = validate(list[models.Issue], items)
    pr = next(i for i in issues if i.number == 4242)
    assert pr.pull_request.html_url == "https://github.sandbox.invalid/renewa/renewa-one/pull/4242"
    assert all("pull_request" not in item for item in items if item["number"] != 4242)
    assert issues[0].user.login in {"deploy-bot", "some-dev"}
    assert items[0]["labels"][0].keys() >= {"id", "node_id", "url", "name", "color", "default",
                                            "description"}


def test_edited_comment_is_a_valid_issue_comment_with_a_later_updated_at(
        world: World, api: httpx.Client) -> None:
    created = api.post(f"{REPO}/issues/1001/comments", json={"body": "started"}).json()
    world.state["now"] = world.now + 60
    response = api.patch(f"{REPO}/issues/comments/{created['id']}", json={"body": "verified"})
    assert response.status_code == 200
    comment = validate(models.IssueComment, response.json())
    assert (comment.id, comment.body) == (created["id"], "verified")
    assert comment.updated_at > comment.created_at
    assert validate(models.IssueComment, api.get(f"{REPO}/issues/comments/{comment.id}").json())\
        .body == "verified"
    assert api.patch(f"{REPO}/issues/comments/{comment.id}", json={}).status_code == 422
    assert api.patch(f"{REPO}/issues/comments/1", json={"body": "x"}).status_code == 404


def test_comments_are_listed_in_pages_with_a_link_header(world: World, api: httpx.Client) -> None:
    for i in range(3):
        api.post(f"{REPO}/issues/1001/comments", json={"body": f"note {i}"})
    first = api.get(f"{REPO}/issues/1001/comments", params={"per_page": 2})
    assert [c.body for c in validate(list[models.IssueComment], first.json())] == [
        "note 0", "note 1"]
    second = api.get(first.links["next"]["url"])
    assert [c["body"] for c in second.json()] == ["note 2"] and "next" not in second.links


def test_single_issue_is_a_valid_issue(api: httpx.Client) -> None:
    issue = validate(models.Issue, api.get(f"{REPO}/issues/1001").json())
    assert issue.number == 1001 and issue.state == "open"
    assert issue.html_url == "https://github.sandbox.invalid/renewa/renewa-one/issues/1001"


def test_created_comment_is_a_valid_issue_comment(world: World, api: httpx.Client) -> None:
    response = api.post(f"{REPO}/issues/1001/comments", json={"body": "Rolled back."})
    assert response.status_code == 201
    comment = validate(models.IssueComment, response.json())
    assert comment.body == "Rolled back."
    assert response.headers["location"] == comment.url
    assert world.state["github"]["comments"]["1001"][0]["body"] == "Rolled back."
    assert api.get(f"{REPO}/issues/1001").json()["comments"] == 1
    listed = api.get(f"{REPO}/issues/1001/comments").json()
    assert [c.id for c in validate(list[models.IssueComment], listed)] == [comment.id]


def test_added_labels_are_valid_labels_and_unknown_ones_are_created(
        world: World, api: httpx.Client) -> None:
    number = staging_issue(world)["number"]
    response = api.post(f"{REPO}/issues/{number}/labels",
                        json={"labels": ["rolled-back", "env:staging"]})
    assert response.status_code == 200
    labels = validate(list[models.Label], response.json())
    names = [label.name for label in labels]
    assert names == ["deployment-record", "env:staging", "rolled-back"]
    assert "rolled-back" in world.state["github"]["labels"]


def test_dispatch_details_and_run_are_valid(api: httpx.Client) -> None:
    response = dispatch(api, return_run_details=True)
    assert response.status_code == 200
    details = validate(models.WorkflowDispatchResponse, response.json())
    run_response = api.get(details.run_url.removeprefix(API))
    run = validate(models.WorkflowRun, run_response.json())
    assert run.id == details.workflow_run_id and run.html_url == details.html_url
    assert (run.status, run.conclusion, run.event) == ("queued", None, "workflow_dispatch")
    assert run.path == ".github/workflows/promote-image.yml"


def test_runs_listing_is_valid(api: httpx.Client) -> None:
    dispatch(api)
    listing = api.get(f"{REPO}/actions/workflows/promote-image.yml/runs").json()
    parsed = validate(models.ReposOwnerRepoActionsWorkflowsWorkflowIdRunsGetResponse200, listing)
    assert parsed.total_count == 1 and len(parsed.workflow_runs) == 1


def test_contents_is_a_valid_content_file(world: World, api: httpx.Client) -> None:
    world.state["github"]["files"]["scripts/lib/mpg-clusters.sh"] = "declare -A X=(\n)\n" * 20
    response = api.get(f"{REPO}/contents/scripts/lib/mpg-clusters.sh", params={"ref": "main"})
    content = validate(models.ContentFile, response.json())
    assert base64.b64decode(content.content).decode() == "declare -A X=(\n)\n" * 20
    assert content.size == len("declare -A X=(\n)\n" * 20)
    assert api.get(f"{REPO}/contents/nope.sh").status_code == 404
    assert api.get(f"{REPO}/contents/scripts/lib/mpg-clusters.sh",
                   params={"ref": "no-such-branch"}).status_code == 404


def test_errors_are_valid_basic_errors(api: httpx.Client) -> None:
    body = api.get(f"{REPO}/issues/99999").json()
    assert validate(models.BasicError, body).message == "Not Found"


# -- headers and pagination -----------------------------------------------------------------
def test_every_response_carries_rate_limit_headers(world: World, api: httpx.Client) -> None:
    responses = [api.get(f"{REPO}/issues"), api.get(f"{REPO}/nope"),
                 client_for(world, "wrong").get(f"{REPO}/issues")]
    for response in responses:
        assert {"x-ratelimit-limit", "x-ratelimit-remaining", "x-ratelimit-used",
                "x-ratelimit-reset", "x-ratelimit-resource"} <= set(response.headers)
    used = [int(r.headers["x-ratelimit-used"]) for r in responses]
    assert used == [1, 2, 3]


def test_link_header_paginates_with_per_page_and_page(world: World, api: httpx.Client) -> None:
    total = len(world.state["github"]["issues"])
    assert total > 10 and total % 5  # a partial last page
    first = api.get(f"{REPO}/issues", params={"state": "all", "per_page": 5})
    assert len(first.json()) == 5
    assert set(first.links) == {"next", "last"}
    last = httpx.URL(first.links["last"]["url"])
    assert last.params["page"] == str(total // 5 + 1) and last.params["per_page"] == "5"
    assert last.params["state"] == "all"
    final = api.get(first.links["last"]["url"])
    assert len(final.json()) == total % 5
    assert set(final.links) == {"prev", "first"}
    assert "link" not in api.get(f"{REPO}/issues", params={"per_page": 100}).headers


def test_per_page_is_capped_at_100(world: World, api: httpx.Client) -> None:
    for n in range(150):
        world.state["github"]["issues"].append({
            "number": 5000 + n, "title": "t", "body": "", "labels": [], "state": "open",
            "created_at": world.iso_now(), "user": "x"})
    assert len(api.get(f"{REPO}/issues", params={"per_page": 500}).json()) == 100


def test_labels_filter_is_an_and_and_direction_and_state_are_honoured(
        world: World, api: httpx.Client) -> None:
    staging_issue(world)["state"] = "closed"
    both = api.get(f"{REPO}/issues", params={"labels": "deployment-record,env:staging",
                                             "state": "all", "direction": "asc"}).json()
    assert [i["title"] for i in both] == [f"Deploy v{n} to staging" for n in (39, 40, 41, 42)]
    open_only = api.get(f"{REPO}/issues", params={"labels": "env:staging"}).json()
    assert all(i["state"] == "open" for i in open_only) and len(open_only) == 3
    closed = api.get(f"{REPO}/issues", params={"state": "closed"}).json()
    assert len(closed) == 1
    assert closed[0]["state_reason"] == "completed" and closed[0]["closed_at"] is not None


# -- auth and faults ------------------------------------------------------------------------
def test_wrong_missing_or_expired_token_is_401_bad_credentials(world: World) -> None:
    for token in ("ghp_wrong", None):
        response = client_for(world, token).get(f"{REPO}/issues")
        assert response.status_code == 401
        assert response.json()["message"] == "Bad credentials"
        assert response.json()["status"] == "401"
    world.state["github"]["faults"]["token"] = "expired"
    valid = client_for(world, world.state["github"]["token"])
    assert valid.get(f"{REPO}/issues").status_code == 401


def test_primary_rate_limit_lasts_until_its_reset(world: World, api: httpx.Client) -> None:
    world.state["github"]["faults"]["rate_limit_on"] = [1]
    start = world.now
    refused = api.get(f"{REPO}/issues")
    assert refused.status_code == 403
    assert refused.headers["x-ratelimit-remaining"] == "0"
    assert int(refused.headers["x-ratelimit-reset"]) == int(start + 60)
    world.sleep(30)
    assert api.get(f"{REPO}/issues").status_code == 403
    world.sleep(30)
    assert api.get(f"{REPO}/issues").status_code == 200


def test_secondary_rate_limit_says_so_with_retry_after(world: World, api: httpx.Client) -> None:
    world.state["github"]["faults"]["secondary_limit_on"] = [2]
    assert api.get(f"{REPO}/issues/1001").status_code == 200
    refused = api.get(f"{REPO}/issues/1001")
    assert refused.status_code == 403
    assert "secondary rate limit" in refused.json()["message"]
    assert refused.headers["retry-after"] == "30"
    world.sleep(30)
    assert api.get(f"{REPO}/issues/1001").status_code == 200


def test_a_caller_behind_the_world_is_answered_at_its_own_time(
        world: World, api: httpx.Client) -> None:
    """Work overlapping with a long wait elsewhere has its own "now" (a lane): a limit it
    meets starts, and its ``retry-after`` counts, from its own time, so waiting that long on
    its own lane is enough; the call log stamps its calls at that time too."""
    world.state["github"]["faults"]["secondary_limit_on"] = [1]
    clock, began, moved_on = WorldClock(world), world.now, threading.Event()

    def overlapping() -> tuple[httpx.Response, httpx.Response]:
        moved_on.wait()
        refused = api.get(f"{REPO}/issues/1001")
        clock.sleep(float(refused.headers["retry-after"]))
        return refused, api.get(f"{REPO}/issues/1001")

    beside = started(clock, overlapping)
    world.sleep(20)  # the world moves on meanwhile: another lane's long wait
    moved_on.set()
    refused, retried = beside.result()
    assert (refused.status_code, refused.headers["retry-after"]) == (403, "30")
    assert retried.status_code == 200
    logged = [parse_iso(c["t"]) - began for c in world.calls() if c["seam"] == "github"]
    assert logged == [0, 30]


def test_server_error_on_the_given_request_ordinal(world: World, api: httpx.Client) -> None:
    world.state["github"]["faults"]["server_error_on"] = [2]
    codes = [api.get(f"{REPO}/issues/1001").status_code for _ in range(3)]
    assert codes == [200, 502, 200]
    assert world.state["github"]["request_count"] == 3


def test_unknown_routes_and_other_repos_are_404(api: httpx.Client) -> None:
    for path in ("/user/repos", f"{REPO}/pulls", "/repos/someone/else/issues/1001"):
        response = api.get(path)
        assert response.status_code == 404 and response.json()["message"] == "Not Found"
    assert api.delete(f"{REPO}/issues/1001/labels/env:staging").status_code == 404


# -- conditional requests ---------------------------------------------------------------------
def test_run_etag_answers_304_until_the_run_changes(world: World, api: httpx.Client) -> None:
    run_url = dispatch(api, return_run_details=True).json()["run_url"]
    first = api.get(run_url)
    etag = first.headers["etag"]
    used = int(first.headers["x-ratelimit-used"])
    again = api.get(run_url, headers={"If-None-Match": etag})
    assert again.status_code == 304 and again.content == b""
    assert int(again.headers["x-ratelimit-used"]) == used  # 304s are free
    world.sleep(5)
    changed = api.get(run_url, headers={"If-None-Match": etag})
    assert changed.status_code == 200 and changed.json()["status"] == "in_progress"


# -- dispatch ----------------------------------------------------------------------------------
@pytest.mark.parametrize(("mode", "with_field", "expected"), [
    ("details", True, 200), ("details", False, 204), ("no-content", True, 204),
    ("no-content", False, 204), ("legacy", True, 400), ("legacy", False, 204)])
def test_dispatch_modes(world: World, api: httpx.Client, mode: str, with_field: bool,
                        expected: int) -> None:
    world.state["github"]["workflow"]["dispatch"] = mode
    response = dispatch(api, **({"return_run_details": True} if with_field else {}))
    assert response.status_code == expected
    assert len(world.state["github"]["runs"]) == (0 if expected == 400 else 1)
    if expected == 204:
        assert response.content == b""


def test_api_version_2026_always_returns_run_details(api: httpx.Client) -> None:
    response = api.post(f"{REPO}/actions/workflows/promote-image.yml/dispatches",
                        json={"ref": "main", "inputs": {"env": "staging", "image": IMAGE_V41}},
                        headers={"X-GitHub-Api-Version": "2026-03-10"})
    assert response.status_code == 200 and "workflow_run_id" in response.json()


def test_dispatch_by_numeric_workflow_id(world: World, api: httpx.Client) -> None:
    wid = world.state["github"]["workflow"]["id"]
    response = api.post(f"{REPO}/actions/workflows/{wid}/dispatches",
                        json={"ref": "main", "inputs": {"env": "staging", "image": IMAGE_V41}})
    assert response.status_code == 204


@pytest.mark.parametrize(("body", "status", "message"), [
    ({"inputs": {"env": "staging", "image": IMAGE_V41}}, 422, '"ref" wasn\'t supplied'),
    ({"ref": "nope", "inputs": {"env": "staging", "image": IMAGE_V41}}, 422,
     "No ref found for: nope"),
    ({"ref": "main", "inputs": {"env": "staging"}}, 422, "Required input 'image' not provided"),
    ({"ref": "main", "inputs": {"env": "staging", "image": IMAGE_V41, "x": "1"}}, 422,
     'Unexpected inputs provided: ["x"]'),
])
def test_dispatch_validates_ref_and_inputs(world: World, api: httpx.Client, body: dict[str, Any],
                                           status: int, message: str) -> None:
    response = api.post(f"{REPO}/actions/workflows/promote-image.yml/dispatches", json=body)
    assert response.status_code == status
    assert message in response.json()["message"]
    assert world.state["github"]["runs"] == []


def test_dispatch_of_an_unknown_workflow_is_404(api: httpx.Client) -> None:
    response = api.post(f"{REPO}/actions/workflows/deploy.yml/dispatches",
                        json={"ref": "main", "inputs": {}})
    assert response.status_code == 404


# -- a run's life ----------------------------------------------------------------------------------
def test_successful_run_promotes_the_image_to_the_envs_machines(
        world: World, api: httpx.Client) -> None:
    app = world.state["fly"]["apps"]["renewa-one-staging"]
    release = app["release"]
    run_url = dispatch(api, return_run_details=True).json()["run_url"]
    world.sleep(5)
    assert api.get(run_url).json()["status"] == "in_progress"
    assert {m["image"] for m in app["machines"]} == {"v42"}
    world.sleep(90)
    run = api.get(run_url).json()
    assert (run["status"], run["conclusion"]) == ("completed", "success")
    assert {m["image"] for m in app["machines"]} == {"v41"}
    assert all(m["updated_at"] == world.iso_now() for m in app["machines"])
    assert app["release"] == release + 1
    production = world.state["fly"]["apps"]["renewa-one"]["machines"]
    assert {m["image"] for m in production} == {"v41"}  # untouched (it already ran v41)


def test_run_for_an_image_the_registry_lacks_fails(world: World, api: httpx.Client) -> None:
    unknown = f"registry.fly.io/renewa-one@{digest_for('v99')}"
    run_url = dispatch(api, return_run_details=True,
                       inputs={"env": "staging", "image": unknown}).json()["run_url"]
    world.sleep(95)
    assert api.get(run_url).json()["conclusion"] == "failure"
    machines = world.state["fly"]["apps"]["renewa-one-staging"]["machines"]
    assert {m["image"] for m in machines} == {"v42"}


def test_configured_failure_does_not_promote(world: World, api: httpx.Client) -> None:
    world.state["github"]["workflow"]["conclusion"] = "cancelled"
    run_url = dispatch(api, return_run_details=True).json()["run_url"]
    world.sleep(95)
    assert api.get(run_url).json()["conclusion"] == "cancelled"
    machines = world.state["fly"]["apps"]["renewa-one-staging"]["machines"]
    assert {m["image"] for m in machines} == {"v42"}


def test_runs_listing_filters_by_event_branch_and_created(world: World, api: httpx.Client) -> None:
    dispatch(api)
    world.sleep(60)
    since = world.iso_now()
    dispatch(api)
    url = f"{REPO}/actions/workflows/promote-image.yml/runs"
    assert api.get(url).json()["total_count"] == 2
    recent = api.get(url, params={"created": f">={since}", "event": "workflow_dispatch",
                                  "branch": "main"}).json()
    assert [r["id"] for r in recent["workflow_runs"]] == [world.state["github"]["runs"][-1]["id"]]
    assert api.get(url, params={"branch": "release"}).json()["total_count"] == 0
    assert api.get(url, params={"event": "push"}).json()["total_count"] == 0
    assert api.get(url, params={"created": f"<{since}"}).json()["total_count"] == 1


def test_transferred_issue_answers_301_to_its_new_home(world: World, api: httpx.Client) -> None:
    world.state["github"]["issues"][0]["transferred_to"] = 1005
    moved = api.get(f"{REPO}/issues/1001")
    assert moved.status_code == 301
    assert moved.headers["location"] == f"{API}{REPO}/issues/1005"


# -- the call log and persistence ----------------------------------------------------------------
def test_every_request_is_logged_with_status_and_mutations_are_saved(
        world: World, api: httpx.Client) -> None:
    api.get(f"{REPO}/issues/1001")
    api.post(f"{REPO}/issues/1001/comments", json={"body": "hi"})
    calls = world.calls()
    assert [(c["call"], c["mutating"], c["status"]) for c in calls] == [
        (f"GET {REPO}/issues/1001", False, 200), (f"POST {REPO}/issues/1001/comments", True, 201)]
    assert World.load(world.state_dir).state["github"]["comments"]["1001"][0]["body"] == "hi"


@pytest.mark.parametrize("body", [{}, {"body": ""}, {"body": 5}, ["body"]])
def test_a_comment_without_a_body_answers_422_when_created_or_edited(
        api: httpx.Client, body: Any) -> None:
    """A comment's body is required and may not be empty, on creation and on edit."""
    created = api.post(f"{REPO}/issues/1001/comments", json={"body": "started"}).json()
    for response, doc in [
            (api.post(f"{REPO}/issues/1001/comments", json=body), "create-an-issue-comment"),
            (api.patch(f"{REPO}/issues/comments/{created['id']}", json=body),
             "update-an-issue-comment")]:
        assert response.status_code == 422
        assert response.json()["message"] == 'Invalid request.\n\n"body" wasn\'t supplied.'
        assert response.json()["documentation_url"].endswith(f"#{doc}")
    comments = api.get(f"{REPO}/issues/1001/comments").json()
    assert [c["body"] for c in comments if c["id"] == created["id"]] == ["started"]


def test_the_repository_is_githubs_full_repository(api: httpx.Client) -> None:
    """GET /repos/{o}/{r} carries every field GitHub's full-repository schema requires (a client
    built on the schema, as githubkit is, accepts it)."""
    from githubkit_schemas.latest import models

    repo = validate(models.FullRepository, api.get(REPO).json())
    assert repo.full_name == "renewa/renewa-one" and repo.permissions is not None
    assert repo.clone_url.endswith("renewa-one.git") and repo.open_issues_count >= 0
