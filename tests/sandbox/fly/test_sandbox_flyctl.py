"""The flyctl emulator: flyctl's exact outputs, built from the sandbox world."""

from __future__ import annotations

import json
import shlex
from pathlib import Path
from typing import Any

import pytest

from rollback_helpers.clients.commands import CommandResult
from rollback_helpers.clients.fly import Fly
from rollback_helpers.errors import CommandFailed, CommandRefused
from rollback_helpers.sandbox.core.world import World, digest_for
from rollback_helpers.sandbox.fly.common import go_json
from rollback_helpers.sandbox.fly.flyctl import FlyctlSandbox
from rollback_helpers.sandbox.scenarios import create_world

FIXTURES = Path(__file__).parents[2] / "fixtures" / "flyctl"
APP = "renewa-one-staging"
CLUSTER = "w3k8p1x9m2q7v4zr"
BACKUP = "backup_1760445047_1a4a7fa7ec8accc4"
PASSWORD = "example-password-not-real"
DB_URL = f"postgresql://fly-user:{PASSWORD}@pgbouncer.{CLUSTER}.flympg.net/fly-db"


def fixture(name: str) -> str:
    return (FIXTURES / name).read_text()


@pytest.fixture
def world(tmp_path: Path) -> World:
    """The default scenario, plus the MPG clusters of the flyctl samples' world."""
    world = create_world("default", tmp_path / "world")
    fly = world.state["fly"]
    fly["org_id"] = "pZy1Wq7Kx3NvR0mB8tLd2JsQ6"
    fly["apps"][APP]["id"] = 3048812
    fly["apps"]["renewa-one"]["id"] = 2987734
    fly["apps"][APP]["secrets"]["DATABASE_URL"] = DB_URL
    fly["clusters"] = {
        CLUSTER: {"id": CLUSTER, "name": "renewa-one-staging-db", "status": "ready",
                  "region": "fra", "plan": "basic", "attached_apps": [APP],
                  "direct_ip": "fdaa:12:a3f1:0:1::7",
                  "credentials": {"status": "ready", "user": "fly-user", "password": PASSWORD,
                                  "dbname": "fly-db"},
                  "backups": json.loads(fixture("mpg-backup-list.json"))},
        "j5n2t8c4h7b1f6yq": {"id": "j5n2t8c4h7b1f6yq", "name": "renewa-one-production-db",
                             "status": "ready", "region": "fra", "plan": "starter", "disk": 20,
                             "attached_apps": ["renewa-one"], "direct_ip": "fdaa:12:a3f1:0:1::3",
                             "credentials": {"status": "ready", "user": "fly-user",
                                             "password": "another-password-x", "dbname": "fly-db"},
                             "backups": []},
    }
    world.save()
    return world


@pytest.fixture
def sandbox(world: World) -> FlyctlSandbox:
    return FlyctlSandbox(world)


def run(sandbox: FlyctlSandbox, command: str) -> CommandResult:
    return sandbox.run(["flyctl", *shlex.split(command)], timeout=10)


def key_paths(value: Any, prefix: str = "") -> list[str]:
    """Every key path in document order (list items merged), to compare JSON shapes."""
    found: list[str] = []
    if isinstance(value, dict):
        for key, item in value.items():
            found.append(prefix + key)
            found += key_paths(item, prefix + key + ".")
    elif isinstance(value, list) and value:
        found += key_paths(value[0], prefix + "[].")
    return found


# -- apps ---------------------------------------------------------------------------------------
def test_status_json_has_the_sample_shape_and_parses(sandbox: FlyctlSandbox) -> None:
    result = run(sandbox, f"status -a {APP} --json")
    assert (result.returncode, result.stderr) == (0, "")
    assert result.stdout.endswith("}\n") and not result.stdout.endswith("\n\n")
    assert '\n    "AppURL": ' in result.stdout  # 4-space indent
    doc, sample = json.loads(result.stdout), json.loads(fixture("status.json"))
    assert key_paths(doc) == key_paths(sample)
    ids = [m["id"] for m in doc["Machines"]]
    assert ids == sorted(ids, reverse=True)
    status = Fly(sandbox).status(APP)
    assert status.running_digests() == {digest_for("v42")}
    assert status.version == doc["Version"] and len(status.started()) == 2
    assert status.machines[0].config_image.startswith(f"registry.fly.io/{APP}:deployment-01K")
    assert status.machines[0].image_repository == "registry.fly.io/renewa-one"


