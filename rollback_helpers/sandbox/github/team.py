"""The sandbox GitHub's people: collaborators and their permissions, Environments with
required reviewers, and approvers who act on a run's plan in virtual time.

State (``state["github"]``): ``collaborators`` (login → ``admin``, ``maintain``,
``write``, ``triage``, ``read`` or ``none``; the operator, ``viewer``, is ``admin``),
``environments`` (name → ``{reviewers, prevent_self_review}``) and ``approvers``
(what each does, and when).

An approver waits for a run to ask: an ``approvers_watch`` event looks for a
run's record comment in state ``awaiting approval`` and, once one appears,
schedules each approver's ``approver_acts`` event ``after`` virtual seconds later.
They act by commenting on the record issue as themselves:

- ``approve``: ``/approve <run id>``;
- ``reject``: ``/reject <run id> <comment>``;
- ``approve-other-run``: ``/approve <another run's id>``;
- ``approve-older-plan``: ``/approve <run id> <a digest that is not the plan's>``.

GitHub's native gate: a promote run for an environment listed in ``environments``
waits (``status: waiting``, :func:`gate_run`) until a ``deployment_reviewed`` event
from ``reviews`` (``{login, state: approved | rejected, after, comment}``, ``after``
counted from when the run started waiting) approves it (it then queues and runs)
or rejects it (it completes ``failure``). Only a listed reviewer may review, and
not the run's actor when ``prevent_self_review`` is set.
"""

from __future__ import annotations

import re
from typing import Any

import httpx

from rollback_helpers.sandbox.core.world import World, on_event
from rollback_helpers.sandbox.github.common import (
    Call,
    error,
    json_response,
    node_id,
    route,
    stable_id,
    token_can_push,
    user_json,
)

ROLES = ("admin", "maintain", "write", "triage", "read", "none")
LEGACY = {"admin": "admin", "maintain": "write", "write": "write", "triage": "read",
          "read": "read", "none": "none"}
ACTIONS = ("approve", "reject", "approve-other-run", "approve-older-plan", "approve-hidden",
           "approve-fenced", "approve-details", "approve-quoted", "approve-conditional",
           "edited-into-approval")
AWAITING = re.compile(r"<!-- rollback-runbook run=(?P<run>\S+) path=\S+ env=\S+ -->"
                      r"[\s\S]*^- \*\*state:\*\* awaiting approval$", re.MULTILINE)
WATCH_EVERY = 5.0
OTHER_RUN = "0ther0run0id"
OTHER_PLAN = "0123456789ab"


# -- building the world ------------------------------------------------------------
def build_team(world: World, scenario: dict[str, Any]) -> None:
    """Collaborators, environments and approvers from a scenario (``[collaborators]``,
    ``[github_environments.<name>]``, ``[[approvers]]``)."""
    gh = world.state["github"]
    viewer = gh.setdefault("viewer", "runbook-operator")
    people = {viewer: "admin", **{str(k): str(v) for k, v in
                                  scenario.get("collaborators", {}).items()}}
    for login, role in people.items():
        if role not in ROLES:
            raise ValueError(f"collaborator {login}: permission {role!r} is not one of {ROLES}")
    gh["collaborators"] = people
    gh["environments"] = {name: {"reviewers": list(spec.get("reviewers", [])),
                                 "prevent_self_review": bool(spec.get("prevent_self_review", True))}
                          for name, spec in scenario.get("github_environments", {}).items()}
    gh["approvers"] = [_approver(spec) for spec in scenario.get("approvers", [])]
    gh["reviews"] = [{"login": str(r["login"]), "state": str(r.get("state", "approved")),
                      "after": float(r.get("after", 60)), "comment": str(r.get("comment", ""))}
                     for r in scenario.get("reviews", [])]
    if gh["approvers"]:
        world.schedule(1.0, "approvers_watch")


TEAMMATE = "sandbox-teammate"


def add_teammate(world: World, *, after: float = 60.0) -> str:
    """A sandbox teammate with write access who approves a run's plan ``after`` virtual seconds
    after it is posted: the second person a production drill needs (``--teammate-approves``)."""
    with world.transaction():
        gh = world.state["github"]
        gh.setdefault("collaborators", {})[TEAMMATE] = "write"
        approvers = gh.setdefault("approvers", [])
        if not any(a["login"] == TEAMMATE for a in approvers):
            if not approvers:  # the scenario's own approvers are watched already
                world.schedule(1.0, "approvers_watch")
            approvers.append(_approver({"login": TEAMMATE, "action": "approve", "after": after}))
    return TEAMMATE


