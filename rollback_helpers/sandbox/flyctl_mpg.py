"""The sandbox's ``flyctl mpg …``, answered from ``world.state["fly"]["clusters"]``.

A cluster in the world is ``{id, name, status, region, plan, attached_apps: [app names],
direct_ip, credentials: {status, user, password, dbname}, backups: [{id, status, type,
start, stop}]}``, optionally with ``org``, ``disk``, ``replicas`` and ``version`` (1 or 2);
``fly.org_id`` / ``fly.org_name`` and an app's ``id`` pin otherwise derived values.
Outputs follow the fixtures in ``contracts/flyctl-samples`` (v1 shapes by default).

``mpg restore`` adds a NEW cluster, ``initializing``, and schedules ``cluster_ready``
after ``fly.restore_seconds`` (default 240); the handler below makes it ready (or
``error`` when ``fly.restore_outcome == "error"``). Each subcommand is one method, the
extension point for later behaviour (``_mpg_proxy`` will gain real TCP forwarding).
"""

from __future__ import annotations

import secrets as _random
from datetime import UTC, datetime
from typing import Any

from rollback_helpers.commands import CommandResult
from rollback_helpers.sandbox.flyctl_common import (
    Invocation,
    base36_id,
    digest_text,
    error,
    go_json,
    not_emulated,
    numeric_id,
    ok,
)
from rollback_helpers.sandbox.world import World, on_event

DEFAULT_RESTORE_SECONDS = 240.0
DAY = 86400.0