def test_status_checks_follow_the_image_health(sandbox: FlyctlSandbox, world: World) -> None:
    # Set explicitly: scenarios.py shares `images` across environments, so development's
    # healthy v42 currently overwrites staging's `unhealthy = ["v42"]`.
    world.state["fly"]["images"]["v42"]["healthy"] = False
    staging = json.loads(run(sandbox, f"status -a {APP} --json").stdout)
    production = json.loads(run(sandbox, "status -a renewa-one --json").stdout)
    assert {m["checks"][0]["status"] for m in staging["Machines"]} == {"critical"}  # v42
    assert {m["checks"][0]["status"] for m in production["Machines"]} == {"passing"}


def test_machine_list_keeps_flaps_order_and_the_sample_shape(sandbox: FlyctlSandbox,
                                                            world: World) -> None:
    result = run(sandbox, f"machine list -a {APP} --json")
    doc = json.loads(result.stdout)
    assert key_paths(doc) == key_paths(json.loads(fixture("machine-list.json")))
    assert [m["id"] for m in doc] == [m["id"] for m in world.state["fly"]["apps"][APP]["machines"]]
    assert run(sandbox, f"machines ls -a {APP} --json").stdout == result.stdout


def test_releases_have_the_sample_shape_newest_first(sandbox: FlyctlSandbox,
                                                     world: World) -> None:
    doc = json.loads(run(sandbox, f"releases -a {APP} --json").stdout)
    assert key_paths(doc) == key_paths(json.loads(fixture("releases.json")))
    versions = [r["Version"] for r in doc]
    assert versions[0] == world.state["fly"]["apps"][APP]["release"]
    assert versions == sorted(versions, reverse=True) and len(versions) <= 25
    releases = Fly(sandbox).releases(APP)
    status = Fly(sandbox).status(APP)
    assert releases[0].image_ref == status.machines[0].config_image


def test_releases_rollback_prints_cobras_usage_and_error(sandbox: FlyctlSandbox) -> None:
    result = run(sandbox, "releases rollback")
    assert result.returncode == 1
    assert result.stdout == fixture("releases-rollback.stdout")
    assert result.stderr == fixture("releases-rollback.stderr")


@pytest.mark.parametrize(("command", "stderr"), [
    ("status -a nope --json", 'Error: failed to get app: Could not find App "nope"\n'),
    ("releases -a nope --json",
     'Error: failed retrieving app releases nope: Could not find App "nope"\n'),
    ("machine list -a nope --json", 'Error: Could not find App "nope"\n'),
    ("ssh console -a nope -C 'printenv X'", 'Error: get app: Could not find App "nope"\n'),
])
def test_unknown_app_errors(sandbox: FlyctlSandbox, command: str, stderr: str) -> None:
    result = run(sandbox, command)
    assert (result.returncode, result.stdout, result.stderr) == (1, "", stderr)


def test_version(sandbox: FlyctlSandbox) -> None:
    assert run(sandbox, "version").stdout.startswith("flyctl v0.4.87 linux/amd64 Commit: ")


# -- ssh console ----------------------------------------------------------------------------------
def test_ssh_console_noisy_form_matches_the_sample(sandbox: FlyctlSandbox, world: World) -> None:
    first = world.state["fly"]["apps"][APP]["machines"][0]
    result = run(sandbox, f"ssh console -a {APP} -C 'printenv DATABASE_URL'")
    assert result.returncode == 0
    assert result.stdout == (fixture("ssh-console-noisy.stdout")
                             .replace("5683d920b1e048", first["id"]))
    assert result.stderr == f"Connecting to {first['private_ip']}...\n"


def test_ssh_console_quiet_with_machine_prints_only_the_value(sandbox: FlyctlSandbox,
                                                             world: World) -> None:
    second = world.state["fly"]["apps"][APP]["machines"][1]["id"]
    result = run(sandbox, f"ssh console -a {APP} --machine {second} -q -C 'printenv DATABASE_URL'")
    assert (result.returncode, result.stdout, result.stderr) == (
        0, fixture("ssh-console-quiet.stdout"), "")
    secret = Fly(sandbox).read_secret_env(APP, second, "DATABASE_URL")
    assert secret.reveal() == DB_URL and PASSWORD not in repr(secret)


