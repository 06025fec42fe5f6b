"""The per-environment rows of the preflight (:mod:`rollback_helpers.runbook.preflight`).

    app status      flyctl status answers and some machine is started
    records         the newest records parse (docs/records.md)
    Path A target   a rollback target resolves, exactly as Path A would resolve it
    cluster map     the map's cluster is attached to the app and is the records' cluster
    backup          the newest record's backup id exists and is completed (Path B)
    health          the readiness endpoint answers
    metrics         the metrics endpoint answers for the app and the queries return series
"""

from __future__ import annotations

from collections.abc import Callable
from itertools import islice
from typing import Protocol, TypeVar

from rollback_helpers.clients.fly import AppStatus, Cluster, Fly
from rollback_helpers.clients.github import GitHubClient
from rollback_helpers.clients.health import check_health
from rollback_helpers.clients.metrics import NoEvidence
from rollback_helpers.domain.cluster_map import ClusterMap, read_cluster_map
from rollback_helpers.domain.config import EnvConfig, RunbookConfig
from rollback_helpers.domain.deployments import BadRecord, DeploymentRecord, Replay, record_from_issue
from rollback_helpers.domain.rollback_target import resolve_rollback_target
from rollback_helpers.run.backends import Backends
from rollback_helpers.run.metrics_evidence import read_window
from rollback_helpers.ui.display import short

T = TypeVar("T")
RECORDS_CHECKED = 10  # the newest records an incident reads first
NEEDS_GITHUB = "needs GitHub (see the GitHub token row)"
NEEDS_FLYCTL = "needs flyctl (see the flyctl login row)"


class Checks(Protocol):
    """What the per-environment checks need from the run of checks."""

    cfg: RunbookConfig
    backends: Backends
    github: GitHubClient | None
    fly: Fly | None

    def ok(self, check: str, env: str, detail: str) -> None: ...
    def fail(self, check: str, env: str, detail: str, next_step: str) -> None: ...
    def skip(self, check: str, env: str, why: str) -> None: ...
    def attempt(self, check: str, env: str, read: Callable[[], T]) -> T | None: ...


