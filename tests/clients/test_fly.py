"""The flyctl wrapper: the allow-list, and parsing flyctl's exact sample outputs."""

from __future__ import annotations

import json
import shlex
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from rollback_helpers.clients.commands import CommandResult, describe
from rollback_helpers.clients.fly import HUMAN_STEP, Fly
from rollback_helpers.clients.fly_policy import ALLOWED as ALLOWED_COMMANDS
from rollback_helpers.clients.fly_policy import (
    DESTRUCTIVE,
    canonical_path,
    check_allowed,
    cobra_command_words,
    parse_args,
    refusal_reason,
)
from rollback_helpers.errors import (
    BadInput,
    CommandFailed,
    CommandRefused,
    CommandTimeout,
    RestoreFailed,
)
from rollback_helpers.secrets import MASK, Secret, redact
from rollback_helpers.testing import ScriptedProcess, ScriptedRunner, UnexpectedCommand, fail, ok

FIXTURES = Path(__file__).parents[1] / "fixtures" / "flyctl"
APP = "renewa-one-staging"
CLUSTER = "w3k8p1x9m2q7v4zr"
BACKUP = "backup_1760445047_1a4a7fa7ec8accc4"
PASSWORD = "example-password-not-real"
DIGEST = "sha256:62ea7a6dc2b69860d0195151f6e51f4389f56a5310a1e470923370554c1d73e7"
SSH_ARGV = ("flyctl", "ssh", "console", "-a", APP, "--machine", "e82d921a46e718", "-q", "-C",
            "printenv DATABASE_URL")


def fixture(name: str) -> str:
    return (FIXTURES / name).read_text()


def fly_with(script: dict[tuple[str, ...], Any]) -> tuple[Fly, ScriptedRunner]:
    runner = ScriptedRunner(script)
    return Fly(runner), runner


# -- status and releases ---------------------------------------------------------------------
def test_status_parses_the_sample_into_machines_and_running_digests() -> None:
    fly, runner = fly_with({("flyctl", "status", "-a", APP, "--json"): ok(fixture("status.json"))})
    status = fly.status(APP)
    assert (status.app, status.hostname, status.version) == (APP, f"{APP}.fly.dev", 12)
    assert [m.id for m in status.machines] == ["e82d921a46e718", "5683d920b1e048"]
    first = status.machines[0]
    assert first.image_repository == "registry.fly.io/renewa-one-staging"
    assert first.image_tag == "deployment-01K7HAZR5QF3M8W2X6T9N4BVJC"
    assert first.release_version == "12"
    assert first.private_ip == "fdaa:12:a3f1:a7b:31c:8d40:9b17:2"
    assert first.config_image == f"registry.fly.io/{APP}:deployment-01K7HAZR5QF3M8W2X6T9N4BVJC"
    assert status.running_digests() == {DIGEST}
    assert runner.argvs() == [("flyctl", "status", "-a", APP, "--json")]


def test_status_running_digests_count_only_started_machines() -> None:
    doc = json.loads(fixture("status.json"))
    doc["Machines"][1]["state"] = "stopped"
    doc["Machines"][1]["image_ref"]["digest"] = "sha256:" + "0" * 64
    fly, _ = fly_with({("flyctl", "status", "-a", APP, "--json"): ok(json.dumps(doc))})
    status = fly.status(APP)
    assert [m.id for m in status.started()] == ["e82d921a46e718"]
    assert status.running_digests() == {DIGEST}


def test_status_ignores_unknown_keys_and_tolerates_missing_optional_ones() -> None:
    doc = {"Version": 3, "NewTopLevelKey": {"x": 1}, "Machines": [
        {"id": "m1", "state": "started", "brand_new_field": [1, 2],
         "image_ref": {"digest": DIGEST}}]}
    fly, _ = fly_with({("flyctl", "status", "-a", APP, "--json"): ok(json.dumps(doc))})
    status = fly.status(APP)
    assert status.app == APP and status.machines[0].image_digest == DIGEST
    assert status.machines[0].image_repository == "" and status.machines[0].release_version == ""


