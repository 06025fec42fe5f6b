"""The manual flip, done by a simulated human: what Path B leaves to a person.

After a restore, the runbook prints a checklist and stops. A person then
(1) updates ``DATABASE_URL`` and ``DATABASE_URL_MIGRATION`` in Infisical, whose
sync sets the app's secrets and redeploys it, and (3) edits the env → cluster map
(``scripts/lib/mpg-clusters.sh``). :func:`simulate_human_flip` does exactly that
to a world, for the scenarios that start after the flip (``b-flipped``,
``b-flip-partial``) and for tests. It never detaches or destroys anything, and
it is not a runbook call: it is not in the call log, only in ``fly.flips``.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any

from rollback_helpers.clock import utc_iso
from rollback_helpers.sandbox.core.world import World
from rollback_helpers.sandbox.fly.release import run_release_command

MAP_PATH = "scripts/lib/mpg-clusters.sh"
URL_VARS = ("DATABASE_URL", "DATABASE_URL_MIGRATION")
_FLYMPG_HOST = re.compile(r"^(?P<kind>[a-z0-9-]+)\.(?P<cluster>[a-z0-9]+)\.flympg\.net$")


def simulate_human_flip(world: World, env: str, new_cluster_id: str, *,
                        secrets: bool | Sequence[str] = True, cluster_map: bool = True,
                        map_path: str = MAP_PATH) -> None:
    """Point ``env``'s app and cluster map at the new cluster, as the human flip does.

    ``secrets``: True flips both URL variables, False none, a sequence the ones named.

    The new URLs keep their users and passwords (a physical restore keeps the
    password hashes) and change only the cluster id in the host. Changing
    secrets redeploys the app (a new release), as the Infisical sync does, and the
    redeploy runs the running image's release command (its migrations) against the
    cluster the new ``DATABASE_URL_MIGRATION`` names (:mod:`.release`).
    """
    with world.transaction():
        app_name, app = app_for_env(world, env)
        if new_cluster_id not in world.state["fly"].get("clusters", {}):
            raise ValueError(f"No cluster {new_cluster_id} in the sandbox world to flip to.")
        names = URL_VARS if secrets is True else () if secrets is False else tuple(secrets)
        for var in names:
            if var not in app["secrets"]:
                raise ValueError(f"{app_name} has no secret {var} to flip.")
            app["secrets"][var] = repoint_url(app["secrets"][var], new_cluster_id)
        if names:
            _redeploy(world, app)
            run_release_command(world, app_name)  # the redeploy's release command
        if cluster_map:
            files = world.state["github"]["files"]
            files[map_path] = remap(files.get(map_path, ""), env, new_cluster_id)
        world.state["fly"].setdefault("flips", []).append({
            "at": world.iso_now(), "env": env, "app": app_name, "cluster": new_cluster_id,
            "secrets": list(names), "cluster_map": cluster_map})


def app_for_env(world: World, env: str) -> tuple[str, dict[str, Any]]:
    for name, app in world.state["fly"]["apps"].items():
        if app.get("env") == env:
            return name, app
    raise ValueError(f"No app for environment {env!r} in the sandbox world.")


def repoint_url(url: str, cluster_id: str) -> str:
    """A ``pgbouncer.<old>.flympg.net`` URL → the same URL on ``<cluster_id>``."""
    head, at, rest = url.rpartition("@")
    host, slash, tail = rest.partition("/")
    found = _FLYMPG_HOST.match(host)
    if not at or found is None:
        raise ValueError("Not a Fly MPG connection string (…@<kind>.<cluster>.flympg.net/…).")
    return f"{head}@{found['kind']}.{cluster_id}.flympg.net{slash}{tail}"


def remap(text: str, env: str, cluster_id: str) -> str:
    """The map with ``[env]=<cluster_id>``: the line replaced, or added to the array."""
    line = re.compile(rf"^(?P<lead>\s*\[{re.escape(env)}\]=)\S*", re.MULTILINE)
    if line.search(text):
        return line.sub(lambda m: m["lead"] + cluster_id, text, count=1)
    if ")" in text:
        head, _, tail = text.rpartition(")")
        return f"{head}  [{env}]={cluster_id}\n){tail}"
    return (f"# env -> Fly Managed Postgres cluster id\ndeclare -A MPG_CLUSTERS=(\n"
            f"  [{env}]={cluster_id}\n)\n")


def _redeploy(world: World, app: dict[str, Any]) -> None:
    app["release"] = int(app["release"]) + 1
    for machine in app["machines"]:
        if machine.get("state") == "started":
            machine["updated_at"] = utc_iso(world.now)
