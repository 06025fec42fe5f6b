"""A scenario's Managed Postgres clusters: real servers for ``database = true`` environments
(Path B), metadata-only ones elsewhere, extra clusters, a restore already made and a flip
already done, and the cluster map file; built by :mod:`.scenarios`."""

from __future__ import annotations

import secrets as _random
from typing import Any

from rollback_helpers.clock import utc_iso
from rollback_helpers.errors import ConfigError
from rollback_helpers.sandbox.core.world import World

MAP_PATH = "scripts/lib/mpg-clusters.sh"
PITR_LEAD = 900.0  # a v2 cluster's pre-deploy backup ends this long before the deploy

def cluster_map_file(scenario: dict[str, Any]) -> dict[str, str]:
    clusters = {env: spec["cluster_id"] for env, spec in scenario.get("environments", {}).items()
                if spec.get("cluster_id")}
    clusters.update(scenario.get("cluster_map", {}))
    if not clusters:
        return {}
    rows = "\n".join(f"  [{env}]={cid}" for env, cid in clusters.items())
    return {MAP_PATH:
            f"# env -> Fly Managed Postgres cluster id\ndeclare -A MPG_CLUSTERS=(\n{rows}\n)\n"}


# -- Path B: clusters, real servers, backups, a restore and the human flip ---------------------
def build_database(world: World, env: str, spec: dict[str, Any],
                    times: list[tuple[float, str]]) -> dict[str, str]:
    """A real cluster for ``env``; the bad (last) deploy's real pre-deploy backup, then its
    damage. Returns deploy name → backup id, for the records."""
    from rollback_helpers.sandbox.fly import databases

    if not spec.get("cluster_id") or not times:
        raise ConfigError(f"Scenario environment {env!r} has database = true but no cluster_id "
                          "or no deploys.", "Give it a 16-character cluster_id and deploys.")
    app = spec["app"]
    cluster = databases.create_cluster(
        world, cluster_id=spec["cluster_id"], name=spec.get("cluster_name", f"{app}-db"), app=app,
        region=spec.get("region", "fra"), plan=spec.get("plan", "basic"),
        direct_ip=spec.get("direct_ip", ""))
    ids: dict[str, str] = {}
    older = int(spec.get("older_backups", 2))
    for at, name in times[:-1][-older:] if older > 0 else []:
        ids[name] = databases.backup_id_for(at, world.state["scenario"], env, name)
        cluster["backups"].append(databases.metadata_backup(ids[name], start=at))
    at, bad = times[-1]
    give_migrations(world, [name for _, name in times], spec)
    ids[bad] = databases.backup_id_for(at, world.state["scenario"], env, bad)
    pitr = int(spec.get("cluster_version", 1)) == 2  # v2: point-in-time restore, a WAL archive
    if pitr:
        cluster["version"] = 2
        databases.enable_wal_archive(world, cluster)
    databases.take_backup(world, cluster, ids[bad], start=at - (PITR_LEAD if pitr else 0),
                          status=spec.get("backup_status", "completed"))
    if spec.get("writes_after_backup"):
        databases.add_writes(world, cluster, int(spec["writes_after_backup"]), at=at - 1)
    if spec.get("rotate_migration_password"):
        databases.rotate_password(world, cluster, databases.MIGRATION_USER)
    if spec.get("destructive_migration", True):
        databases.apply_destructive_migration(world, cluster)
    if pitr:
        databases.mark_wal(world, cluster, at=at + 1)  # after the bad migration: replays it
    secrets = world.state["fly"]["apps"][app]["secrets"]
    secrets.update({k: v for k, v in databases.app_database_urls(cluster).items()
                    if k not in spec.get("secrets", {})})
    return ids


def give_migrations(world: World, deploys: list[str], spec: dict[str, Any]) -> None:
    """Each deployed image's migrations: the pre-deploy schema, and the bad (last) deploy's
    destructive migration on top (its release command applies it wherever it runs)."""
    from rollback_helpers.sandbox.postgres.backups import (
        DESTRUCTIVE_MIGRATION,
        PRE_DEPLOY_MIGRATIONS,
    )

    images = world.state["fly"]["images"]
    for name in deploys:
        images[name].setdefault("migrations", list(PRE_DEPLOY_MIGRATIONS))
    if spec.get("destructive_migration", True):
        images[deploys[-1]]["migrations"] = [*PRE_DEPLOY_MIGRATIONS, DESTRUCTIVE_MIGRATION]