@pytest.mark.parametrize(("stdout", "why"), [
    ('{"Version": 12}', "'Machines'"),
    ('{"Machines": []}', "'Version'"),
    ('{"Version": 12, "Machines": [{"state": "started"}]}', "'id'"),
    ("not json at all", "not JSON"),
    ("[]", "JSON object"),
])
def test_status_fails_clearly_on_unreadable_output(stdout: str, why: str) -> None:
    fly, _ = fly_with({("flyctl", "status", "-a", APP, "--json"): ok(stdout)})
    with pytest.raises(CommandFailed) as err:
        fly.status(APP)
    assert f"flyctl status -a {APP} --json" in str(err.value) and why in str(err.value)
    assert "Next:" in str(err.value)


def test_status_failure_names_command_exit_code_stderr_and_next_step() -> None:
    fly, _ = fly_with({("flyctl", "status", "-a", "nope", "--json"):
                       fail('Error: failed to get app: Could not find App "nope"\n')})
    with pytest.raises(CommandFailed) as err:
        fly.status("nope")
    message = str(err.value)
    assert "`flyctl status -a nope --json` failed with exit code 1" in message
    assert 'Could not find App "nope"' in message and "flyctl apps list" in message
    assert err.value.returncode == 1 and "Could not find App" in err.value.stderr_tail


def test_releases_parse_newest_first() -> None:
    doc = list(reversed(json.loads(fixture("releases.json"))))
    fly, _ = fly_with({("flyctl", "releases", "-a", APP, "--json"): ok(json.dumps(doc))})
    releases = fly.releases(APP)
    assert [r.version for r in releases] == [12, 11]
    assert releases[0].image_ref.endswith(":deployment-01K7HAZR5QF3M8W2X6T9N4BVJC")
    assert releases[0].stable and releases[0].status == "complete"
    assert releases[0].user_email == "deploy@renewa.example"
    assert releases[1].created_at == "2025-10-09T16:04:21Z"


def test_releases_sample_parses_verbatim() -> None:
    fly, _ = fly_with({("flyctl", "releases", "-a", APP, "--json"): ok(fixture("releases.json"))})
    assert [r.version for r in fly.releases(APP)] == [12, 11]


# -- ssh console: secrets --------------------------------------------------------------------
def test_read_secret_env_reads_quiet_stdout_into_a_secret() -> None:
    fly, runner = fly_with({SSH_ARGV: ok(fixture("ssh-console-quiet.stdout"))})
    value = fly.read_secret_env(APP, "e82d921a46e718", "DATABASE_URL")
    assert isinstance(value, Secret)
    assert value.reveal() == fixture("ssh-console-quiet.stdout").strip()
    assert PASSWORD not in repr(value) and PASSWORD not in f"{value}"
    assert runner.argvs() == [SSH_ARGV]


def test_read_secret_env_skips_the_no_machine_specified_noise() -> None:
    fly, _ = fly_with({SSH_ARGV: ok(fixture("ssh-console-noisy.stdout"),
                                    fixture("ssh-console-noisy.stderr"))})
    value = fly.read_secret_env(APP, "e82d921a46e718", "DATABASE_URL")
    assert value.reveal().startswith("postgresql://fly-user:")
    assert "No machine specified" not in value.reveal()


@pytest.mark.parametrize("result", [
    fail("Error: ssh shell: Process exited with status 1\n"),
    ok(""),
    ok("No machine specified, using 5683d920b1e048 in region fra\n\n"),
])
def test_read_secret_env_unset_variable_is_a_clear_error(result: CommandResult) -> None:
    fly, _ = fly_with({SSH_ARGV: result})
    with pytest.raises(CommandFailed, match="DATABASE_URL is not set on renewa-one-staging "
                                            "machine e82d921a46e718"):
        fly.read_secret_env(APP, "e82d921a46e718", "DATABASE_URL")


def test_read_secret_env_no_started_vms_keeps_flyctl_error() -> None:
    fly, _ = fly_with({SSH_ARGV: fail(fixture("ssh-console-no-started.stderr"))})
    with pytest.raises(CommandFailed) as err:
        fly.read_secret_env(APP, "e82d921a46e718", "DATABASE_URL")
    assert "exit code 1: Error: app renewa-one-staging has no started VMs." in str(err.value)
    assert "fly status" in err.value.stderr_tail and "is started" in str(err.value)


@pytest.mark.parametrize(("machine", "var"), [("e82d921a46e718", "DATABASE URL"),
                                              ("e82d921a46e718", "$(rm -rf /)"),
                                              ("--help", "DATABASE_URL"), ("", "DATABASE_URL")])
