"""Path B end to end: the break-glass notebook run headless on each sandbox scenario.

Every drill restores (or refuses to) on real PostgreSQL servers. Across all of them:
no destructive or secret-writing command is issued, the source cluster keeps its
(damaged) data, no password reaches the archive, and no process outlives the run.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import psycopg
import pytest

from rollback_helpers.cli import main as cli
from rollback_helpers.run import archive
from rollback_helpers.sandbox import discard, shutdown
from rollback_helpers.sandbox.core.world import World, digest_for
from rollback_helpers.sandbox.fly.flip import simulate_human_flip
from rollback_helpers.sandbox.github.actions import promote_image
from rollback_helpers.sandbox.postgres import backups as pg_backups
from rollback_helpers.sandbox.postgres import servers as pg

pytestmark = pytest.mark.e2e
SOURCE = "w3k8p1x9m2q7v4zr"
NEVER = re.compile(r"\b(destroy|delete|detach|attach|secrets (set|unset|import)|deploy|"
                   r"releases rollback|apps destroy|machine destroy)\b")
PASSWORD_URL = re.compile(r"postgres(?:ql)?://[^:/@\s\"]+:(?!\*\*\*\*@)[^@\s\"]+@")


class Drill:
    def __init__(self, tmp_path: Path, path: str, scenario: str, *extra: str) -> None:
        tmp_path.mkdir(parents=True, exist_ok=True)
        tmp_path.chmod(0o755)  # the postgres OS user must reach the servers' data
        self.sandbox = Path(extra[extra.index("--sandbox-dir") + 1]) if "--sandbox-dir" in extra \
            else tmp_path / "sandbox"
        incidents = tmp_path / "incidents"
        self.exit_code = cli.main([
            "drill", path, "--env", "staging", "--scenario", scenario, "--speed", "0", "--quiet",
            *([] if "--sandbox-dir" in extra else ["--sandbox-dir", str(self.sandbox)]),
            "--incidents-dir", str(incidents), *extra])
        (self.archive,) = incidents.glob("*.ipynb")
        self.outcome = archive.read_outcome(self.archive)
        self.world = World.load(self.sandbox)
        self.text = self.archive.read_text()

    def flyctl_calls(self) -> list[dict[str, Any]]:
        return [c for c in self.world.calls() if c["seam"] == "flyctl"]

    def clusters(self) -> dict[str, Any]:
        return dict(self.world.state["fly"]["clusters"])

    def source_fingerprint(self) -> tuple[object, ...]:
        """The source's newest migration, whether meter_readings exists, customer emails."""
        info = pg.start_server(self.sandbox, SOURCE)
        try:
            with psycopg.connect(pg.superuser_dsn(info), autocommit=True) as conn:
                row = conn.execute(
                    "SELECT (SELECT max(version) FROM schema_migrations), "
                    "to_regclass('public.meter_readings') IS NOT NULL, "
                    "(SELECT count(email) FROM customers)").fetchone()
        finally:
            shutdown(self.sandbox)
        assert row is not None
        return tuple(row)

    def check_invariants(self) -> None:
        """What must hold after any Path B drill, whatever its outcome."""
        for call in self.flyctl_calls():
            assert not NEVER.search(call["call"]), call
            assert not call.get("refused"), call
        passwords = [p for c in self.clusters().values()
                     for p in (c.get("role_passwords") or {}).values()]
        passwords += [c.get("credentials", {}).get("password", "") for c in self.clusters().values()]
        for password in filter(None, passwords):
            assert password not in self.text
            assert password not in self.outcome.get("error", "")
        assert not PASSWORD_URL.search(self.text)
        assert self.world.state["github"]["token"] not in self.text
        assert leftover_processes(self.sandbox) == []


