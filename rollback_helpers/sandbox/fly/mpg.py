"""The sandbox's ``flyctl mpg …``, answered from ``world.state["fly"]["clusters"]``.

A cluster in the world is ``{id, name, status, region, plan, attached_apps: [app names],
direct_ip, credentials: {status, user, password, dbname}, backups: [{id, status, type,
start, stop}]}``, optionally with ``org``, ``disk``, ``replicas`` and ``version`` (1 or 2);
``fly.org_id`` / ``fly.org_name`` and an app's ``id`` pin otherwise derived values.
Outputs follow the fixtures in ``contracts/flyctl-samples`` (v1 shapes by default).
A cluster with ``"server": true`` has a real PostgreSQL server behind it
(:mod:`.databases`); one without is metadata only.

``mpg restore`` adds a NEW cluster, ``initializing``, and schedules ``cluster_ready``
after ``fly.restore_seconds`` (default 240); the handler below makes it ready (or
``error`` when ``fly.restore_outcome == "error"``). Restoring a real cluster's real
backup starts a new real server at once (the source keeps running untouched); it
only becomes reachable through ``mpg proxy`` once the world says ``ready``.
``mpg proxy`` answers with a :class:`ProxyPlan`: :class:`FlyctlSandbox.start` runs it
as a real TCP forwarder (:mod:`..postgres.tcp_proxy`), or as one that fails before binding
when ``fly.proxy_fault == "bind"``.
"""

from __future__ import annotations

import re
import secrets as _random
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from typing import Any

from rollback_helpers.clients.commands import CommandResult
from rollback_helpers.sandbox.core.world import World, on_event
from rollback_helpers.sandbox.fly.common import (
    Invocation,
    RestoreRefused,
    base36_id,
    direct_ip_for,
    error,
    flympg_url,
    go_json,
    not_emulated,
    numeric_id,
    ok,
)

DEFAULT_RESTORE_SECONDS = 240.0
DAY = 86400.0
_RFC3339 = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d+)?(Z|[+-]\d{2}:\d{2})$")
BIND_FAULT = "listen tcp {bind}:{port}: bind: address already in use"


@dataclass(frozen=True)
class ProxyPlan:
    """What ``mpg proxy`` does once its checks pass: forward, or fail before binding."""

    cluster_id: str
    local_port: str
    bind: str
    remote: str  # "[<direct ip>]:5432", as flyctl prints it
    target_port: int = 0  # the real server's port on 127.0.0.1
    fail: str = ""  # an error to print (exit 1) instead of binding


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
            return self._mpg_restore_pitr(inv, source, pitr)
        started = f"Restoring cluster {source['id']} from backup {backup_id}...\n"
        backup = next((b for b in source.get("backups", []) if b.get("id") == backup_id), None)
        if backup is None or backup.get("status") != "completed":
            why = "not found" if backup is None else f"not completed ({backup.get('status')})"
            return error(inv.argv, f"failed to restore cluster: backup {backup_id} {why}",
                         stdout=started)
        try:
            new = self._new_cluster(source, backup, inv.flag("--name", "-n"))
        except RestoreRefused as exc:
            return error(inv.argv, f"failed to restore cluster: {exc}", stdout=started)
        return ok(inv.argv, started + "Restore initiated successfully!\n"
                                      f"  Cluster ID: {new['id']}\n  Cluster Name: {new['name']}\n")

    def _mpg_restore_pitr(self, inv: Invocation, source: dict[str, Any],
                          pitr: str) -> CommandResult:
        """``--pitr-time``: v2 clusters only; the newest real copy before the moment, replayed
        to it through the source's WAL archive (flyctl's checks and output, superfly/flyctl
        internal/command/mpg/restore.go)."""
        if not _RFC3339.match(pitr):
            return error(inv.argv, "--pitr-time must be an RFC3339 timestamp with an explicit "
                                   f"offset (e.g. 2026-06-01T12:00:00Z): parsing time {pitr!r}")
        if int(source.get("version", 1)) != 2:
            return error(inv.argv, "point-in-time restore is not supported for this cluster")
        at = datetime.fromisoformat(pitr.replace("Z", "+00:00")).timestamp()
        started = f"Restoring cluster {source['id']} to point in time {pitr}...\n"
        copies = [b for b in source.get("backups", []) if b.get("sandbox_copy")
                  and b.get("status") == "completed" and _epoch(b["start"]) <= at]
        if not copies:
            return error(inv.argv, "failed to restore cluster: the point in time is outside the "
                                   "cluster's PITR recovery window", stdout=started)
        try:
            new = self._new_cluster(source, copies[-1], inv.flag("--name", "-n"), pitr_time=at)
        except RestoreRefused as exc:
            return error(inv.argv, f"failed to restore cluster: {exc}", stdout=started)
        return ok(inv.argv, started + "Restore initiated successfully!\n"
                                      f"  Cluster ID: {new['id']}\n  Cluster Name: {new['name']}\n")

    def _mpg_proxy(self, inv: Invocation) -> CommandResult | ProxyPlan:
        """The proxy's checks before it binds: an error result, or what to run."""
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
        port = inv.flag("--local-port", "-p", default="16380")
        bind = inv.flag("--bind-addr", "-b", default="127.0.0.1")
        plan = ProxyPlan(found["id"], port, bind, f"[{found['direct_ip']}]:5432")
        if self.world.state["fly"].get("proxy_fault") == "bind":
            return replace(plan, fail=BIND_FAULT.format(bind=bind, port=port))
        from rollback_helpers.sandbox.fly import databases
        from rollback_helpers.sandbox.postgres import servers as postgres

        try:
            if not databases.has_server(self.world, found):
                return error(inv.argv, f"the sandbox has no database server behind cluster "
                                       f"{found['id']} (a metadata-only scenario cluster)")
            target = databases.ensure_running(self.world, found)
        except postgres.SandboxPostgresError as exc:
            return error(inv.argv, f"sandbox: the server of cluster {found['id']} did not start: "
                                   f"{exc}")
        return replace(plan, target_port=target)

    # -- building ----------------------------------------------------------------------------
    def _new_cluster(self, source: dict[str, Any], backup: dict[str, Any],
                     name: str, *, pitr_time: float | None = None) -> dict[str, Any]:
        cluster = fork_cluster(self.world, source, backup, name, pitr_time=pitr_time)
        delay = float(self.world.state["fly"].get("restore_seconds", DEFAULT_RESTORE_SECONDS))
        self.world.schedule(delay, "cluster_ready", cluster_id=cluster["id"])
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
    uri = flympg_url(user, password, "pgbouncer", cluster["id"], dbname)
    return {"status": creds.get("status", ""), "user": user, "password": password,
            "dbname": dbname, "pgbouncer_uri": uri if ready else ""}


