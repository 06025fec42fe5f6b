"""A team's faults on the sandbox GitHub, met by the real client: one run, one comment, 301s, runs
in flight, stale locks."""

from __future__ import annotations

import json
from pathlib import Path

import httpx
import pytest

from rollback_helpers.clients.github import GitHubClient
from rollback_helpers.clock import VirtualClock
from rollback_helpers.errors import ConfigError, LockHeld
from rollback_helpers.run.lock import EnvironmentLock, Lease
from rollback_helpers.sandbox.core.world import World, digest_for
from rollback_helpers.sandbox.github.actions import start_run
from rollback_helpers.sandbox.github.api import GitHubSandbox
from rollback_helpers.sandbox.scenarios import SCENARIO_DIR, create_world
from rollback_helpers.secrets import Secret

WORKFLOW = "promote-image.yml"
IMAGE_V41 = f"registry.fly.io/renewa-one@{digest_for('v41')}"
INPUTS = {"env": "staging", "image": IMAGE_V41}
MARKER = "<!-- rollback-runbook run=DRILL-1 path=path-a env=staging -->"


def client(world: World) -> GitHubClient:
    clock = VirtualClock(world.now)
    return GitHubClient(httpx.Client(transport=httpx.MockTransport(
        GitHubSandbox(world, clock=clock).handle)), world.state["github"]["repo"],
        Secret(world.state["github"]["token"]), clock=clock)


def world_with(tmp_path: Path, **faults: object) -> World:
    """The default scenario plus ``[faults]`` (it has none of its own)."""
    lines = [f"{key} = {json.dumps(value)}" for key, value in faults.items()]
    text = (SCENARIO_DIR / "default.toml").read_text() + "\n[faults]\n" + "\n".join(lines) + "\n"
    path = tmp_path / "scenario.toml"
    path.write_text(text)
    return create_world(str(path), tmp_path / "world")


def dispatch_posts(world: World) -> list[dict[str, object]]:
    return [c for c in world.calls() if c["call"].endswith("/dispatches")]


def staging_record(world: World, name: str = "v42") -> dict[str, object]:
    return next(i for i in world.state["github"]["issues"]
                if i["title"] == f"Deploy {name} to staging")


# -- the answer to an accepted request is lost ------------------------------------------------
@pytest.mark.parametrize("lost", ["drop", "timeout", "502"])
def test_a_dispatch_whose_answer_is_lost_makes_exactly_one_run(tmp_path: Path, lost: str) -> None:
    world = world_with(tmp_path, dispatch_after_accept=lost)
    run = client(world).actions.dispatch_workflow(WORKFLOW, "main", INPUTS)
    runs = world.state["github"]["runs"]
    assert [r["id"] for r in runs] == [run.id]
    assert [c.get("fault") for c in dispatch_posts(world)] == [f"accepted, then {lost}"]


def test_a_dispatch_refused_before_it_was_accepted_is_sent_again(tmp_path: Path) -> None:
    world = world_with(tmp_path, server_error_on=[1])  # the first request: a 502 from the edge
    run = client(world).actions.dispatch_workflow(WORKFLOW, "main", INPUTS)
    assert [r["id"] for r in world.state["github"]["runs"]] == [run.id]
    assert [c["status"] for c in dispatch_posts(world)] == [502, 200]


def test_after_a_lost_answer_someone_elses_run_is_not_taken_for_ours(tmp_path: Path) -> None:
    world = world_with(tmp_path, dispatch_after_accept="drop")
    other = f"registry.fly.io/renewa-one@{digest_for('v40')}"
    with world.transaction():
        start_run(world, "main", {"env": "production", "image": other}, actor="dana")
    run = client(world).actions.dispatch_workflow(WORKFLOW, "main", INPUTS)
    assert IMAGE_V41 in run.display_title and "staging" in run.display_title
    assert len(world.state["github"]["runs"]) == 2  # dana's and ours, not a third


