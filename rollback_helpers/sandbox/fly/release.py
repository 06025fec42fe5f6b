"""An image's release command: its migrations, run against the cluster the app's
``DATABASE_URL_MIGRATION`` names, as every deploy and redeploy on Fly does.

Each image in the world may carry ``migrations`` (its schema, oldest first). A
release (the promote workflow's, or the redeploy that follows a secrets change)
applies the ones the cluster has not recorded in ``schema_migrations`` yet, on the
real server: the destructive migration drops ``meter_readings`` and wipes the
customers' emails there too, whichever cluster that is. Every release is noted in
``fly.release_commands`` (never in the call log: no runbook call made it).
"""

from __future__ import annotations

import re
from typing import Any

from rollback_helpers.sandbox.core.world import World, on_event
from rollback_helpers.sandbox.postgres import backups as pg_backups
from rollback_helpers.sandbox.postgres import servers as postgres

MIGRATION_VAR = "DATABASE_URL_MIGRATION"
_CLUSTER_IN_HOST = re.compile(r"@[a-z0-9-]+\.(?P<cluster>[a-z0-9]+)\.flympg\.net")


def image_migrations(world: World, image: str) -> list[str]:
    return list(world.state["fly"].get("images", {}).get(image, {}).get("migrations", []))


def migration_cluster(app: dict[str, Any]) -> str:
    """The cluster id in the app's migration URL ('' when it names no Fly MPG host)."""
    found = _CLUSTER_IN_HOST.search(str(app.get("secrets", {}).get(MIGRATION_VAR, "")))
    return found["cluster"] if found else ""


def run_release_command(world: World, app_name: str) -> list[str]:
    """Apply the running image's pending migrations to the app's migration cluster; the
    migrations applied (none for an image without migrations or a metadata-only cluster)."""
    app = world.state["fly"]["apps"].get(app_name)
    if app is None:
        return []
    images = [m.get("image", "") for m in app.get("machines", []) if m.get("state") == "started"]
    image = images[0] if images else ""
    wanted = image_migrations(world, image)
    cluster = world.state["fly"].get("clusters", {}).get(migration_cluster(app))
    if not wanted or cluster is None or not cluster.get("server"):
        return []
    info = postgres.start_server(world.state_dir, cluster["id"])
    applied = pg_backups.applied_migrations(info)
    pending = [m for m in wanted if m not in applied]
    for migration in pending:
        pg_backups.apply_migration(info, migration)
    world.state["fly"].setdefault("release_commands", []).append({
        "at": world.iso_now(), "app": app_name, "image": image, "cluster": cluster["id"],
        "applied": pending})
    return pending


@on_event("release_command")
def _release(world: World, event: dict[str, Any]) -> None:
    """A release scheduled by another room (the promote workflow) runs here."""
    try:
        run_release_command(world, str(event["app"]))
    except Exception as exc:
        if not isinstance(exc, postgres.SandboxPostgresError) and not postgres.driver_error(exc):
            raise
        world.state["fly"].setdefault("release_commands", []).append({
            "at": world.iso_now(), "app": event["app"], "failed": str(exc)})