def _epoch(text: str) -> float:
    return datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()


def _within_a_day(start: str, now: float) -> bool:
    try:
        when = datetime.fromisoformat(start.replace("Z", "+00:00")).astimezone(UTC).timestamp()
    except ValueError:
        return True  # flyctl keeps a backup whose start it cannot parse
    return when > now - DAY


def fork_cluster(world: World, source: dict[str, Any], backup: dict[str, Any], name: str,
                 new_id: str = "", *, pitr_time: float | None = None) -> dict[str, Any]:
    """The restore target: a NEW cluster, initializing; a real server if the source has one.

    Nothing is scheduled here: ``mpg restore`` schedules ``cluster_ready``; a scenario
    that starts after the restore marks it ready itself.
    """
    n = world.next_id("restored_cluster")
    new_id = new_id or base36_id(16, "restore", source["id"], backup["id"], n)
    cluster: dict[str, Any] = {
        "id": new_id, "name": name or f"{source['name']}-restore-{n}", "status": "initializing",
        "region": source.get("region", "fra"), "plan": source.get("plan", "basic"),
        "org": source.get("org", world.state["fly"].get("org")), "disk": source.get("disk", 10),
        "replicas": source.get("replicas", 1), "attached_apps": [], "direct_ip": "",
        "credentials": {"status": "initializing", "user": "", "password": "", "dbname": ""},
        "backups": [], "restored_from": {"cluster": source["id"], "backup": backup["id"]},
        "source_user": source.get("credentials", {}).get("user") or "fly-user",
        "source_dbname": source.get("credentials", {}).get("dbname") or "fly-db",
    }
    from rollback_helpers.sandbox.fly import databases

    cluster.update(databases.restore(world, source, backup, new_id, pitr_time=pitr_time))
    if pitr_time is not None:
        cluster["restored_from"]["pitr_time"] = pitr_time
    world.state["fly"].setdefault("clusters", {})[new_id] = cluster
    return cluster


@on_event("cluster_ready")
def cluster_ready(world: World, event: dict[str, Any]) -> None:
    """A restored cluster finishes initializing: ready (or error) with its credentials."""
    cluster = world.state["fly"].get("clusters", {}).get(event["cluster_id"])
    if cluster is None:
        return
    if cluster.get("server"):
        from rollback_helpers.sandbox.fly import databases

        if world.state["fly"].get("restore_outcome", "ready") == "error":
            databases.mark_failed(world, cluster)
        else:
            databases.mark_ready(cluster)
        return
    if world.state["fly"].get("restore_outcome", "ready") == "error":
        cluster["status"] = "error"
        cluster["credentials"] = {**cluster["credentials"], "status": "error"}
        return
    cluster["status"] = "ready"
    cluster["direct_ip"] = direct_ip_for(cluster["id"])
    cluster["credentials"] = {"status": "ready", "user": cluster.get("source_user", "fly-user"),
                              "password": _random.token_urlsafe(18),
                              "dbname": cluster.get("source_dbname", "fly-db")}
