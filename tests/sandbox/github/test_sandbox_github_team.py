"""The sandbox's people: permissions, collaborators and Environments in GitHub's shapes, and
approvers who act on a run's plan in virtual time."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest
from github_rest import REPO, client_for, validate
from githubkit_schemas.latest import models

from rollback_helpers.errors import ConfigError
from rollback_helpers.sandbox.core.world import World
from rollback_helpers.sandbox.scenarios import create_world


def scenario(tmp_path: Path, extra: str) -> World:
    path = tmp_path / "team.toml"
    path.write_text('description = "team"\n' + extra + """
[environments.production]
app = "renewa-one"
deploys = ["v41", "v42"]
""")
    return create_world(str(path), tmp_path / "world")


TEAM = """
[collaborators]
alice = "write"
bob = "maintain"
carol = "read"

[github_environments.production]
reviewers = ["alice"]
prevent_self_review = true
"""


def test_permissions_answer_in_githubs_shape(tmp_path: Path) -> None:
    api = client_for(scenario(tmp_path, TEAM))
    answers = {}
    for user in ("alice", "bob", "carol", "runbook-operator"):
        response = api.get(f"{REPO}/collaborators/{user}/permission")
        assert response.status_code == 200
        parsed = validate(models.RepositoryCollaboratorPermission, response.json())
        answers[user] = (parsed.permission, parsed.role_name)
    assert answers == {"alice": ("write", "write"), "bob": ("write", "maintain"),
                       "carol": ("read", "read"), "runbook-operator": ("admin", "admin")}
    assert api.get(f"{REPO}/collaborators/mallory/permission").status_code == 404


def test_collaborators_with_push_are_the_writers(tmp_path: Path) -> None:
    api = client_for(scenario(tmp_path, TEAM))
    response = api.get(f"{REPO}/collaborators", params={"permission": "push"})
    people = validate(list[models.Collaborator], response.json())
    assert sorted(p.login for p in people) == ["alice", "bob", "runbook-operator"]
    everyone = api.get(f"{REPO}/collaborators").json()
    assert "carol" in [p["login"] for p in everyone]


def test_an_environment_with_required_reviewers(tmp_path: Path) -> None:
    api = client_for(scenario(tmp_path, TEAM))
    env = validate(models.Environment, api.get(f"{REPO}/environments/production").json())
    rule = env.protection_rules[0]
    assert rule.type == "required_reviewers" and rule.prevent_self_review is True
    assert [r.reviewer.login for r in rule.reviewers] == ["alice"]
    assert api.get(f"{REPO}/environments/staging").status_code == 404


def test_approvers_wait_for_a_plan_then_act_after_their_delay(tmp_path: Path) -> None:
    """Nothing happens before a run asks; then each acts ``after`` virtual seconds later."""
    world = scenario(tmp_path, TEAM + """
[[approvers]]
login = "alice"
action = "approve"
after = 100

[[approvers]]
login = "bob"
action = "approve-other-run"
after = 10
""")
    number = world.state["github"]["issues"][-1]["number"]
    world.sleep(600)  # nobody asked yet: nobody comments
    assert world.state["github"]["comments"].get(str(number), []) == []
    world.state["github"]["comments"][str(number)] = [{
        "id": 1, "user": "runbook-operator", "created_at": world.iso_now(),
        "updated_at": world.iso_now(),
        "body": "<!-- rollback-runbook run=abc123 path=path-a env=production -->\n"
                "### Rollback run\n\n- **state:** awaiting approval\n"}]
    world.sleep(5)  # the approvers notice the plan within one watch interval
    world.sleep(9)
    assert len(world.state["github"]["comments"][str(number)]) == 1
    world.sleep(1)
    bodies = [(c["user"], c["body"]) for c in world.state["github"]["comments"][str(number)][1:]]
    assert bodies == [("bob", "/approve 0ther0run0id")]
    world.sleep(90)
    bodies = [(c["user"], c["body"]) for c in world.state["github"]["comments"][str(number)][1:]]
    assert bodies[-1] == ("alice", "/approve abc123")


def test_a_bad_permission_or_action_is_refused_when_the_world_is_built(tmp_path: Path) -> None:
    """The scenario's model names the key and the accepted values (exit 2), before any world."""
    with pytest.raises(ConfigError, match=r"collaborators\.alice.*'write'") as caught:
        scenario(tmp_path, '[collaborators]\nalice = "owner"\n')
    assert caught.value.exit_code == 2
    with pytest.raises(ConfigError, match=r"approvers\.0\.action.*'approve'"):
        scenario(tmp_path, '[[approvers]]\nlogin = "alice"\naction = "lgtm"\n')


def test_a_run_for_a_protected_environment_waits_for_its_reviewer(tmp_path: Path) -> None:
    """Pending deployments name the reviewers; the review history says who approved."""
    world = scenario(tmp_path, TEAM + """
[[reviews]]
login = "runbook-operator"
state = "approved"
after = 10

[[reviews]]
login = "alice"
state = "approved"
after = 30
comment = "ok"
""")
    api = client_for(world)
    body = {"ref": "main", "inputs": {"env": "production", "image": "registry.fly.io/x@sha256:" + "a" * 64}}
    run_id = api.post(f"{REPO}/actions/workflows/promote-image.yml/dispatches",
                      json={**body, "return_run_details": True}).json()["workflow_run_id"]
    world.sleep(20)  # the operator's own review is not offered (prevent_self_review)
    assert api.get(f"{REPO}/actions/runs/{run_id}").json()["status"] == "waiting"
    [pending] = validate(list[models.PendingDeployment],
                         api.get(f"{REPO}/actions/runs/{run_id}/pending_deployments").json())
    assert pending.environment.name == "production" and pending.current_user_can_approve is False
    assert [r.reviewer.login for r in pending.reviewers] == ["alice"]
    world.sleep(15)
    assert api.get(f"{REPO}/actions/runs/{run_id}").json()["status"] in ("queued", "in_progress")
    reviews = validate(list[models.EnvironmentApprovals],
                       api.get(f"{REPO}/actions/runs/{run_id}/approvals").json())
    assert [(r.user.login, r.state, r.comment) for r in reviews] == [("alice", "approved", "ok")]
    assert api.get(f"{REPO}/actions/runs/{run_id}/pending_deployments").json() == []


def test_a_token_without_push_may_not_read_a_collaborators_permission(
        api: httpx.Client, world: World) -> None:
    """As GitHub: 403 "Must have push access to view collaborator permission." (the token is
    valid: other reads still answer 200)."""
    world.state["github"]["permissions"] = {"push": False}
    refused = api.get(f"{REPO}/collaborators/alice/permission")
    assert refused.status_code == 403
    assert refused.json()["message"] == "Must have push access to view collaborator permission."
    assert api.get(REPO).status_code == 200