def leftover_processes(sandbox: Path) -> list[str]:
    """Processes still running that belong to this world (servers, tunnels)."""
    found = []
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            cmdline = (proc / "cmdline").read_bytes().replace(b"\0", b" ").decode()
            state = (proc / "stat").read_text().rsplit(")", 1)[-1].split()[0]
        except OSError:
            continue
        # Servers and tunnels name their world on the command line (tunnels: --world).
        if str(sandbox) in cmdline and state not in ("Z", "X"):
            found.append(cmdline)
    return found


def follow_up(d: Drill, path: str, *extra: str, scenario: str = "b-default") -> Drill:
    """Another drill in the same sandbox world (the next step of the same incident)."""
    return Drill(d.sandbox.parent / f"then-{path}", path, scenario, "--sandbox-dir",
                 str(d.sandbox), *extra)


@pytest.fixture
def drill(tmp_path: Path) -> Any:
    made: list[Drill] = []

    def run(path: str, scenario: str, *extra: str) -> Drill:
        made.append(Drill(tmp_path / str(len(made)), path, scenario, *extra))
        return made[-1]

    yield run
    for d in made:
        discard(d.sandbox)


def test_default_drill_restores_verifies_and_hands_over(drill: Any,
                                                         capsys: pytest.CaptureFixture[str]) -> None:
    """The textbook drill: a NEW cluster with the pre-deploy data, both users verified, a checklist;
    its last lines (with --quiet) name the new cluster, the lost writes and the next command."""
    d = drill("path-b", "b-default")
    assert d.exit_code == 0, d.outcome
    last = capsys.readouterr().out.splitlines()[-8:]  # then the exit code, the sandbox
    restored = [c for c in d.clusters().values() if c.get("restored_from")]
    assert len(restored) == 1 and restored[0]["id"] != SOURCE
    assert f"Path B new cluster: {restored[0]['id']}" in last, last
    assert any(line.startswith("Path B lost writes: writes after 20") and "since it (deploy → now)"
               in line for line in last), last
    assert any(line.startswith(f"Path B next: `rollback-runbook drill path-a --env staging "
                               f"--sandbox-dir {d.sandbox} --target-digest {digest_for('v41')}")
               for line in last), last
    assert not any("its world is removed" in line for line in last)  # --sandbox-dir: it stays
    assert "meter_readings: 600 rows on the new cluster, missing on the current one" in d.text
    assert "Manual flip checklist" in d.text and f"-  [staging]={SOURCE}" in d.text
    assert f"+  [staging]={restored[0]['id']}" in d.text
    # the changes: one restore, and one record comment edited in place (the lock aside)
    changes = [c["call"] for c in d.world.calls() if c["mutating"] and "/git/" not in c["call"]]
    restore = next(c["call"] for c in d.flyctl_calls() if c["call"].startswith("mpg restore"))
    assert [c for c in changes if not c.startswith(("POST", "PATCH"))] == [restore]
    assert len([c for c in changes if c.startswith("POST")]) == 1
    assert all(c.startswith(("mpg restore", "POST /repos/renewa/renewa-one/issues/",
                             "PATCH /repos/renewa/renewa-one/issues/comments/")) for c in changes)
    d.check_invariants()
    # the app still runs v42: the checklist re-promotes v41 through Path A first
    assert re.search(r"\[ \] 1\s+FIRST, before any secret changes: re-promote the pre-deploy image "
                     r"sha256:[0-9a-f]{12}", d.text)
    assert f"--target-digest {digest_for('v41')}" in d.text
    assert re.search(r"\[ \] 2\s+In Infisical", d.text)
    assert f"drill verify-flip --env staging --sandbox-dir {d.sandbox}" in d.text
    # following the checklist in order, verify-flip passes at the step that names it
    with d.world.transaction():
        assert promote_image(d.world, {"env": "staging",
                                       "image": f"registry.fly.io/renewa-one@{digest_for('v41')}"})
        d.world.advance()  # what Path A's dispatch does in the sandbox: the promote, its release
    simulate_human_flip(d.world, "staging", restored[0]["id"])  # Infisical, redeploy, the map
    verify = follow_up(d, "verify-flip")
    assert verify.exit_code == 0, verify.outcome
    assert "may now be detached and destroyed by a human" in verify.text
    assert d.source_fingerprint() == (pg_backups.DESTRUCTIVE_MIGRATION, False, 0)


