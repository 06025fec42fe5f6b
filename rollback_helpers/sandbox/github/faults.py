"""Scenario faults of the sandbox GitHub that a team's rollback runs into.

Built once the world's records exist (``docs/scenarios.md`` documents the keys):

- ``[faults] dispatch_after_accept`` / ``comment_after_accept`` = ``"drop"``,
  ``"timeout"`` or ``"502"``: the first dispatch (comment) is accepted, then its
  answer is lost (:mod:`.api` fires them);
- ``[faults] transferred = ["v42", …]``: those deploys' record issues move to a
  new number ``transfer_after`` virtual seconds into the drill (default 60), so
  requests for the old number answer 301;
- ``[faults] stale_lock = "staging"``: a lock on the environment whose lease
  expired an hour ago (its holder's laptop died);
- ``[workflow.in_flight]``: a promote run for an environment, started by someone
  else, still in progress when the drill starts.
"""

from __future__ import annotations

import json
from typing import Any

from rollback_helpers.clock import utc_iso
from rollback_helpers.errors import ConfigError
from rollback_helpers.sandbox.core.world import World, digest_for, on_event

LOST_ANSWERS = ("drop", "timeout", "502")
STALE_HOLDER = "erin"
STALE_RUN_ID = "DRILL-stale-run"


def build_github_faults(world: World, scenario: dict[str, Any]) -> None:
    faults = scenario.get("faults", {})
    gh = world.state["github"]
    for kind in ("dispatch", "comment"):
        lost = str(faults.get(f"{kind}_after_accept", ""))
        if lost and lost not in LOST_ANSWERS:
            raise ConfigError(f"Scenario fault {kind}_after_accept = {lost!r} is not known.",
                              f"Use one of: {', '.join(LOST_ANSWERS)}.")
        gh["faults"][f"{kind}_after_accept"] = lost
    for name in faults.get("transferred", []):
        _schedule_transfer(world, str(name), float(faults.get("transfer_after", 60)))
    if faults.get("stale_lock"):
        seed_lock(world, str(faults["stale_lock"]), holder=STALE_HOLDER, run_id=STALE_RUN_ID,
                  started=world.now - 2 * 3600, expired=world.now - 3600)
    in_flight = scenario.get("workflow", {}).get("in_flight")
    if in_flight:
        _run_in_flight(world, scenario, dict(in_flight))


# -- a transferred record ------------------------------------------------------------------
def _schedule_transfer(world: World, deploy: str, after: float) -> None:
    issues = [i for i in world.state["github"]["issues"]
              if str(i["title"]).startswith(f"Deploy {deploy} to ")]
    if not issues:
        raise ConfigError(f"Scenario fault transferred names {deploy!r}, which has no record.",
                          "Name a deploy listed in some environment's `deploys`.")
    for issue in issues:
        world.schedule(after, "issue_transferred", number=int(issue["number"]))


@on_event("issue_transferred")
def _transfer(world: World, event: dict[str, Any]) -> None:
    """Someone moves the record: it gets a new number, the old one answers 301."""
    gh = world.state["github"]
    issue = next((i for i in gh["issues"] if int(i["number"]) == int(event["number"])), None)
    if issue is None or issue.get("transferred_to"):
        return
    number = world.next_id("issue")
    gh["issues"].append({**json.loads(json.dumps(issue)), "number": number,
                         "updated_at": world.iso_now()})
    gh["comments"][str(number)] = gh["comments"].pop(str(issue["number"]), [])
    issue["transferred_to"] = number


# -- a stale lock --------------------------------------------------------------------------
def seed_lock(world: World, env: str, *, holder: str, run_id: str, started: float,
              expired: float, path: str = "path-a") -> str:
    """A lock lease on ``env`` as the runbook writes one (``rollback_helpers.run.lock``)."""
    from rollback_helpers.sandbox.github.git import store_commit

    lease = {"env": env, "holder": holder, "run_id": run_id, "path": path,
             "started_at": utc_iso(started), "expires_at": utc_iso(expired),
             "workflow_run_url": "", "broken_from": ""}
    text = json.dumps(lease, indent=1, sort_keys=True)
    message = f"rollback lock: {env} held by {holder} (run {run_id})\n\n{text}\n"
    sha = store_commit(world, message, {"lease.json": text + "\n"}, at=started)
    world.state["github"].setdefault("git", {"objects": {}, "refs": {}})["refs"][
        f"refs/rollback-locks/{env}"] = sha
    return sha


# -- a promote run already in flight -------------------------------------------------------
def _run_in_flight(world: World, scenario: dict[str, Any], spec: dict[str, Any]) -> None:
    """``env``, ``image`` (a deploy name; default the env's previous deploy), ``actor``,
    ``started`` (virtual seconds before the drill, default 30)."""
    from rollback_helpers.sandbox.github.actions import start_run

    env = str(spec.get("env", "staging"))
    env_spec = scenario.get("environments", {}).get(env)
    if env_spec is None:
        raise ConfigError(f"[workflow.in_flight] names environment {env!r}, which the scenario "
                          "does not define.", "Use one of the scenario's [environments.*].")
    deploys = list(env_spec.get("deploys", []))
    name = str(spec.get("image", deploys[-2] if len(deploys) > 1 else deploys[-1]))
    repository = env_spec.get("repository", "registry.fly.io/renewa-one")
    start_run(world, "main", {"env": env, "image": f"{repository}@{digest_for(name)}"},
              actor=str(spec.get("actor", "dana")),
              created=world.now - float(spec.get("started", 30)))