@pytest.mark.parametrize("lost", ["drop", "502"])
def test_a_comment_whose_answer_is_lost_is_written_exactly_once(tmp_path: Path, lost: str) -> None:
    world = world_with(tmp_path, comment_after_accept=lost)
    number = int(staging_record(world)["number"])  # type: ignore[call-overload]
    comment = client(world).comments.create_comment(number, f"{MARKER}\n- **state:** started", marker=MARKER)
    stored = world.state["github"]["comments"][str(number)]
    assert [c["id"] for c in stored] == [comment.id]


def test_an_unknown_lost_answer_fault_is_a_scenario_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="dispatch_after_accept"):
        world_with(tmp_path, dispatch_after_accept="sometimes")


# -- a transferred record ---------------------------------------------------------------------
def test_a_record_transferred_mid_run_gets_its_label_and_comment_on_the_new_number(
        tmp_path: Path) -> None:
    world = create_world("transferred-record", tmp_path)
    gh = client(world)
    old = int(staging_record(world)["number"])  # type: ignore[call-overload]
    gh.clock.sleep(60)  # the rollback runs; meanwhile the issue is moved
    gh.issues.add_labels(old, ["rolled-back"])
    url = gh.comments.add_comment(old, "Rolled back to v41.")
    moved = next(i for i in world.state["github"]["issues"] if i.get("number") != old
                 and i["title"] == "Deploy v42 to staging")
    assert "rolled-back" in moved["labels"] and f"/issues/{moved['number']}#" in url
    assert world.state["github"]["comments"][str(moved["number"])][0]["body"] == "Rolled back to v41."
    statuses = [(c["call"].split("/issues/")[1], c["status"]) for c in world.calls()
                if "/issues/" in c["call"] and c["mutating"]]
    assert statuses == [(f"{old}/labels", 301), (f"{moved['number']}/labels", 200),
                        (f"{old}/comments", 301), (f"{moved['number']}/comments", 201)]
    listed = [i.number for i in gh.issues.iter_issues(["deployment-record", "env:staging"])]
    assert moved["number"] in listed and old not in listed


# -- a promote run in flight ------------------------------------------------------------------
def test_a_run_in_flight_started_by_someone_else_is_found_for_its_env_only(tmp_path: Path) -> None:
    world = create_world("run-in-flight", tmp_path)
    gh = client(world)
    [run] = gh.actions.in_flight_runs(WORKFLOW, "staging")
    assert run.status == "in_progress" and IMAGE_V41 in run.display_title
    assert world.state["github"]["runs"][0]["actor"] == "dana"
    assert gh.actions.in_flight_runs(WORKFLOW, "production") == []
    gh.actions.watch_run(run.id, timeout=600)
    assert gh.actions.in_flight_runs(WORKFLOW, "staging") == []


def test_a_run_whose_title_does_not_name_its_env_counts_as_in_flight_for_any(
        tmp_path: Path) -> None:
    world = create_world("default", tmp_path)
    with world.transaction():
        run = start_run(world, "main", INPUTS, actor="dana")
        run["display_title"] = "Promote image"  # no run-name: GitHub shows the workflow's name
    assert [r.id for r in client(world).actions.in_flight_runs(WORKFLOW, "production")] == [run["id"]]


# -- a stale lock -----------------------------------------------------------------------------
def test_a_stale_lock_is_shown_refused_and_taken_over_only_explicitly(tmp_path: Path) -> None:
    world = create_world("stale-lock", tmp_path)
    gh = client(world)
    lock = EnvironmentLock(gh, "staging", clock=gh.clock, ttl=900)
    stale = lock.held()
    assert stale is not None and stale.holder == "erin" and not stale.live(gh.clock.now())
    mine = Lease(env="staging", holder="frank", run_id="DRILL-2", path="path-a", started_at="",
                 expires_at="")
    with pytest.raises(LockHeld, match="expired"):
        lock.acquire(mine)
    taken = lock.acquire(mine, break_lock="erin's run died an hour ago")
    assert "DRILL-stale-run" in taken.broken_from and "died an hour ago" in taken.broken_from