def test_ssh_console_quiet_alone_still_prints_the_noise_line(sandbox: FlyctlSandbox) -> None:
    result = run(sandbox, f"ssh console -a {APP} -q -C 'printenv DATABASE_URL'")
    assert result.stdout.startswith("No machine specified, using ") and result.stderr == ""


def test_ssh_console_takes_flyctls_own_flags(sandbox: FlyctlSandbox, world: World) -> None:
    """As flyctl's ssh/console.go: ``--no-container`` is a boolean, ``-g``/``--process-group``
    (also ``--group``) take a value; a flag flyctl lacks is refused as it would be."""
    second = world.state["fly"]["apps"][APP]["machines"][1]["id"]
    for flags in ("--no-container", "-g app", "--process-group app", "--group app"):
        result = run(sandbox, f"ssh console -a {APP} --machine {second} {flags} -q "
                              "-C 'printenv DATABASE_URL'")
        assert result.returncode == 0 and result.stdout == fixture("ssh-console-quiet.stdout")
    refused = run(sandbox, f"ssh console -a {APP} --no-such-flag -C 'printenv X'")
    assert refused.returncode == 1 and "unknown flag: --no-such-flag" in refused.stderr


def test_ssh_console_unset_variable(sandbox: FlyctlSandbox, world: World) -> None:
    machine = world.state["fly"]["apps"][APP]["machines"][0]["id"]
    result = run(sandbox, f"ssh console -a {APP} --machine {machine} -q -C 'printenv NOPE'")
    assert (result.returncode, result.stdout) == (1, "")
    assert result.stderr == "Error: ssh shell: Process exited with status 1\n"
    with pytest.raises(CommandFailed, match=f"NOPE is not set on {APP} machine {machine}"):
        Fly(sandbox).read_secret_env(APP, machine, "NOPE")


def test_ssh_console_without_started_machines(sandbox: FlyctlSandbox, world: World) -> None:
    for machine in world.state["fly"]["apps"][APP]["machines"]:
        machine["state"] = "stopped"
    result = run(sandbox, f"ssh console -a {APP} -q -C 'printenv DATABASE_URL'")
    assert (result.returncode, result.stdout) == (1, "")
    assert result.stderr == fixture("ssh-console-no-started.stderr")


def test_ssh_console_unknown_machine(sandbox: FlyctlSandbox) -> None:
    result = run(sandbox, f"ssh console -a {APP} --machine abc -q -C 'printenv X'")
    assert result.stderr == 'Error: --machine="abc" not found/started\n'


# -- Managed Postgres ------------------------------------------------------------------------------
def test_mpg_status_matches_the_sample_byte_for_byte(sandbox: FlyctlSandbox) -> None:
    result = run(sandbox, f"mpg status {CLUSTER} --json")
    assert (result.returncode, result.stdout, result.stderr) == (0, fixture("mpg-status.json"), "")
    status = Fly(sandbox).mpg_status(CLUSTER)
    assert status.cluster.status == "ready" and PASSWORD not in repr(status)


def test_mpg_status_not_found(sandbox: FlyctlSandbox) -> None:
    result = run(sandbox, "mpg status nosuchcluster --json")
    assert (result.returncode, result.stdout) == (1, "")
    assert result.stderr == fixture("mpg-status-not-found.stderr")


def test_mpg_list_matches_the_sample(sandbox: FlyctlSandbox, world: World) -> None:
    assert run(sandbox, "mpg list --org renewa --json").stdout == fixture("mpg-list.json")
    world.state["fly"]["clusters"] = {}
    result = run(sandbox, "mpg list --org renewa --json")
    assert result.stdout == "No managed postgres clusters found in organization renewa\n"
    assert Fly(sandbox).mpg_list("renewa") == []


def test_mpg_backup_list_matches_the_samples(sandbox: FlyctlSandbox) -> None:
    result = run(sandbox, f"mpg backup list {CLUSTER} --json --all")
    assert result.stdout == fixture("mpg-backup-list.json")
    empty = run(sandbox, "mpg backups ls j5n2t8c4h7b1f6yq --json --all")
    assert (empty.returncode, empty.stdout) == (0, fixture("mpg-backup-list-empty.txt")
                                                .replace(CLUSTER, "j5n2t8c4h7b1f6yq"))
    recent = run(sandbox, f"mpg backup list {CLUSTER} --json")  # the world is in 2026
    assert "in the last 24 hours (use --all to see all backups)" in recent.stdout
    assert [b.id for b in Fly(sandbox).mpg_backups(CLUSTER)][1] == BACKUP