def _approver(spec: dict[str, Any]) -> dict[str, Any]:
    action = str(spec.get("action", "approve"))
    if action not in ACTIONS:
        raise ValueError(f"approver {spec.get('login')}: action {action!r} is not one of {ACTIONS}")
    return {"login": str(spec["login"]), "action": action, "after": float(spec.get("after", 60)),
            "comment": str(spec.get("comment", "not now"))}


# -- approvers in virtual time ----------------------------------------------------------
def _awaiting(gh: dict[str, Any]) -> tuple[int, str] | None:
    """The issue and run id of a record comment awaiting approval, if any."""
    for number, comments in gh["comments"].items():
        for comment in comments:
            found = AWAITING.search(comment["body"])
            if found:
                return int(number), found["run"]
    return None


@on_event("approvers_watch")
def _watch(world: World, event: dict[str, Any]) -> None:
    gh = world.state["github"]
    found = _awaiting(gh)
    if found is None:
        world.schedule(WATCH_EVERY, "approvers_watch")
        return
    number, run_id = found
    for index, approver in enumerate(gh["approvers"]):
        world.schedule(approver["after"], "approver_acts", index=index, issue=number, run=run_id)


@on_event("approver_acts")
def _act(world: World, event: dict[str, Any]) -> None:
    gh = world.state["github"]
    approver = gh["approvers"][int(event["index"])]
    run, action = str(event["run"]), approver["action"]
    body = {"approve": f"/approve {run}", "reject": f"/reject {run} {approver['comment']}",
            "approve-other-run": f"/approve {OTHER_RUN}",
            "approve-older-plan": f"/approve {run} {OTHER_PLAN}",
            "approve-hidden": f"Looking.\n<!-- /approve {run} -->",
            "approve-fenced": f"To approve, one writes:\n```\n/approve {run}\n```",
            "approve-details": f"<details><summary>how</summary>\n\n/approve {run}\n</details>",
            "approve-quoted": f"> /approve {run}\n\nNo, not yet.",
            "approve-conditional": f"/approve {run} NOT until the DB team agrees",
            "edited-into-approval": "looking at the dashboards now"}[action]
    now = world.iso_now()
    comment = {"id": world.next_id("comment", 2_100_000_000), "body": body,
               "user": approver["login"], "created_at": now, "updated_at": now}
    gh["comments"].setdefault(str(event["issue"]), []).append(comment)
    if action == "edited-into-approval":  # the operator's token edits it: GitHub keeps `user`
        world.schedule(30.0, "comment_edited", id=comment["id"], body=f"/approve {run}")


@on_event("comment_edited")
def _edited(world: World, event: dict[str, Any]) -> None:
    """Someone with write access edits another person's comment: ``user`` stays the author,
    ``updated_at`` moves (GitHub's REST comment object)."""
    for comments in world.state["github"]["comments"].values():
        for comment in comments:
            if int(comment["id"]) == int(event["id"]):
                comment.update(body=str(event["body"]), updated_at=world.iso_now())


# -- GitHub's native gate: a run waiting on an Environment's required reviewers ------------------
def gate_run(world: World, run: dict[str, Any]) -> bool:
    """Hold a new run for review when its environment has required reviewers (True if held)."""
    gh = world.state["github"]
    env = run["inputs"].get("env", "")
    if env not in gh.get("environments", {}):
        return False
    run.update(status="waiting", waiting_since=world.iso_now(), environment=env, reviews=[])
    for index, review in enumerate(gh.get("reviews", [])):
        world.schedule(review["after"], "deployment_reviewed", run_id=run["id"], index=index)
    return True


@on_event("deployment_reviewed")
def _reviewed(world: World, event: dict[str, Any]) -> None:
    gh = world.state["github"]
    run = next((r for r in gh["runs"] if int(r["id"]) == int(event["run_id"])), None)
    review = gh["reviews"][int(event["index"])]
    spec = gh["environments"].get(run.get("environment", "")) if run else None
    if run is None or spec is None or run["status"] != "waiting":
        return
    if review["state"] == "bypassed":  # an admin starts the waiting job: no review is kept
        if gh.get("collaborators", {}).get(review["login"]) != "admin":
            return
    elif review["login"] not in spec["reviewers"] or (
            spec["prevent_self_review"] and review["login"] == run.get("actor")):
        return  # GitHub offers the review only to the environment's reviewers
    else:
        run["reviews"].append({**review, "at": world.iso_now()})
    run["updated_at"] = world.iso_now()
    if review["state"] == "rejected":
        run.update(status="completed", conclusion="failure")
        return
    run.update(status="queued")
    world.schedule(1.0, "workflow_run_started", run_id=run["id"])
    world.schedule(1.0 + float(gh["workflow"]["duration"]), "workflow_run_completed",
                   run_id=run["id"])