def test_read_secret_env_rejects_bad_input_before_running_anything(machine: str, var: str) -> None:
    fly, runner = fly_with({})
    with pytest.raises(BadInput):
        fly.read_secret_env(APP, machine, var)
    assert runner.calls == []


# -- Managed Postgres ------------------------------------------------------------------------
def mpg_status_fly(stdout: str) -> Fly:
    return fly_with({("flyctl", "mpg", "status", CLUSTER, "--json"): ok(stdout)})[0]


def test_mpg_status_ready_sample_keeps_no_credentials() -> None:
    status = mpg_status_fly(fixture("mpg-status.json")).mpg_status(CLUSTER)
    cluster = status.cluster
    assert (cluster.id, cluster.name, cluster.status) == (CLUSTER, "renewa-one-staging-db", "ready")
    assert (cluster.region, cluster.plan) == ("fra", "basic")
    assert cluster.direct_ip == "fdaa:12:a3f1:0:1::7"
    assert cluster.attached_apps == (APP,) and status.credentials_status == "ready"
    assert PASSWORD not in repr(status) and "pgbouncer" not in repr(status)
    assert redact(f"leaked: {PASSWORD}") == f"leaked: {MASK}"  # remembered for masking


def test_mpg_status_initializing_sample() -> None:
    status = mpg_status_fly(fixture("mpg-status-initializing.json")).mpg_status(CLUSTER)
    assert status.cluster.status == "initializing" and status.credentials_status == "initializing"
    assert status.cluster.direct_ip == "" and status.cluster.attached_apps == ()


def test_mpg_status_reads_the_v2_shape_and_ignores_unknown_keys() -> None:
    doc = json.loads(fixture("mpg-status.json"))
    data = doc["data"]
    v2 = {"id": data["id"], "name": data["name"], "status": "ready", "engine": "postgres",
          "plan": "basic", "region": "fra", "organization": data["organization"],
          "mpgd_cluster_id": "mpgd-123", "disk": 10, "replicas": 1,
          "ip_assignments": data["ip_assignments"], "attached_apps": data["attached_apps"],
          "something_new": {"nested": True}}
    status = mpg_status_fly(json.dumps({"data": v2, "credentials": doc["credentials"],
                                        "meta": 1})).mpg_status(CLUSTER)
    assert status.cluster.id == CLUSTER and status.cluster.attached_apps == (APP,)


def test_mpg_status_missing_required_key_fails_without_echoing_the_password() -> None:
    doc = json.loads(fixture("mpg-status.json"))
    del doc["data"]["status"]
    with pytest.raises(CommandFailed) as err:
        mpg_status_fly(json.dumps(doc)).mpg_status(CLUSTER)
    assert "'status'" in str(err.value)
    assert PASSWORD not in str(err.value) and PASSWORD not in repr(err.value)
    assert err.value.__cause__ is None and err.value.__suppress_context__


def test_mpg_status_unparseable_output_never_echoes_it() -> None:
    broken = fixture("mpg-status.json")[:-20]
    with pytest.raises(CommandFailed) as err:
        mpg_status_fly(broken).mpg_status(CLUSTER)
    assert "not JSON" in str(err.value) and PASSWORD not in str(err.value)
    assert err.value.__suppress_context__


def test_mpg_status_not_found_names_the_cluster_and_next_step() -> None:
    fly, _ = fly_with({("flyctl", "mpg", "status", "nosuchcluster", "--json"):
                       fail(fixture("mpg-status-not-found.stderr"))})
    with pytest.raises(CommandFailed) as err:
        fly.mpg_status("nosuchcluster")
    assert 'managed postgres cluster "nosuchcluster" not found' in str(err.value)
    assert "mpg list" in str(err.value)


def test_mpg_list_sample_and_empty_org() -> None:
    argv = ("flyctl", "mpg", "list", "--org", "renewa", "--json")
    clusters = fly_with({argv: ok(fixture("mpg-list.json"))})[0].mpg_list("renewa")
    assert [(c.id, c.attached_apps) for c in clusters] == [
        (CLUSTER, (APP,)), ("j5n2t8c4h7b1f6yq", ("renewa-one",))]
    empty = ok("No managed postgres clusters found in organization renewa\n")
    assert fly_with({argv: empty})[0].mpg_list("renewa") == []