def test_mpg_restore_creates_an_initializing_cluster_that_becomes_ready(
        sandbox: FlyctlSandbox, world: World) -> None:
    fly = Fly(sandbox)
    restored = fly.mpg_restore(CLUSTER, BACKUP, "renewa-one-staging-db-restore")
    assert restored.new_id != CLUSTER and len(restored.new_id) == 16
    raw = run(sandbox, f"mpg status {restored.new_id} --json").stdout
    assert raw.replace(restored.new_id, "r9d4g7k2s5m8c1xt") == fixture(
        "mpg-status-initializing.json")
    proxy = sandbox.start(["flyctl", "mpg", "proxy", restored.new_id, "-p", "0"])
    assert proxy.poll() == 1
    assert proxy.stderr_text() == "Error: cluster is still initializing, wait a bit more\n"
    world.sleep(240)
    status = fly.mpg_status(restored.new_id)
    assert (status.cluster.status, status.credentials_status) == ("ready", "ready")
    assert status.cluster.direct_ip.startswith("fdaa:")
    assert world.state["fly"]["clusters"][CLUSTER]["status"] == "ready"  # source untouched


def test_mpg_restore_stdout_matches_the_sample(sandbox: FlyctlSandbox) -> None:
    result = run(sandbox, f"mpg restore {CLUSTER} --backup-id {BACKUP} "
                          "-n renewa-one-staging-db-restore")
    new_id = result.stdout.split("Cluster ID: ")[1].split("\n")[0]
    assert result.stdout.replace(new_id, "r9d4g7k2s5m8c1xt") == fixture("mpg-restore.txt")
    calls = [c for c in sandbox.world.calls() if c["call"].startswith("mpg restore")]
    assert calls[-1]["mutating"] is True


@pytest.mark.parametrize(("args", "stdout", "stderr"), [
    (f"{CLUSTER}", "", "Error: one of --backup-id or --pitr-time is required\n"),
    (f"{CLUSTER} --backup-id b --pitr-time 2026-01-01T00:00:00Z", "",
     "Error: --backup-id and --pitr-time are mutually exclusive\n"),
    ("nosuchcluster --backup-id b", "",
     'Error: managed postgres cluster "nosuchcluster" not found\n'),
    (f"{CLUSTER} --backup-id backup_0_x",
     f"Restoring cluster {CLUSTER} from backup backup_0_x...\n",
     "Error: failed to restore cluster: backup backup_0_x not found\n"),
])
def test_mpg_restore_errors(sandbox: FlyctlSandbox, world: World, args: str, stdout: str,
                            stderr: str) -> None:
    before = set(world.state["fly"]["clusters"])
    result = run(sandbox, f"mpg restore {args}")
    assert (result.returncode, result.stdout, result.stderr) == (1, stdout, stderr)
    assert set(world.state["fly"]["clusters"]) == before


def test_a_failed_restore_outcome_ends_in_error(sandbox: FlyctlSandbox, world: World) -> None:
    world.state["fly"]["restore_outcome"] = "error"
    restored = Fly(sandbox).mpg_restore(CLUSTER, BACKUP)
    world.sleep(300)
    status = Fly(sandbox).mpg_status(restored.new_id)
    assert (status.cluster.status, status.credentials_status) == ("error", "error")


def test_mpg_proxy_checks_the_cluster_before_binding(sandbox: FlyctlSandbox, world: World) -> None:
    missing = sandbox.start(["flyctl", "mpg", "proxy", "nosuchcluster", "-p", "0"])
    assert missing.stderr_text() == 'Error: managed postgres cluster "nosuchcluster" not found\n'
    world.state["fly"]["clusters"][CLUSTER]["direct_ip"] = ""
    with pytest.raises(CommandFailed, match="error getting cluster IP"):
        Fly(sandbox).mpg_proxy(CLUSTER)