def test_the_old_order_is_caught_by_verify_flip(drill: Any) -> None:
    """The flip done while the app ran v42: the redeploy re-applied the destructive migration to
    the restored cluster; verify-flip fails (exit 6) naming the image and the migration."""
    d = drill("verify-flip", "b-flipped-bad-image")
    assert d.exit_code == 6, d.outcome
    error = d.outcome["error"]
    assert "image ahead of schema" in error and pg_backups.DESTRUCTIVE_MIGRATION in error
    assert f"Do not touch the old cluster {SOURCE}" in error
    d.check_invariants()


def test_pitr_keeps_the_writes_made_between_the_backup_and_the_bad_deploy(drill: Any) -> None:
    """--pitr-time alone restores to one second before the bad deploy on a v2 cluster: the 24
    meter readings written after the backup are on the new cluster (a backup restore loses
    them), the destructive migration is not; the plan showed what each choice loses."""
    d = drill("path-b", "b-pitr", "--pitr-time")
    assert d.exit_code == 0, d.outcome
    restore = next(c["call"] for c in d.flyctl_calls() if c["call"].startswith("mpg restore"))
    assert "--pitr-time 2026-06-09T07:29:59Z" in restore and "--backup-id" not in restore
    assert "meter_readings: 624 rows on the new cluster, missing on the current one" in d.text
    assert "lost writes, backup" in d.text and "lost writes, point in time" in d.text
    assert "restore to the point in time 2026-06-09T07:29:59Z" in d.text  # the decision
    d.check_invariants()


@pytest.mark.parametrize(("env", "cluster", "extra"), [
    ("development", "k3v9x2m1q8w7e6r5", ()),
    ("production", "j5n2t8c4h7b1f6yq", ("--teammate-approves", "--confirm", "production")),
])
def test_every_environment_of_the_default_scenario_drills_path_b(
        drill: Any, env: str, cluster: str, extra: tuple[str, ...]) -> None:
    """b-default's other environments get a real server when the drill first needs one: the
    restore, both logins and the comparison run on real PostgreSQL; staging's damaged cluster
    is not even named."""
    d = drill("path-b", "b-default", "--env", env, *extra)
    assert d.exit_code == 0, d.outcome
    assert "Sandbox limitation" not in d.text
    restored = [c for c in d.clusters().values() if c.get("restored_from")]
    assert len(restored) == 1 and restored[0]["restored_from"]["cluster"] == cluster
    assert restored[0]["server"] and d.clusters()[cluster]["server"]
    assert "The new cluster holds the same migrations and row counts as the current one" in d.text
    restore = next(c["call"] for c in d.flyctl_calls() if c["call"].startswith("mpg restore"))
    assert restore.startswith(f"mpg restore {cluster} ")
    assert not [c for c in d.flyctl_calls() if SOURCE in c["call"]]
    assert f"drill verify-flip --env {env} --sandbox-dir {d.sandbox}" in d.text
    d.check_invariants()


def test_dry_run_restores_nothing(drill: Any) -> None:
    """A Path B dry run resolves and plans, exits 0, and makes no mutating call at all."""
    d = drill("path-b", "b-default", "--dry-run")
    assert d.exit_code == 0 and d.archive.name.endswith("-path-b-dry-run.ipynb")
    assert [c for c in d.world.calls() if c["mutating"]] == []
    assert all(not c.get("restored_from") for c in d.clusters().values())
    d.check_invariants()


def test_the_wait_overlaps_the_url_reads(drill: Any) -> None:
    """Both ssh reads happen before the new cluster is ready, not after it."""
    d = drill("path-b", "b-default")
    calls = d.flyctl_calls()
    ready_poll = max(i for i, c in enumerate(calls) if c["call"].startswith("mpg status"))
    ssh = [i for i, c in enumerate(calls) if c["call"].startswith("ssh console")]
    assert len(ssh) == 2 and max(ssh) < ready_poll
    assert all("--machine" in calls[i]["call"] and " -q " in f" {calls[i]['call']} " for i in ssh)