def test_mpg_backups_sample_and_empty_text() -> None:
    argv = ("flyctl", "mpg", "backup", "list", CLUSTER, "--json", "--all")
    backups = fly_with({argv: ok(fixture("mpg-backup-list.json"))})[0].mpg_backups(CLUSTER)
    assert [b.id for b in backups][1] == BACKUP
    assert (backups[2].type, backups[2].status, backups[2].stop) == ("incr", "completed",
                                                                      "2025-10-15T02:00:58Z")
    empty = ok(fixture("mpg-backup-list-empty.txt"))
    assert fly_with({argv: empty})[0].mpg_backups(CLUSTER) == []


RESTORE_ARGV = ("flyctl", "mpg", "restore", CLUSTER, "--backup-id", BACKUP, "-n",
                "renewa-one-staging-db-restore")


def test_mpg_restore_parses_the_new_cluster() -> None:
    fly, runner = fly_with({RESTORE_ARGV: ok(fixture("mpg-restore.txt"))})
    result = fly.mpg_restore(CLUSTER, BACKUP, "renewa-one-staging-db-restore")
    assert (result.source_id, result.backup_id) == (CLUSTER, BACKUP)
    assert (result.new_id, result.new_name) == ("r9d4g7k2s5m8c1xt", "renewa-one-staging-db-restore")
    assert runner.argvs() == [RESTORE_ARGV]


def test_mpg_restore_never_treats_the_source_as_the_target() -> None:
    stdout = fixture("mpg-restore.txt").replace("r9d4g7k2s5m8c1xt", CLUSTER)
    fly, _ = fly_with({RESTORE_ARGV: ok(stdout)})
    with pytest.raises(RestoreFailed, match="source cluster"):
        fly.mpg_restore(CLUSTER, BACKUP, "renewa-one-staging-db-restore")


def test_mpg_restore_without_a_cluster_id_line_warns_of_a_possible_restore() -> None:
    fly, _ = fly_with({RESTORE_ARGV: ok("Restore initiated successfully!\n")})
    with pytest.raises(CommandFailed, match="Cluster ID") as err:
        fly.mpg_restore(CLUSTER, BACKUP, "renewa-one-staging-db-restore")
    assert "mpg list" in str(err.value)


def test_mpg_restore_api_failure_is_a_command_failure() -> None:
    argv = RESTORE_ARGV[:6]
    fly, _ = fly_with({argv: fail("Error: failed to restore cluster: boom\n",
                                  stdout=f"Restoring cluster {CLUSTER} from backup {BACKUP}...\n")})
    with pytest.raises(CommandFailed, match="failed to restore cluster: boom"):
        fly.mpg_restore(CLUSTER, BACKUP)


PROXY_ARGV = ("flyctl", "mpg", "proxy", CLUSTER, "-p", "0")


def test_mpg_proxy_waits_for_the_proxying_line_and_stops_on_exit() -> None:
    runner = ScriptedRunner()
    process = runner.add_process(PROXY_ARGV, ScriptedProcess(lines=[fixture("mpg-proxy.txt")
                                                                    .rstrip("\n")]))
    with Fly(runner).mpg_proxy(CLUSTER) as tunnel:
        assert (tunnel.local_port, tunnel.remote) == (41869, "[fdaa:12:a3f1:0:1::7]:5432")
        assert not process.stopped
    assert process.stopped


def test_mpg_proxy_that_exits_first_reports_its_stderr() -> None:
    runner = ScriptedRunner()
    process = runner.add_process(PROXY_ARGV, ScriptedProcess(
        returncode=1, stderr="Error: cluster is still initializing, wait a bit more"))
    with pytest.raises(CommandFailed, match="still initializing") as err:
        Fly(runner).mpg_proxy(CLUSTER)
    assert err.value.returncode == 1 and "mpg status" in str(err.value)
    assert process.stopped


def test_mpg_proxy_that_never_listens_times_out_and_is_stopped() -> None:
    runner = ScriptedRunner()
    process = runner.add_process(PROXY_ARGV, ScriptedProcess(lines=["agent starting"]))
    with pytest.raises(CommandTimeout, match="Proxying localhost"):
        Fly(runner).mpg_proxy(CLUSTER, ready_timeout=0.01)
    assert process.stopped