def _environment_ref(call: Call, name: str) -> dict[str, Any]:
    eid = stable_id("environment", name)
    return {"id": eid, "node_id": node_id("EN_kwDO", eid), "name": name,
            "url": f"{call.repo_api}/environments/{name}",
            "html_url": f"{call.repo_web}/deployments/activity_log?environments_filter={name}"}


def _run_or_404(call: Call) -> dict[str, Any] | None:
    return next((r for r in call.gh["runs"] if int(r["id"]) == int(call.args["run_id"])), None)


def _pending_deployments(call: Call) -> httpx.Response:
    run = _run_or_404(call)
    if run is None:
        return error(404, "Not Found", "actions/workflow-runs#get-pending-deployments-for-a-workflow-run")
    if run["status"] != "waiting":
        return json_response(200, [])
    spec = call.gh["environments"][run["environment"]]
    viewer = call.gh.get("viewer", "runbook-operator")
    return json_response(200, [{
        "environment": _environment_ref(call, run["environment"]), "wait_timer": 0,
        "wait_timer_started_at": run["waiting_since"],
        "current_user_can_approve": viewer in spec["reviewers"] and not (
            spec["prevent_self_review"] and viewer == run.get("actor")),
        "reviewers": [{"type": "User", "reviewer": user_json(login, call.api)}
                      for login in spec["reviewers"]]}])


def _run_reviews(call: Call) -> httpx.Response:
    run = _run_or_404(call)
    if run is None:
        return error(404, "Not Found", "actions/workflow-runs#get-the-review-history-for-a-workflow-run")
    env = run.get("environment", "")
    return json_response(200, [{"environments": [_environment_ref(call, env)],
                                "state": review["state"], "comment": review["comment"],
                                "user": user_json(review["login"], call.api)}
                               for review in run.get("reviews", [])])


# -- endpoints ----------------------------------------------------------------------------
def _collaborator(call: Call, login: str, role: str) -> dict[str, Any]:
    rank = ROLES.index(role)  # admin > maintain > write > triage > read > none
    return {**user_json(login, call.api), "role_name": role, "permissions": {
        "admin": rank <= 0, "maintain": rank <= 1, "push": rank <= 2, "triage": rank <= 3,
        "pull": rank <= 4}}


def _permission(call: Call) -> httpx.Response:
    if not token_can_push(call):  # as GitHub: not an authentication failure
        return error(403, "Must have push access to view collaborator permission.",
                     "collaborators/collaborators#get-repository-permissions-for-a-user")
    login = call.args["user"]
    role = call.gh.get("collaborators", {}).get(login)
    if role is None:
        return error(404, "Not Found",
                     "collaborators/collaborators#get-repository-permissions-for-a-user")
    return json_response(200, {"permission": LEGACY[role], "role_name": role,
                               "user": _collaborator(call, login, role)})


def _collaborators(call: Call) -> httpx.Response:
    wanted = call.params.get("permission", "")
    people = [(login, role) for login, role in call.gh.get("collaborators", {}).items()
              if role != "none"]
    if wanted:
        people = [(login, role) for login, role in people
                  if _collaborator(call, login, role)["permissions"].get(wanted)]
    return json_response(200, [_collaborator(call, login, role) for login, role in people])


def _environment(call: Call) -> httpx.Response:
    name = call.args["name"]
    spec = call.gh.get("environments", {}).get(name)
    if spec is None:
        return error(404, "Not Found", "deployments/environments#get-an-environment")
    rule_id = stable_id("rule", name)
    start = call.world.state.get("created_at") or call.world.iso_now()
    reviewers = [{"type": "User", "reviewer": user_json(login, call.api)}
                 for login in spec["reviewers"]]
    return json_response(200, {
        **_environment_ref(call, name), "created_at": start, "updated_at": start,
        "protection_rules": [{"id": rule_id, "node_id": node_id("GA_kwDO", rule_id),
                              "type": "required_reviewers",
                              "prevent_self_review": spec["prevent_self_review"],
                              "reviewers": reviewers}],
        "deployment_branch_policy": None})


ROUTES = [
    route("GET", r"/collaborators/(?P<user>[^/]+)/permission", _permission),
    route("GET", r"/collaborators", _collaborators),
    route("GET", r"/environments/(?P<name>[^/]+)", _environment),
    route("GET", r"/actions/runs/(?P<run_id>\d+)/pending_deployments", _pending_deployments),
    route("GET", r"/actions/runs/(?P<run_id>\d+)/approvals", _run_reviews),
]