# -- refusal and the call log -------------------------------------------------------------------
DESTRUCTIVE = [
    "mpg destroy w3k8p1x9m2q7v4zr --yes", "managed-postgres rm w3k8p1x9m2q7v4zr",
    "-t secret-token-value mpg delete w3k8p1x9m2q7v4zr", "mpg detach w3k8p1x9m2q7v4zr",
    "mpg attach w3k8p1x9m2q7v4zr -a renewa-one", "mpg users delete w3k8p1x9m2q7v4zr",
    "apps destroy renewa-one -y", "machine destroy m1 --force", "m rm m1",
    "secrets set A=b -a renewa-one", "secrets unset A -a renewa-one", "deploy -a renewa-one",
]


@pytest.mark.parametrize("command", DESTRUCTIVE)
def test_destructive_commands_are_refused_and_logged(sandbox: FlyctlSandbox, world: World,
                                                     command: str) -> None:
    before = json.dumps(world.state["fly"], sort_keys=True)
    result = run(sandbox, command)
    assert result.returncode == 1 and result.stdout == ""
    assert result.stderr.startswith("Error: sandbox refuses destructive command `flyctl ")
    entry = world.calls()[-1]
    assert (entry["seam"], entry["mutating"], entry["refused"]) == ("flyctl", True, True)
    assert "secret-token-value" not in entry["call"] + result.stderr
    assert json.dumps(world.state["fly"], sort_keys=True) == before
    with pytest.raises(CommandRefused):  # and the wrapper never gets this far
        Fly(sandbox).run(*shlex.split(command))


def test_every_call_is_logged_after_due_events(sandbox: FlyctlSandbox, world: World) -> None:
    world.schedule(0, "cluster_ready", cluster_id="gone")
    run(sandbox, f"status -a {APP} --json")
    run(sandbox, f"-t fo1_abcdefghijklmnopqrstuvwx ssh console -a {APP} -q -C 'printenv X'")
    calls = world.calls()
    assert [c["call"] for c in calls] == [f"status -a {APP} --json",
                                          f"-t **** ssh console -a {APP} -q -C 'printenv X'"]
    assert all(c["mutating"] is False for c in calls) and world.state["events"] == []


def test_commands_it_does_not_emulate_say_so(sandbox: FlyctlSandbox) -> None:
    result = run(sandbox, "logs -a renewa-one")
    assert result.returncode == 1 and "sandbox does not emulate `flyctl logs" in result.stderr
    assert run(sandbox, f"status -a {APP} --json --bogus").stderr == (
        "Error: unknown flag: --bogus\n")


@pytest.mark.parametrize(("command", "stderr"), [
    (f"status -a {APP}", "does not emulate `flyctl status without --json`"),
    (f"status -a {APP} --watch", "does not emulate `flyctl status without --json`"),
    (f"status -a {APP} --watch --json", "Error: --watch and --json are not supported together\n"),
    (f"machine list -a {APP}", "does not emulate `flyctl machine list without --json`"),
    (f"releases -a {APP}", "does not emulate `flyctl releases without --json`"),
    ("releases -a nope", 'Error: failed retrieving app releases nope: Could not find App "nope"\n'),
])
def test_app_commands_are_emulated_with_json_only(sandbox: FlyctlSandbox, command: str,
                                                  stderr: str) -> None:
    """The app is looked up first; then only the ``--json`` form the runbook runs is answered."""
    result = run(sandbox, command)
    assert result.returncode == 1 and result.stdout == ""
    assert stderr in result.stderr


def test_go_json_escapes_html_and_keeps_utf8() -> None:
    assert go_json({"b": "x&y<z>", "a": "ü"}) == (
        '{\n    "b": "x\\u0026y\\u003cz\\u003e",\n    "a": "ü"\n}\n')


@pytest.mark.parametrize("command", ["mpg status x --org renewa --json",
                                     "mpg proxy x -p 0 -o renewa"])
def test_org_is_an_unknown_flag_outside_mpg_list(sandbox: FlyctlSandbox, command: str) -> None:
    """As flyctl: -o/--org belongs to `mpg list`; elsewhere under `mpg` it is an unknown flag."""
    result = run(sandbox, command)
    assert result.returncode == 1 and "unknown" in result.stderr and "-o" in result.stderr
    assert run(sandbox, "mpg list --org renewa --json").returncode == 0
