"""The sandbox GitHub's Actions: workflow dispatch, workflow runs and their progress.

A dispatched ``promote-image`` run moves ``queued → in_progress → completed``
on the world's clock and, when it succeeds, repoints the environment's machines.
Runs come from ``state["github"]["runs"]``, the workflow (its inputs, timings,
dispatch mode and conclusion) from ``state["github"]["workflow"]``.

Importing this module registers the ``workflow_run_*`` event handlers.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any

import httpx

from rollback_helpers.clock import parse_iso, utc_iso
from rollback_helpers.sandbox.core.world import World, digest_for, on_event
from rollback_helpers.sandbox.github.common import (
    Call,
    error,
    json_response,
    node_id,
    paginate,
    repository_json,
    route,
    user_json,
)
from rollback_helpers.sandbox.github.team import gate_run

DEFAULT_INPUTS = {"env": True, "image": True}  # input name -> required


# -- JSON objects in GitHub's shapes -------------------------------------------------
def _run_json(call: Call, run: dict[str, Any]) -> dict[str, Any]:
    rid, wf = int(run["id"]), call.gh["workflow"]
    url = f"{call.repo_api}/actions/runs/{rid}"
    repository = repository_json(call)
    actor = user_json(run.get("actor", "runbook-operator"), call.api)
    return {
        "id": rid, "name": wf.get("name", "Promote image"), "node_id": node_id("WFR_kwLO", rid),
        "head_branch": run["head_branch"], "head_sha": run["head_sha"],
        "path": f".github/workflows/{wf['file']}", "display_title": run["display_title"],
        "run_number": run["run_number"], "event": "workflow_dispatch", "status": run["status"],
        "conclusion": run.get("conclusion"), "workflow_id": int(wf["id"]),
        "check_suite_id": rid + 1, "check_suite_node_id": node_id("CS_kwDO", rid + 1),
        "url": url, "html_url": f"{call.repo_web}/actions/runs/{rid}", "pull_requests": [],
        "created_at": run["created_at"], "updated_at": run["updated_at"], "actor": actor,
        "triggering_actor": actor, "run_attempt": 1, "referenced_workflows": [],
        "run_started_at": run.get("run_started_at") or run["created_at"],
        "jobs_url": f"{url}/jobs", "logs_url": f"{url}/logs",
        "check_suite_url": f"{call.repo_api}/check-suites/{rid + 1}",
        "artifacts_url": f"{url}/artifacts", "cancel_url": f"{url}/cancel",
        "rerun_url": f"{url}/rerun", "previous_attempt_url": None,
        "workflow_url": f"{call.repo_api}/actions/workflows/{wf['id']}",
        "head_commit": {"id": run["head_sha"],
                        "tree_id": digest_for("tree" + run["head_sha"])[7:47],
                        "message": "Merge pull request", "timestamp": run["created_at"],
                        "author": {"name": "deploy-bot", "email": "deploy-bot@example.com"},
                        "committer": {"name": "GitHub", "email": "noreply@github.com"}},
        "repository": repository, "head_repository": repository,
    }


# -- workflow dispatch and runs ----------------------------------------------------------
def _known_workflow(call: Call) -> bool:
    wf = call.gh["workflow"]
    return call.args["workflow"] in {wf["file"], str(wf["id"])}


def _dispatch(call: Call) -> httpx.Response:
    doc = "actions/workflows#create-a-workflow-dispatch-event"
    if not _known_workflow(call):
        return error(404, "Not Found", doc)
    body = call.body()
    mode = call.gh["workflow"].get("dispatch", "details")
    if mode == "legacy" and isinstance(body, dict) and "return_run_details" in body:
        return error(400, 'Invalid request.\n\n"return_run_details" is not a permitted key.', doc)
    problem = _dispatch_problem(call, body)
    if problem:
        return error(422, problem, doc)
    run = _create_run(call, body["ref"], body.get("inputs") or {})
    details = mode == "details" and (body.get("return_run_details") is True or call.request.headers
                                     .get("x-github-api-version") == "2026-03-10")
    if not details:
        return httpx.Response(204)
    return json_response(200, {"workflow_run_id": run["id"],
                               "run_url": f"{call.repo_api}/actions/runs/{run['id']}",
                               "html_url": f"{call.repo_web}/actions/runs/{run['id']}"})


def _dispatch_problem(call: Call, body: Any) -> str:
    if not isinstance(body, dict) or not isinstance(body.get("ref"), str) or not body["ref"]:
        return 'Invalid request.\n\n"ref" wasn\'t supplied.'
    if body["ref"].removeprefix("refs/heads/") not in call.gh.get("refs", ["main"]):
        return f"No ref found for: {body['ref']}"
    inputs = body.get("inputs") or {}
    if not isinstance(inputs, dict) or len(inputs) > 25:
        return "Invalid request.\n\nFor 'properties/inputs', must be an object of at most 25 keys."
    declared: dict[str, bool] = call.gh["workflow"].get("inputs", DEFAULT_INPUTS)
    unexpected = sorted(set(inputs) - set(declared))
    if unexpected:
        return f"Unexpected inputs provided: {json.dumps(unexpected)}"
    missing = [name for name, required in declared.items() if required and not inputs.get(name)]
    if missing:
        return f"Required input '{missing[0]}' not provided"
    return ""


def _create_run(call: Call, ref: str, inputs: dict[str, Any]) -> dict[str, Any]:
    return start_run(call.world, ref, inputs, actor=call.gh.get("viewer", "runbook-operator"))


def start_run(world: World, ref: str, inputs: dict[str, Any], *, actor: str,
              created: float | None = None) -> dict[str, Any]:
    """A dispatched run of the workflow; ``created`` in the past makes it start part-way."""
    wf = world.state["github"]["workflow"]
    run_id = world.next_id("run", 7_000_000)
    at = world.now if created is None else created
    run = {"id": run_id, "run_number": world.next_id("run_number", 100), "status": "queued",
           "conclusion": None, "head_branch": ref.removeprefix("refs/heads/"),
           "head_sha": digest_for(f"git-{ref}")[7:47],
           "inputs": {k: str(v) for k, v in inputs.items()},
           "created_at": utc_iso(at), "updated_at": utc_iso(at), "run_started_at": None,
           "display_title": f"Promote {inputs.get('image', '?')} to {inputs.get('env', '?')}",
           "actor": actor}
    world.state["github"]["runs"].append(run)
    if gate_run(world, run):  # an Environment with required reviewers: the run waits for them
        return run
    started, done = float(wf["queue_time"]), float(wf["queue_time"]) + float(wf["duration"])
    world.schedule(max(0.0, at + started - world.now), "workflow_run_started", run_id=run_id)
    world.schedule(max(0.0, at + done - world.now), "workflow_run_completed", run_id=run_id)
    return run


def _find_run(gh: dict[str, Any], run_id: int) -> dict[str, Any] | None:
    return next((r for r in gh["runs"] if int(r["id"]) == run_id), None)


def _get_run(call: Call) -> httpx.Response:
    run = _find_run(call.gh, int(call.args["run_id"]))
    if run is None:
        return error(404, "Not Found", "actions/workflow-runs#get-a-workflow-run")
    payload = _run_json(call, run)
    etag = 'W/"' + hashlib.sha256(json.dumps(payload, sort_keys=True).encode()).hexdigest() + '"'
    headers = {"etag": etag, "cache-control": "private, max-age=60, s-maxage=60"}
    if etag in {t.strip() for t in call.request.headers.get("if-none-match", "").split(",")}:
        return httpx.Response(304, headers=headers)
    return json_response(200, payload, headers)


def _list_runs(call: Call) -> httpx.Response:
    if not _known_workflow(call):
        return error(404, "Not Found", "actions/workflow-runs#list-workflow-runs-for-a-workflow")
    visible_after = float(call.gh["workflow"].get("list_delay", 0))
    runs = [r for r in call.gh["runs"] if _run_matches(r, call.params)
            and parse_iso(r["created_at"]) + visible_after <= call.world.now]
    runs.sort(key=lambda r: int(r["id"]), reverse=True)
    response = paginate(call, runs, lambda r: _run_json(call, r))
    if response.status_code != 200:
        return response
    payload = {"total_count": len(runs), "workflow_runs": response.json()}
    return json_response(200, payload, {k: v for k, v in response.headers.items() if k == "link"})


def _run_matches(run: dict[str, Any], params: httpx.QueryParams) -> bool:
    checks = [("event", "workflow_dispatch"), ("branch", run["head_branch"]),
              ("status", run["status"]), ("status", run.get("conclusion"))]
    for name in ("event", "branch", "status"):
        if name in params and params[name] not in {v for n, v in checks if n == name}:
            return False
    return "created" not in params or _created_matches(parse_iso(run["created_at"]),
                                                       params["created"])


def _created_matches(created: float, spec: str) -> bool:
    """GitHub's date filter: ``>=X``, ``>X``, ``<=X``, ``<X``, ``A..B`` or a day ``YYYY-MM-DD``."""
    for op, test in ((">=", float.__ge__), ("<=", float.__le__), (">", float.__gt__),
                     ("<", float.__lt__)):
        if spec.startswith(op):
            return bool(test(created, _when(spec[len(op):])))
    if ".." in spec:
        start, end = spec.split("..", 1)
        return (start in {"", "*"} or created >= _when(start)) and (
            end in {"", "*"} or created <= _when(end))
    return utc_iso(created).startswith(spec)