# -- the allow-list --------------------------------------------------------------------------
REFUSED = [
    "mpg destroy w3k8p1x9m2q7v4zr", "mpg destroy w3k8p1x9m2q7v4zr -y", "mpg delete x",
    "mpg remove x", "mpg rm x --yes", "managed-postgres destroy x", "managed-postgres rm x",
    "-t fo1_abcdefghijklmnopqrstuvwx mpg destroy x", "--access-token=abc mpg destroy x",
    "--debug mpg rm x", "-t x managed-postgres delete x", "mpg -y destroy x",
    "mpg detach x -a renewa-one", "mpg attach x -a renewa-one", "managed-postgres detach x",
    "mpg users delete x --username u", "managed-postgres users delete x", "mpg users create x",
    "apps destroy renewa-one", "apps rm renewa-one -y", "apps delete renewa-one",
    "app destroy renewa-one", "destroy renewa-one", "machine destroy m1", "machines destroy m1",
    "m destroy m1 --force", "machine rm m1", "machine remove m1", "m rm m1", "machine stop m1",
    "machine kill m1", "machine update m1 --image x", "secrets set A=b -a renewa-one",
    "secrets unset A -a renewa-one", "secrets import -a renewa-one", "secret set A=b",
    "-a renewa-one secrets set A=b", "deploy -a renewa-one", "deploy --image x@sha256:1",
    "-t x deploy", "releases rollback", "releases rollback -a renewa-one", "releases -a x rollback",
    "releases rollback 11", "scale count 0 -a x", "postgres destroy x", "pg destroy x",
    "apps list", "logs -a x", "ssh console -a x", "ssh console -a x -C 'sh -c env'",
    "ssh console -a x -C 'printenv A B'", "ssh console -a x -C ls", "ssh console -a x --pty",
    "ssh sftp get /etc/passwd -a x", "status -a x --watch", "status -a x extra",
    "mpg status", "mpg status a b", "mpg connect x", "mpg backup create x", "proxy 5432 -a x",
    "mpg proxy x --unknown-flag", "", "--help", "mpg", "machine", "machine list -a x --all",
    # parsed the way flyctl does: `--`, flags before the command, empty values, the app, the bind
    "mpg status -- destroy", "mpg status x -- destroy", "-- mpg destroy x", "status -a x -- -y",
    "mpg -j status destroy", "mpg -j status x", "mpg --json status x", "machine -a x list --json",
    "'' mpg destroy x", "mpg status ''", "status -a", "status -a=", "status --app ''",
    "status --app=", "status -a '' --json", "status -a ' ' --json", "status -a --json",
    "status --json", "releases --json", "machine list --json",
    "ssh console --machine m1 -q -C 'printenv DATABASE_URL'", "mpg list --org '' --json",
    "mpg proxy x -b 0.0.0.0", "mpg proxy x --bind-addr ::", "mpg proxy x -b 10.0.0.5",
    "mpg proxy x --bind-addr=192.168.1.2", "mpg proxy x -b ''", "mpg proxy x -b=",
    "mpg proxy x -b 127.0.0.1 -b 0.0.0.0", "mpg proxy x -b 127.0.0.2", "mpg proxy x -b [::1]",
    "mpg restore x --backup-id ''",
]
ALLOWED = [
    "version", "status -a renewa-one --json", "--verbose status -a x --json",
    "-t fo1_abcdefghijklmnopqrstuvwx status -a x -j", "releases -a x --json", "releases --app=x -j",
    "machine list -a x --json", "machines ls -a x --json", "m list -a x --json",
    "ssh console -a x --machine m1 -q -C 'printenv DATABASE_URL'",
    "ssh console -a x --command='printenv DATABASE_URL'", "mpg status x --json",
    "managed-postgres status x --json", "mpg list --org renewa --json",
    "mpg ls -o renewa --json", "mpg backup list x --json --all", "mpg backups ls x --json",
    "mpg restore x --backup-id b -n name", "mpg restore x --pitr-time 2026-06-10T09:00:00Z",
    "mpg proxy x -p 0", "managed-postgres proxy x --local-port 16380 -b 127.0.0.1",
    "mpg proxy x -b ::1 -p 0", "mpg proxy x --bind-addr=localhost", "status --json -a x",
    "-t tok --verbose status --json --app x", "mpg status --json x", "mpg backup list --all x -j",
]


def split(command: str) -> list[str]:
    return shlex.split(command)


