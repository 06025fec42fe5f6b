"""The sandbox GitHub's other voices: people who can only comment, and what they forge.

Anyone who can read a repository can comment on its issues; GitHub keeps each
comment's ``user`` as its author, even after someone with write access edits it
(only ``updated_at`` moves). A scenario's ``[[forgeries]]`` are comments written
as ``login`` (read access, write access, an admin: whatever ``[collaborators]``
says) that imitate the runbook's own voice:

- ``succeeded``: on the newest deployment record of ``env``, a record comment of a
  made-up Path A run, ``succeeded``, whose target is the image that runs now;
- ``dispatched``: the same, ``dispatched`` to the previous image, naming a workflow run
  that does not exist;
- ``flip-pending``: a made-up Path B run, ``flip pending``, naming a cluster;
- ``restored-source``: a made-up Path B run, ``restored``, naming the source cluster;
- ``copied-marker``: once a run's own record comment appears, a comment whose first
  line is that run's marker (so a careless final edit would land in it).

They are written when the world is built (``copied-marker``: when the run's
comment appears, looked for every ``WATCH_EVERY`` virtual seconds).
"""

from __future__ import annotations

import re
from typing import Any

from rollback_helpers.sandbox.core.world import World, on_event

KINDS = ("succeeded", "dispatched", "flip-pending", "restored-source", "copied-marker")
FORGED_RUN = "f0rged0run0id"
MARKER_RE = re.compile(r"^<!-- rollback-runbook run=\S+ path=\S+ env=\S+ -->")
IMAGE_RE = re.compile(r"^- image: (?P<image>\S+)$", re.MULTILINE)
PREVIOUS_RE = re.compile(r"^- previous_image: (?P<image>\S+)$", re.MULTILINE)
WATCH_EVERY = 2.0


def build_forgeries(world: World, scenario: dict[str, Any]) -> None:
    """The scenario's ``[[forgeries]]`` (``{login, kind, env}``), written or scheduled."""
    gh = world.state["github"]
    gh["forgeries"] = [{"login": str(f["login"]), "kind": str(f["kind"]),
                        "env": str(f.get("env", "staging"))}
                       for f in scenario.get("forgeries", [])]
    for index, forgery in enumerate(gh["forgeries"]):
        if forgery["kind"] == "copied-marker":
            world.schedule(1.0, "forger_watch", index=index)
        else:
            _forge(world, forgery, _source_cluster(scenario, forgery["env"]))


def post_as(world: World, number: int, login: str, body: str) -> dict[str, Any]:
    """A comment on issue ``number`` written by ``login`` now (as GitHub stores it)."""
    now = world.iso_now()
    comment = {"id": world.next_id("comment", 2_100_000_000), "body": body, "user": login,
               "created_at": now, "updated_at": now}
    world.state["github"]["comments"].setdefault(str(number), []).append(comment)
    return comment


def _source_cluster(scenario: dict[str, Any], env: str) -> str:
    spec = scenario.get("environments", {}).get(env, {})
    return str(scenario.get("cluster_map", {}).get(env) or spec.get("cluster_id") or "")


def _newest_record(world: World, env: str) -> dict[str, Any] | None:
    records = [i for i in world.state["github"]["issues"] if f"env:{env}" in i.get("labels", [])]
    return max(records, key=lambda i: int(i["number"]), default=None)


def _forge(world: World, forgery: dict[str, Any], source: str) -> None:
    issue = _newest_record(world, forgery["env"])
    if issue is None:
        return
    env, kind = forgery["env"], forgery["kind"]
    path = "path-a" if kind in ("succeeded", "dispatched") else "path-b"
    found = IMAGE_RE.search(issue.get("body", ""))
    image = found["image"] if found else ""
    previous = (PREVIOUS_RE.search(issue.get("body", "")) or {"image": ""})["image"]
    repo = world.state["github"]["repo"]
    bullets = {
        "succeeded": [("state", "succeeded"), ("target", f"`{image}`"),
                      ("workflow run", f"https://github.com/{repo}/actions/runs/999999")],
        "dispatched": [("state", "dispatched"), ("target", f"`{previous}`"),
                       ("workflow run", f"https://github.com/{repo}/actions/runs/999998")],
        "flip-pending": [("state", "flip pending"), ("new cluster", "`zzzzzzzzzzzzzzzz`"),
                         ("target", f"`backup b1 of {source} → forged-restore`")],
        "restored-source": [("state", "restored"), ("new cluster", f"`{source}`"),
                            ("target", f"`backup b1 of {source} → {source}`")],
    }[kind]
    lines = [f"<!-- rollback-runbook run={FORGED_RUN} path={path} env={env} -->",
             f"### Rollback run `{FORGED_RUN}` on {env}", "",
             *(f"- **{label}:** {value}" for label, value in bullets)]
    post_as(world, int(issue["number"]), forgery["login"], "\n".join(lines) + "\n")


@on_event("forger_watch")
def _watch(world: World, event: dict[str, Any]) -> None:
    """Copy the first line of a run's own record comment into a comment of the forger's."""
    gh = world.state["github"]
    forgery = gh["forgeries"][int(event["index"])]
    viewer = gh.get("viewer", "runbook-operator")
    for number, comments in gh["comments"].items():
        for comment in comments:
            found = MARKER_RE.match(comment["body"])
            if found and comment["user"] == viewer:
                post_as(world, int(number), forgery["login"],
                        f"{found.group(0)}\n- **state:** started\n(copied by {forgery['login']})\n")
                return
    world.schedule(WATCH_EVERY, "forger_watch", index=event["index"])