def _when(text: str) -> float:
    return parse_iso(text if "T" in text else text + "T00:00:00Z")


@on_event("workflow_run_started")
def _run_started(world: World, event: dict[str, Any]) -> None:
    run = _find_run(world.state["github"], int(event["run_id"]))
    if run is not None and run["status"] == "queued":
        run.update(status="in_progress", run_started_at=world.iso_now(), updated_at=world.iso_now())


@on_event("workflow_run_completed")
def _run_completed(world: World, event: dict[str, Any]) -> None:
    run = _find_run(world.state["github"], int(event["run_id"]))
    if run is None or run["status"] == "completed":
        return
    conclusion = world.state["github"]["workflow"].get("conclusion", "success")
    if conclusion == "success" and not promote_image(world, run["inputs"]):
        conclusion = "failure"  # the registry has no such manifest, or no app for the env
    run.update(status="completed", conclusion=conclusion, updated_at=world.iso_now())


def promote_image(world: World, inputs: dict[str, str]) -> bool:
    """What promote-image.yml does: point every machine of the env's app at the image; Fly
    then runs the image's release command (an event the sandbox's Fly handles)."""
    fly = world.state.get("fly", {})
    digest = inputs.get("image", "").partition("@")[2]
    name = next((n for n, img in fly.get("images", {}).items() if img["digest"] == digest), None)
    apps = [app for app in fly.get("apps", {}).values() if app.get("env") == inputs.get("env")]
    if name is None or not digest or not apps:
        return False
    for app_name, app in fly.get("apps", {}).items():
        if app not in apps:
            continue
        for machine in app["machines"]:
            machine.update(image=name, updated_at=world.iso_now())
        app["release"] = int(app["release"]) + 1
        world.schedule(0, "release_command", app=app_name)  # Fly's release runs the migrations
        # the timeline the app's traffic follows (sandbox.fly.prometheus)
        app.setdefault("deploys", []).append({"image": name, "at": world.now})
    return True


ROUTES = [
    route("POST", r"/actions/workflows/(?P<workflow>[^/]+)/dispatches", _dispatch),
    route("GET", r"/actions/workflows/(?P<workflow>[^/]+)/runs", _list_runs),
    route("GET", r"/actions/runs/(?P<run_id>\d+)", _get_run),
]