@pytest.mark.parametrize("command", REFUSED)
def test_refused_before_any_process_starts(command: str) -> None:
    fly, runner = fly_with({})
    with pytest.raises(CommandRefused) as err:
        fly.run(*split(command))
    assert HUMAN_STEP in str(err.value) and runner.calls == []
    assert "fo1_abcdefghijklmnopqrstuvwx" not in str(err.value)


@pytest.mark.parametrize("command", ALLOWED)
def test_allowed_commands_pass_the_check(command: str) -> None:
    Fly(ScriptedRunner()).check_allowed(["flyctl", *split(command)])
    check_allowed(split(command))  # the binary is optional


def test_refusal_names_what_is_destructive_and_the_next_step() -> None:
    with pytest.raises(CommandRefused) as err:
        Fly(ScriptedRunner()).run("mpg", "rm", "w3k8p1x9m2q7v4zr", "-y")
    message = str(err.value)
    assert "`flyctl mpg rm w3k8p1x9m2q7v4zr -y`" in message and "mpg destroy" in message
    assert "Next:" in message and "checklist" in message


@pytest.mark.parametrize("command, why", [
    ("mpg status -- destroy", "`--` ends flyctl's flags"),
    ("mpg -j status destroy", "`mpg destroy` is destructive"),  # what flyctl itself would run
    ("mpg -j status x", "flag -j stands before the end of the command `mpg status`"),
    ("status -a '' --json", "flag -a of `status` has an empty value"),
    ("status --app= --json", "flag --app of `status` has an empty value"),
    ("status --json", "`status` must name its app with -a"),
    ("mpg proxy x -b 0.0.0.0", "may bind only a loopback address"),
    ("mpg proxy x --bind-addr :: -p 0", "not ['::']"),
])
def test_refusal_names_the_command_and_the_reason(command: str, why: str) -> None:
    """Each refusal shows the command as given and says why, before any process starts."""
    fly, runner = fly_with({})
    with pytest.raises(CommandRefused) as err:
        fly.run(*split(command))
    assert f"`{describe(['flyctl', *split(command)])}`" in str(err.value)
    assert why in str(err.value) and runner.calls == []


def test_app_must_be_the_runbook_app_when_the_policy_knows_it() -> None:
    """With app= given, every -a/--app must name that app; without it any non-empty app passes."""
    check_allowed(["flyctl", "status", "-a", "renewa-one", "--json"], app="renewa-one")
    check_allowed(["flyctl", "status", "-a", "other-app", "--json"])
    for command in ("status -a other-app --json", "status --app=other-app --json",
                    "status -a renewa-one --app other-app --json",
                    "ssh console -a other-app --machine m1 -q -C 'printenv DATABASE_URL'"):
        with pytest.raises(CommandRefused, match="not the runbook's app 'renewa-one'"):
            check_allowed(split(command), app="renewa-one")


def test_commands_without_an_app_need_no_app_flag() -> None:
    """Cluster commands and version are not app-scoped, so the expected app does not apply."""
    for command in ("version", "mpg status x --json", "mpg proxy x -p 0"):
        check_allowed(split(command), app="renewa-one")


def test_cobra_command_search_skips_the_word_after_an_unknown_flag() -> None:
    """The command search reads `-j status` as a flag and its value, as cobra's stripFlags does."""
    assert cobra_command_words(split("mpg -j status destroy x")) == ("mpg", "destroy", "x")
    assert cobra_command_words(split("-t tok --verbose mpg status x --json")) == (
        "mpg", "status", "x")
    assert cobra_command_words(split("mpg status -- destroy")) == ("mpg", "status")
    assert cobra_command_words(split("mpg --org=o status x")) == ("mpg", "status", "x")


VOCABULARY = ["mpg", "managed-postgres", "status", "destroy", "rm", "proxy", "restore", "list",
              "backup", "ssh", "console", "apps", "machine", "m", "releases", "rollback",
              "secrets", "set", "deploy", "version", "x", "renewa-one", "-a", "--app", "-a=x",
              "--app=", "-j", "--json", "-t", "--access-token", "--verbose", "-y", "--yes", "-b",
              "127.0.0.1", "0.0.0.0", "-p", "0", "-o", "--org", "--", "", "-", "-C",
              "printenv DATABASE_URL", "--backup-id", "--machine", "-q", "--all", "--image"]