class MpgCommands:
    """``flyctl mpg`` subcommands, mixed into :class:`FlyctlSandbox`."""

    world: World

    # -- lookups ---------------------------------------------------------------------------
    @property
    def _clusters(self) -> dict[str, dict[str, Any]]:
        clusters: dict[str, dict[str, Any]] = self.world.state["fly"].setdefault("clusters", {})
        return clusters

    def _cluster_or_error(self, inv: Invocation) -> dict[str, Any] | CommandResult:
        if len(inv.args) != 1:
            return error(inv.argv, f"accepts 1 arg(s), received {len(inv.args)}")
        cluster = self._clusters.get(inv.args[0])
        if cluster is None:
            return error(inv.argv, f'managed postgres cluster "{inv.args[0]}" not found')
        return cluster

    # -- subcommands -----------------------------------------------------------------------
    def _mpg_status(self, inv: Invocation) -> CommandResult:
        found = self._cluster_or_error(inv)
        if isinstance(found, CommandResult):
            return found
        if not inv.has("--json", "-j"):
            return not_emulated(inv.argv, "mpg status without --json")
        data = (self._cluster_v2_json(found) if int(found.get("version", 1)) == 2
                else self._cluster_json(found))
        return ok(inv.argv, go_json({"data": data, "credentials": _credentials_json(found)}))

    def _mpg_list(self, inv: Invocation) -> CommandResult:
        org = inv.flag("--org", "-o")
        if not org:
            return error(inv.argv, "org slug must be specified when not running interactively")
        if org != self.world.state["fly"].get("org"):
            return error(inv.argv, f'Could not find Organization "{org}"')
        clusters = [c for c in self._clusters.values() if c.get("org", org) == org
                    and c.get("status") != "deleted"]
        if not clusters:
            return ok(inv.argv, f"No managed postgres clusters found in organization {org}\n")
        if not inv.has("--json", "-j"):
            return not_emulated(inv.argv, "mpg list without --json")
        return ok(inv.argv, go_json([self._cluster_json(c) for c in clusters]))

    def _mpg_backup_list(self, inv: Invocation) -> CommandResult:
        found = self._cluster_or_error(inv)
        if isinstance(found, CommandResult):
            return found
        cluster_id = found["id"]
        backups = list(found.get("backups", []))
        if not backups:
            return ok(inv.argv, f"No backups found for cluster {cluster_id}\n")
        if not inv.has("--all"):
            backups = [b for b in backups if _within_a_day(b.get("start", ""), self.world.now)]
            if not backups:
                return ok(inv.argv, f"No backups found for cluster {cluster_id} in the last 24 "
                                    "hours (use --all to see all backups)\n")
        if not inv.has("--json", "-j"):
            return not_emulated(inv.argv, "mpg backup list without --json")
        return ok(inv.argv, go_json([{key: b.get(key, "") for key in
                                      ("id", "status", "type", "start", "stop")} for b in backups]))

    def _mpg_restore(self, inv: Invocation) -> CommandResult:
        backup_id, pitr = inv.flag("--backup-id"), inv.flag("--pitr-time")
        if not backup_id and not pitr:
            return error(inv.argv, "one of --backup-id or --pitr-time is required")
        if backup_id and pitr:
            return error(inv.argv, "--backup-id and --pitr-time are mutually exclusive")
        found = self._cluster_or_error(inv)
        if isinstance(found, CommandResult):
            return found
        source = found
        if pitr:
            return not_emulated(inv.argv, "mpg restore --pitr-time")
        started = f"Restoring cluster {source['id']} from backup {backup_id}...\n"
        backup = next((b for b in source.get("backups", []) if b.get("id") == backup_id), None)
        if backup is None or backup.get("status") != "completed":
            why = "not found" if backup is None else f"not completed ({backup.get('status')})"
            return error(inv.argv, f"failed to restore cluster: backup {backup_id} {why}",
                         stdout=started)
        new = self._new_cluster(source, backup_id, inv.flag("--name", "-n"))
        return ok(inv.argv, started + "Restore initiated successfully!\n"
                                      f"  Cluster ID: {new['id']}\n  Cluster Name: {new['name']}\n")

    def _mpg_proxy(self, inv: Invocation) -> CommandResult | tuple[str, str]:
        """The proxy's checks before it binds: an error result, or (local port, remote addr).

        Real forwarding is not emulated yet: :meth:`FlyctlSandbox.start` turns a
        successful check into NotImplementedError, the place to add it.
        """
        found = self._cluster_or_error(inv)
        if isinstance(found, CommandResult):
            return found
        creds = found.get("credentials", {})
        if creds.get("status") == "initializing":
            return error(inv.argv, "cluster is still initializing, wait a bit more")
        if creds.get("status") == "error" or not creds.get("password"):
            return error(inv.argv, "error getting cluster password")
        if not found.get("direct_ip"):
            return error(inv.argv, "error getting cluster IP")
        return inv.flag("--local-port", "-p", default="16380"), f"[{found['direct_ip']}]:5432"

    # -- building ----------------------------------------------------------------------------
    def _new_cluster(self, source: dict[str, Any], backup_id: str, name: str) -> dict[str, Any]:
        n = self.world.next_id("restored_cluster")
        new_id = base36_id(16, "restore", source["id"], backup_id, n)
        fly = self.world.state["fly"]
        cluster = {
            "id": new_id, "name": name or f"{source['name']}-restore-{n}", "status": "initializing",
            "region": source.get("region", "fra"), "plan": source.get("plan", "basic"),
            "org": source.get("org", fly.get("org")), "disk": source.get("disk", 10),
            "replicas": source.get("replicas", 1), "attached_apps": [], "direct_ip": "",
            "credentials": {"status": "initializing", "user": "", "password": "", "dbname": ""},
            "backups": [], "restored_from": {"cluster": source["id"], "backup": backup_id},
            "source_user": source.get("credentials", {}).get("user") or "fly-user",
            "source_dbname": source.get("credentials", {}).get("dbname") or "fly-db",
        }
        self._clusters[new_id] = cluster
        delay = float(fly.get("restore_seconds", DEFAULT_RESTORE_SECONDS))
        self.world.schedule(delay, "cluster_ready", cluster_id=new_id)
        return cluster

    def _organization_json(self, cluster: dict[str, Any]) -> dict[str, Any]:
        fly = self.world.state["fly"]
        slug = str(cluster.get("org") or fly.get("org", "renewa"))
        nodes = {"Nodes": None, "Edges": None}
        return {
            "ID": fly.get("org_id") or base36_id(25, "org", slug), "InternalNumericID": "",
            "Name": fly.get("org_name") or slug.title(),
            "RemoteBuilderImage": "", "RemoteBuilderApp": None, "Slug": slug, "RawSlug": "",
            "Type": "", "PaidPlan": False, "Billable": False, "Settings": None,
            "AllowedReplaySourceOrgSlugs": None, "AllowAllCrossNetworkReplays": False,
            "WireGuardPeer": None, "WireGuardPeers": dict(nodes),
            "DelegatedWireGuardTokens": dict(nodes), "LoggedCertificates": None,
        }

    def _attached_json(self, cluster: dict[str, Any]) -> list[dict[str, Any]]:
        apps = self.world.state["fly"].get("apps", {})
        return [{"name": name, "id": int(apps.get(name, {}).get("id") or numeric_id("app", name))}
                for name in cluster.get("attached_apps", [])]

    def _cluster_json(self, cluster: dict[str, Any]) -> dict[str, Any]:
        """flyctl's v1 ``ManagedCluster`` (``mpg status`` data, ``mpg list`` entries)."""
        v2 = int(cluster.get("version", 1)) == 2
        return {
            "id": cluster["id"], "mpgd_cluster_id": cluster["id"] if v2 else "",
            "version": 2 if v2 else 1, "name": cluster["name"],
            "region": cluster.get("region", "fra"), "status": cluster["status"],
            "plan": cluster.get("plan", "basic"), "disk": int(cluster.get("disk", 10)),
            "replicas": int(cluster.get("replicas", 1)),
            "organization": self._organization_json(cluster),
            "ip_assignments": {"direct": cluster.get("direct_ip", "")},
            "attached_apps": self._attached_json(cluster),
        }

    def _cluster_v2_json(self, cluster: dict[str, Any]) -> dict[str, Any]:
        """flyctl's v2 ``GetClusterResponse`` data: an ``engine`` key, no ``version``."""
        v1 = self._cluster_json(cluster)
        order = ("id", "name", "status", "engine", "plan", "region", "organization",
                 "mpgd_cluster_id", "disk", "replicas", "ip_assignments", "attached_apps")
        return {key: cluster.get("engine", "postgres") if key == "engine" else v1[key]
                for key in order}