def build_metadata_cluster(world: World, spec: dict[str, Any],
                            times: list[tuple[float, str]]) -> dict[str, str]:
    """The cluster of an environment without ``database``: listed by flyctl, no server.
    Its newest deploys have metadata-only pre-deploy backups; returns deploy → backup id.

    With ``database_on_demand``, the cluster keeps the role passwords its app's URLs name:
    the first restore or tunnel that needs it builds a real server with them, its newest
    backup a real copy (:func:`..fly.databases.has_server`)."""
    from rollback_helpers.sandbox.fly.common import digest_text, direct_ip_for, flympg_url

    app, cluster_id = spec["app"], spec["cluster_id"]
    password = _random.token_urlsafe(18)
    roles = {"fly-user": password, "app-user": _random.token_urlsafe(18),
             "migration-user": _random.token_urlsafe(18)}
    world.state["fly"]["clusters"][cluster_id] = {
        "id": cluster_id, "name": spec.get("cluster_name", f"{app}-db"), "status": "ready",
        "region": spec.get("region", "fra"), "plan": spec.get("plan", "basic"),
        "attached_apps": [app], "direct_ip": spec.get("direct_ip") or direct_ip_for(cluster_id),
        "credentials": {"status": "ready", "user": "fly-user", "password": password,
                        "dbname": "fly-db"},
        "backups": [], "server": False}
    if spec.get("database_on_demand"):
        world.state["fly"]["clusters"][cluster_id].update(on_demand=True, role_passwords=roles)
        give_migrations(world, [name for _, name in times], {"destructive_migration": False})
    ids: dict[str, str] = {}
    for at, name in times[-(int(spec.get("older_backups", 2)) + 1):] if times else []:
        ids[name] = f"backup_{int(at)}_{digest_text('backup', world.state['scenario'], app, name)[:16]}"
        world.state["fly"]["clusters"][cluster_id]["backups"].append(
            {"id": ids[name], "status": "completed", "type": "full", "start": utc_iso(at),
             "stop": utc_iso(at + 221.0), "sandbox_copy": False})
    secrets = world.state["fly"]["apps"][app]["secrets"]
    for var, (user, host) in {"DATABASE_URL": ("app-user", "pgbouncer"),
                              "DATABASE_URL_MIGRATION": ("migration-user", "direct")}.items():
        secrets.setdefault(var, flympg_url(user, roles[user], host, cluster_id, "fly-db"))
    return ids


def build_extra_clusters(world: World, clusters: dict[str, Any]) -> None:
    """``[clusters.<id>]``: metadata-only clusters (a stale one the map may still name)."""
    from rollback_helpers.sandbox.fly.common import direct_ip_for

    for cluster_id, spec in clusters.items():
        world.state["fly"]["clusters"][cluster_id] = {
            "id": cluster_id, "name": spec.get("name", f"cluster-{cluster_id[:6]}"),
            "status": spec.get("status", "ready"), "region": spec.get("region", "fra"),
            "plan": spec.get("plan", "basic"), "attached_apps": list(spec.get("attached_apps", [])),
            "direct_ip": spec.get("direct_ip") or direct_ip_for(cluster_id),
            "credentials": {"status": "ready", "user": "fly-user",
                            "password": _random.token_urlsafe(18), "dbname": "fly-db"},
            "backups": [], "server": False}


def build_restore_and_flip(world: World, env: str, spec: dict[str, Any]) -> None:
    """The world after the runbook's restore (ready) and the human's flip."""
    from rollback_helpers.sandbox.fly import databases
    from rollback_helpers.sandbox.fly.flip import simulate_human_flip
    from rollback_helpers.sandbox.fly.mpg import fork_cluster

    source = world.state["fly"]["clusters"][spec["cluster_id"]]
    backup = next(b for b in source["backups"] if b.get("sandbox_copy"))
    new = fork_cluster(world, source, backup, spec.get("restored_cluster_name",
                                                       f"{source['name']}-restore"),
                       new_id=spec.get("restored_cluster_id", ""))
    databases.mark_ready(new)
    simulate_human_flip(world, env, new["id"], secrets=spec.get("flip_secrets", True),
                        cluster_map=bool(spec.get("flip_cluster_map", True)), map_path=MAP_PATH)