class EnvironmentChecks:
    def __init__(self, checks: Checks, env: EnvConfig) -> None:
        self.c = checks
        self.env = env
        self.name = env.name
        self.records: Replay | None = None
        self.path_b_applies = True  # False once the map and Fly agree there is no cluster

    def run(self) -> None:
        status = self.app_status()
        self.read_records()
        self.path_a_target(status)
        cluster = self.cluster_map()
        self.backup(cluster)
        self.health()
        self.metrics()

    # -- Fly ---------------------------------------------------------------------------------
    def app_status(self) -> AppStatus | None:
        fly, app = self.c.fly, self.env.app
        if fly is None:
            self.c.skip("app status", self.name, NEEDS_FLYCTL)
            return None
        status = self.c.attempt("app status", self.name, lambda: fly.status(app))
        if status is None:
            return None
        started = status.started()
        if not started:
            self.c.fail("app status", self.name, f"{app} answers, but no machine is started.",
                        f"Check `flyctl status -a {app}`: an app that is down needs the platform "
                        "runbook before any rollback.")
            return status
        self.c.ok("app status", self.name, f"{app}: {len(started)} of {len(status.machines)} "
                  f"machines started, release v{status.version}")
        return status

    # -- records and Path A ----------------------------------------------------------------------
    def read_records(self) -> None:
        github, cfg, labels = self.c.github, self.c.cfg, self.env.record_labels
        if github is None:
            self.c.skip("records", self.name, NEEDS_GITHUB)
            return
        records = Replay(record_from_issue(issue, env=self.name,
                                           rolled_back_label=cfg.rolled_back_label)
                         for issue in github.issues.iter_issues(labels))
        newest = self.c.attempt("records", self.name,
                                lambda: list(islice(records, RECORDS_CHECKED)))
        if newest is None:
            return
        if not newest:
            self.c.fail("records", self.name, f"No issues labelled {', '.join(labels)} in "
                        f"{cfg.github_repo}.", f"Check record_labels for {self.name} in "
                        "runbook.toml, and that the deploy pipeline opens a record per deploy.")
            return
        self.records = records
        bad = [r for r in newest if isinstance(r, BadRecord)]
        if bad:
            more = f" (and {len(bad) - 1} more)" if len(bad) > 1 else ""
            self.c.fail("records", self.name, f"#{bad[0].number} is malformed: {bad[0].reason}"
                        f"{more}.", f"Fix the issue body ({bad[0].url}); docs/records.md has the "
                        "format.")
            return
        self.c.ok("records", self.name, f"the {len(newest)} newest parse "
                  f"(#{newest[0].number} … #{newest[-1].number})")

    def path_a_target(self, status: AppStatus | None) -> None:
        check = "Path A target"
        if self.records is None or status is None or not status.started():
            self.c.skip(check, self.name, "needs the records and what runs now")
            return
        running = sorted(status.running_digests())
        if len(running) > 1:
            self.c.fail(check, self.name, f"{self.env.app} runs {len(running)} different images "
                        "(a deploy half-way?).", "Let the deploy finish, then check again.")
            return
        records = self.records
        target = self.c.attempt(check, self.name, lambda: resolve_rollback_target(
            records, env=self.name, running_digest=running[0],
            record_labels=self.env.record_labels))
        if target is not None and target.target is not None and target.bad_record is not None:
            self.c.ok(check, self.name, f"#{target.bad_record.number} ({short(running[0])}, "
                      f"running) → #{target.target.number} ({short(target.image.digest)})")

    # -- Path B: the cluster map and the backup ------------------------------------------------
    def newest_record(self) -> DeploymentRecord | None:
        """The record Path B restores from: the newest for the environment."""
        first = next(iter(self.records), None) if self.records is not None else None
        return first if isinstance(first, DeploymentRecord) else None

    def cluster_map(self) -> str | None:
        """The environment's cluster, once the map, Fly and the newest record agree on it."""
        check = "cluster map"
        if self.c.github is None or self.c.fly is None:
            self.c.skip(check, self.name, NEEDS_GITHUB if self.c.github is None else NEEDS_FLYCTL)
            return None
        cmap = self.c.attempt(check, self.name, self._read_map)
        attached = self.c.attempt(check, self.name, self._attached_clusters)
        if cmap is None or attached is None:
            return None
        mapped = cmap.clusters.get(self.name)
        if mapped is None and not attached:
            self.path_b_applies = False
            self.c.ok(check, self.name, f"no Managed Postgres cluster for {self.name} in "
                      f"{cmap.path} or on {self.env.app}: Path B does not apply")
            return None
        return self._agreeing_cluster(cmap, mapped, attached)

    def _agreeing_cluster(self, cmap: ClusterMap, mapped: str | None,
                          attached: list[Cluster]) -> str | None:
        check, app, ids = "cluster map", self.env.app, [c.id for c in attached]
        if mapped not in ids:
            self.c.fail(check, self.name, f"{cmap.path} names {mapped or 'no cluster'} for "
                        f"{self.name}, but {app} is attached to {', '.join(ids) or 'no cluster'}.",
                        f"Find out which is right (`flyctl mpg list --org {self.c.cfg.fly_org}`), "
                        f"then fix {cmap.path}; Path B stops on this disagreement.")
            return None
        record = self.newest_record()
        if record is not None and record.cluster_id and record.cluster_id != mapped:
            self.c.fail(check, self.name, f"Record #{record.number} names cluster "
                        f"{record.cluster_id}, but {cmap.path} and {app} use {mapped}.",
                        "Check which cluster the last deploy backed up, and fix the map or the "
                        "deploy pipeline's record.")
            return None
        self.c.ok(check, self.name, f"{mapped}: in {cmap.path}, attached to {app}"
                  + (f", named by record #{record.number}" if record is not None else ""))
        return mapped

    def _read_map(self) -> ClusterMap:
        cfg, github = self.c.cfg, self.c.github
        assert github is not None
        return read_cluster_map(repo_path=cfg.cluster_map_path,
                                local_file=cfg.cluster_map_file, github=github.contents)

    def _attached_clusters(self) -> list[Cluster]:
        assert self.c.fly is not None
        return [c for c in self.c.fly.mpg_list(self.c.cfg.fly_org)
                if self.env.app in c.attached_apps]

    def backup(self, cluster: str | None) -> None:
        check, record = "backup", self.newest_record()
        if cluster is None or record is None:
            why = "needs the newest record" if record is None else "needs the cluster map row"
            if not self.path_b_applies:
                self.c.ok(check, self.name, "Path B does not apply (no cluster)")
            else:
                self.c.skip(check, self.name, why)
            return
        if not record.backup_id:
            self.c.fail(check, self.name, f"The newest record, #{record.number}, has no backup_id: "
                        "Path B would have nothing to restore.", "Make the deploy pipeline take a "
                        "backup and write backup_id into every record (docs/records.md).")
            return
        self._backup_listed(cluster, record)

    def _backup_listed(self, cluster: str, record: DeploymentRecord) -> None:
        fly = self.c.fly
        assert fly is not None
        backups = self.c.attempt("backup", self.name, lambda: fly.mpg_backups(cluster))
        if backups is None:
            return
        found = next((b for b in backups if b.id == record.backup_id), None)
        if found is None or found.status != "completed":
            state = "is not listed" if found is None else f"is {found.status!r}, not completed"
            self.c.fail("backup", self.name, f"{record.backup_id} (record #{record.number}) "
                        f"{state} in `flyctl mpg backup list {cluster}`.", "Check the backup job; "
                        "Path B would need an earlier completed backup named (its backup id option).")
            return
        self.c.ok("backup", self.name, f"{found.id} of {cluster} is completed ({found.start}), "
                  f"named by record #{record.number}")

    # -- health --------------------------------------------------------------------------------
    def health(self) -> None:
        url = self.env.health_url
        result = check_health(self.c.backends.http, url, clock=self.c.backends.clock, grace=0,
                              consecutive=1)  # does it answer at all: one probe
        if result.status_code is None or result.status_code == 404:
            said = "no answer" if result.status_code is None else "404"
            self.c.fail("health", self.name, f"{url}: {said} ({result.detail or '—'}).",
                        f"Check health_url for {self.name} in runbook.toml (and DNS, VPN).")
        elif result.healthy:
            self.c.ok("health", self.name, f"{url}: 200 in {result.latency_ms:.0f} ms")
        else:
            self.c.ok("health", self.name, f"{url}: answers {result.status_code} (unhealthy now; "
                      "a rollback's verification waits for 200)")

    # -- metrics -------------------------------------------------------------------------------
    def metrics(self) -> None:
        """The app's traffic over the last baseline window, read as a rollback would read it."""
        settings, app, clock = self.env.metrics, self.env.app, self.c.backends.clock
        client = self.c.backends.metrics(self.c.cfg, self.name)
        now = clock.now()
        found = read_window(client, settings, app, now - settings.baseline_window, now,
                            clock=clock)
        where = f"[environments.{self.name}.metrics] in runbook.toml"
        if isinstance(found, NoEvidence):
            self.c.fail("metrics", self.name, f"{found}", "A rollback still works, without "
                        f"evidence that it ended the incident. Fix the URL or token ({where}; "
                        "Fly's endpoint reads FLY_API_TOKEN or `flyctl auth token`).")
        elif not found.requests:
            self.c.fail("metrics", self.name, f"{client.base_url}: the queries return no series "
                        f"for {app}.", f"Check the queries' metric names and app label ({where}).")
        else:
            ratio = found.error_ratio or 0.0
            p95 = "—" if found.p95 is None else f"{found.p95 * 1000:.0f} ms"
            self.c.ok("metrics", self.name, f"{client.base_url}: {found.requests:.0f} requests "
                      f"in {settings.baseline_window:g} s, {ratio:.2%} 5xx, p95 {p95}")