def _credentials_json(cluster: dict[str, Any]) -> dict[str, str]:
    creds = cluster.get("credentials", {})
    user, password = creds.get("user", ""), creds.get("password", "")
    dbname = creds.get("dbname", "")
    ready = creds.get("status") not in ("initializing", "error") and password
    uri = f"postgresql://{user}:{password}@pgbouncer.{cluster['id']}.flympg.net/{dbname}"
    return {"status": creds.get("status", ""), "user": user, "password": password,
            "dbname": dbname, "pgbouncer_uri": uri if ready else ""}


def _within_a_day(start: str, now: float) -> bool:
    try:
        when = datetime.fromisoformat(start.replace("Z", "+00:00")).astimezone(UTC).timestamp()
    except ValueError:
        return True  # flyctl keeps a backup whose start it cannot parse
    return when > now - DAY


@on_event("cluster_ready")
def cluster_ready(world: World, event: dict[str, Any]) -> None:
    """A restored cluster finishes initializing: ready (or error) with fresh credentials."""
    cluster = world.state["fly"].get("clusters", {}).get(event["cluster_id"])
    if cluster is None:
        return
    if world.state["fly"].get("restore_outcome", "ready") == "error":
        cluster["status"] = "error"
        cluster["credentials"] = {**cluster["credentials"], "status": "error"}
        return
    suffix = digest_text("ip", cluster["id"])
    cluster["status"] = "ready"
    cluster["direct_ip"] = f"fdaa:12:a3f1:0:1::{suffix[:3].lstrip('0') or '1'}"
    cluster["credentials"] = {"status": "ready", "user": cluster.get("source_user", "fly-user"),
                              "password": _random.token_urlsafe(18),
                              "dbname": cluster.get("source_dbname", "fly-db")}