@pytest.mark.parametrize(("scenario", "extra", "exit_code", "step", "message"), [
    ("b-restore-error", (), 7, "Wait for readiness", "ended 'error'"),
    ("b-unknown-backup", (), 3, "Resolve", "is not among the"),
    ("b-incomplete-backup", (), 3, "Resolve", "'in_progress', not completed"),
    ("b-no-backup-id", (), 3, "Resolve", "has no backup_id"),
    ("b-cluster-map-mismatch", (), 3, "Resolve", "attached to"),
    ("b-proxy-bind-fails", (), 7, "Verify both users", "No tunnel to the new cluster"),
    ("b-migration-password-changed", (), 7, "Verify both users", "migration-user"),
])
def test_failures_are_archived_explained_and_safe(drill: Any, scenario: str, extra: tuple[str, ...],
                                                  exit_code: int, step: str, message: str) -> None:
    """Each fault stops at the right step with its exit code, a message and a next step."""
    d = drill("path-b", scenario, *extra)
    assert d.exit_code == exit_code == d.outcome["exit_code"], d.outcome
    assert step in d.outcome["failed_step"] and message in d.outcome["error"]
    assert "Next:" in d.outcome["error"]
    d.check_invariants()


def test_a_restore_timeout_carries_on_with_the_same_cluster(drill: Any) -> None:
    """The slow restore is only slow: it times out (exit 7) with the exact command that carries
    on; that command adopts the cluster still restoring and waits again: one `mpg restore`."""
    d = drill("path-b", "b-slow-restore")
    assert d.exit_code == 7 == d.outcome["exit_code"], d.outcome
    assert "Wait for readiness" in d.outcome["failed_step"]
    assert "still 'initializing'" in d.outcome["error"]
    command = f"rollback-runbook drill path-b --env staging --sandbox-dir {d.sandbox} " \
              "--ready-timeout 1800"
    assert command in d.outcome["error"]
    d.check_invariants()
    again = follow_up(d, "path-b", "--ready-timeout", "1800", scenario="b-slow-restore")
    assert again.exit_code == 0, again.outcome
    restores = [c for c in again.flyctl_calls() if c["call"].startswith("mpg restore")]
    assert len(restores) == 1
    assert "restored by an earlier run of this rollback" in again.text
    again.check_invariants()


def test_several_machines_read_quietly_from_one(drill: Any) -> None:
    """With three started machines the URLs are read from one named machine, without noise."""
    d = drill("path-b", "b-several-machines")
    assert d.exit_code == 0, d.outcome
    assert "No machine specified" not in d.text
    d.check_invariants()


def test_verify_flip_gives_the_all_clear_only_when_flipped(drill: Any) -> None:
    """After the full flip the verdict allows a human to destroy the old cluster; it runs nothing."""
    d = drill("verify-flip", "b-flipped")
    assert d.exit_code == 0, d.outcome
    assert f"the old cluster {SOURCE} may now be detached and destroyed by a human" in d.text
    assert "Metrics verdict: recovered" in d.text  # Path A's verdict, after the flip
    assert [c for c in d.world.calls() if c["mutating"]] == []
    d.check_invariants()


def test_verify_flip_lists_what_is_missing(drill: Any) -> None:
    """A partial flip fails verification (exit 6) naming the unflipped URL and the map."""
    d = drill("verify-flip", "b-flip-partial", "--new-cluster", "r9d4g7k2s5m8c1xt")
    assert d.exit_code == 6, d.outcome
    assert "DATABASE_URL_MIGRATION" in d.outcome["error"] and "mpg-clusters.sh" in d.outcome["error"]
    assert f"Do not touch the old cluster {SOURCE}" in d.outcome["error"]
    d.check_invariants()