@st.composite
def argvs(draw: st.DrawFn) -> list[str]:
    """An allowed command with words inserted anywhere, or words drawn at random."""
    if draw(st.integers(0, 3)) == 0:
        return draw(st.lists(st.sampled_from(VOCABULARY), min_size=1, max_size=8))
    args = split(draw(st.sampled_from(ALLOWED)))
    for _ in range(draw(st.integers(0, 2))):
        args.insert(draw(st.integers(0, len(args))), draw(st.sampled_from(VOCABULARY)))
    return args


@settings(max_examples=400)
@given(argvs())
def test_what_the_policy_accepts_flyctl_reads_the_same_way(args: list[str]) -> None:
    """For any argv it accepts, cobra's command search finds the same allowed, harmless command."""
    if refusal_reason(args) is not None:
        return
    ours = canonical_path(parse_args(args).positionals)
    cobra = canonical_path(cobra_command_words(args))
    spec = next(c for c in ALLOWED_COMMANDS if ours[:len(c.path)] == c.path)
    assert cobra[:len(spec.path)] == spec.path
    assert "--" not in args and "" not in args[:len(spec.path)]
    assert not any(cobra[:len(known)] == known for known in DESTRUCTIVE)


def test_run_passes_timeout_and_env_and_reports_failures() -> None:
    runner = ScriptedRunner({("flyctl", "version"): fail("noise\nError: boom\nsecond line\n", 126)})
    fly = Fly(runner, timeout=7.0, env={"FLY_NO_UPDATE_CHECK": "1"})
    with pytest.raises(CommandFailed) as err:
        fly.run("version")
    assert "`flyctl version` failed with exit code 126: Error: boom" in str(err.value)
    assert err.value.stderr_tail == "noise\nError: boom\nsecond line"
    assert runner.calls[0].timeout == 7.0 and runner.calls[0].env == {"FLY_NO_UPDATE_CHECK": "1"}
    runner.add(("flyctl", "status", "-a", "x", "--json"), ok("{}"))
    assert fly.run("status", "-a", "x", "--json", timeout=3).ok
    assert runner.calls[-1].timeout == 3


def test_custom_binary_path_is_used_and_understood() -> None:
    runner = ScriptedRunner({("/opt/fly/bin/flyctl", "version"): ok("flyctl v0.4.87\n")})
    fly = Fly(runner, flyctl="/opt/fly/bin/flyctl")
    assert fly.run("version").stdout.startswith("flyctl")
    with pytest.raises(CommandRefused):
        fly.check_allowed(["/opt/fly/bin/flyctl", "deploy"])


# -- ScriptedRunner ---------------------------------------------------------------------------
def test_scripted_runner_refuses_unscripted_commands_and_records_them() -> None:
    runner = ScriptedRunner({("flyctl", "version"): ok("v\n")})
    with pytest.raises(UnexpectedCommand) as err:
        runner.run(["flyctl", "status"], timeout=1)
    assert isinstance(err.value, AssertionError) and "('flyctl', 'version')" in str(err.value)
    assert runner.argvs() == [("flyctl", "status")]
    assert runner.unused() == [("flyctl", "version")]


def test_scripted_runner_answers_lists_in_order_predicates_and_exceptions() -> None:
    runner = ScriptedRunner()
    runner.add(("a",), [ok("first"), ok("second")])
    runner.add(lambda argv: argv[:1] == ("b",), ok("any b"))
    runner.add(("c",), CommandTimeout("too slow"))
    assert [runner.run(["a"], timeout=1).stdout for _ in range(2)] == ["first", "second"]
    with pytest.raises(UnexpectedCommand):
        runner.run(["a"], timeout=1)
    assert runner.run(["b", "x"], timeout=1) == CommandResult(("b", "x"), 0, "any b", "")
    with pytest.raises(CommandTimeout):
        runner.run(["c"], timeout=1)
    assert runner.unused() == []


@pytest.mark.parametrize("command", ["mpg status x --org renewa --json", "mpg status x -o renewa",
                                     "mpg restore x --backup-id b --org renewa",
                                     "mpg proxy x -p 0 -o renewa"])
def test_org_is_a_flag_of_mpg_list_only(command: str) -> None:
    """flyctl's `mpg status|restore|proxy` have no -o/--org (the `mpg` parent's flag is not
    inherited; `mpg list` has its own): refused before any process, as flyctl would refuse it."""
    fly, runner = fly_with({})
    with pytest.raises(CommandRefused, match="--org|-o"):
        fly.run(*split(command))
    assert runner.calls == []
