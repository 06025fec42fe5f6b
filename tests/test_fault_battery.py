"""The fault battery: bad inputs and failing services, each checked the same five ways.

For every case: the exit code; a message that names the problem and gives the next
step; no traceback; no secret (the sandbox's token, a real-looking token in the
environment, a database password); and, where a run had started, the archive.
Malformed parameters must also leave the sandbox world untouched: not one call,
so certainly no mutating one.

Most cases stop at validation, before a kernel starts, so the battery is fast; the
few that need the notebook itself (plain papermill with ``-p dry_run 0``) are grouped
at the end.
"""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from rollback_helpers.cli import main as cli
from rollback_helpers.clients.fly import Fly
from rollback_helpers.domain.config import OTHER_VARIABLES
from rollback_helpers.errors import RollbackError, error_class_named
from rollback_helpers.run.archive import notebook_of
from rollback_helpers.run.backends import create_drill_world, discard_drill_world
from rollback_helpers.runbook import path_a, path_b, triage, verify_flip
from rollback_helpers.sandbox.core.world import World
from rollback_helpers.sandbox.fly.flyctl import FlyctlSandbox
from rollback_helpers.ui.interactive import RecordingScreen

REAL_LOOKING_TOKEN = "ghp_" + "Zq7" * 12  # what an engineer's shell may hold; never shown
FRAMES = ("Traceback (most recent call last)", 'File "', "line ")


@dataclass
class Outcome:
    code: int
    text: str  # everything the operator saw: stdout, stderr, or the error's message
    world: Path | None = None

    def check(self, code: int, *names: str, secrets: tuple[str, ...] = ()) -> None:
        assert self.code == code, self.text
        for name in names:
            assert name in self.text, (name, self.text)
        assert "Next:" in self.text or "--help" in self.text, self.text  # the next step
        assert "Traceback" not in self.text and 'File "' not in self.text, self.text
        for secret in (REAL_LOOKING_TOKEN, *secrets):
            assert secret not in self.text


@pytest.fixture(autouse=True)
def _clean_environment(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """An empty working directory, no stray ROLLBACK_* variables, a real-looking token."""
    work = tmp_path / "cwd"
    work.mkdir()
    monkeypatch.chdir(work)
    for var in list(os.environ):
        if var.startswith("ROLLBACK_") and var not in OTHER_VARIABLES:
            monkeypatch.delenv(var)
    monkeypatch.setenv("GITHUB_TOKEN", REAL_LOOKING_TOKEN)


@pytest.fixture
def world_a(tmp_path: Path) -> Iterator[Path]:
    """A Path A sandbox world (plain JSON: built in milliseconds)."""
    directory = tmp_path / "world-a"
    create_drill_world("default", directory, speed=0)
    yield directory


def sandbox_token(world: Path) -> str:
    return str(World.load(world).state["github"]["token"])


def run_cli(capsys: pytest.CaptureFixture[str], *argv: str) -> Outcome:
    try:
        code = cli.main(list(argv))
    except SystemExit as exc:  # argparse: a bad flag
        code = int(exc.code or 0)
    captured = capsys.readouterr()
    return Outcome(code, captured.out + captured.err)


def start_path(path: str, world: Path, **params: Any) -> Outcome:
    """Call a path's ``start`` as its notebook cell does; the outcome is what the cell shows."""
    module = {"path-a": path_a, "path-b": path_b, "verify-flip": verify_flip}[path]
    given = {"env": "staging", "backend": "sandbox", "sandbox_dir": str(world), **params}
    try:
        module.start(given)
    except RollbackError as exc:
        return Outcome(exc.exit_code, f"{type(exc).__name__}: {exc}", world)
    return Outcome(0, "started", world)


def calls(world: Path) -> list[dict[str, Any]]:
    return World.load(world).calls()


# -- 1. malformed parameters and switches: exit 2, and the world was never contacted ---------------
MALFORMED = [
    ("path-a", {"dry_run": 0}, "'dry_run'"),
    ("path-a", {"dry_run": 1}, "'dry_run'"),
    ("path-a", {"dry_run": "false"}, "'dry_run'"),
    ("path-a", {"dry_run": "notabool"}, "'dry_run'"),
    ("path-a", {"dry_run": None}, "'dry_run'"),
    ("path-a", {"dry_run": "True"}, "'dry_run'"),
    ("path-a", {"interactive": 1}, "'interactive'"),
    ("path-a", {"interactive": "no"}, "'interactive'"),
    ("path-a", {"allow_unrecorded_target": "yes"}, "'allow_unrecorded_target'"),
    ("path-a", {"backend": "prod"}, "'backend'"),
    ("path-a", {"env": 5}, "'env'"),
    ("path-a", {"env": "prod"}, "'prod'"),
    ("path-a", {"reason": 42}, "'reason'"),
    ("path-a", {"target_digest": "latest"}, "target_digest"),
    ("path-a", {"config": {"poll_interval": 0}}, "'poll_interval'"),
    ("path-a", {"config": {"workflow_timeout": -60}}, "'workflow_timeout'"),
    ("path-a", {"config": {"health_grace": math.nan}}, "'health_grace'"),
    ("path-a", {"config": {"dryrun": True}}, "'dryrun'"),
    ("path-a", {"config": "poll_interval=0"}, "'config'"),
    ("path-b", {"dry_run": 0}, "'dry_run'"),
    ("path-b", {"record_number": 0}, "'record_number'"),
    ("path-b", {"record_number": "12"}, "'record_number'"),
    ("path-b", {"record_number": True}, "'record_number'"),
    ("path-b", {"ready_timeout": -1}, "'ready_timeout'"),
    ("path-b", {"ready_timeout": 0}, "'ready_timeout'"),
    ("path-b", {"ready_timeout": math.nan}, "'ready_timeout'"),
    ("path-b", {"ready_timeout": math.inf}, "'ready_timeout'"),
    ("verify-flip", {"interactive": "False"}, "'interactive'"),
    ("verify-flip", {"new_cluster": 7}, "'new_cluster'"),
    ("path-b", {"target_digest": "sha256:" + "a" * 64}, "'target_digest' is not one path-b takes"),
    ("path-a", {"backup_id": "backup_1"}, "'backup_id' is not one path-a takes"),
    ("verify-flip", {"dry_run": False}, "'dry_run' is not one verify-flip takes"),
    ("verify-flip", {"break_lock": "dead laptop"}, "'break_lock' is not one verify-flip takes"),
    ("path-a", {"dryrun": False}, "'dryrun' is not one path-a takes"),
]


@pytest.mark.parametrize("path, params, named", MALFORMED,
                         ids=[f"{p}-{next(iter(q))}={q[next(iter(q))]!r}" for p, q, _ in MALFORMED])
def test_malformed_parameter_is_bad_input_and_contacts_nothing(
        world_a: Path, path: str, params: dict[str, Any], named: str) -> None:
    """A malformed parameter is exit 2 naming it, and not one call reaches the world."""
    outcome = start_path(path, world_a, **params)
    outcome.check(2, named, secrets=(sandbox_token(world_a),))
    assert calls(world_a) == []


def test_production_without_confirmation_is_bad_input_and_contacts_nothing(world_a: Path) -> None:
    """A live production run without confirm= stops before the world is contacted."""
    outcome = start_path("path-a", world_a, env="production", dry_run=False)
    outcome.check(2, "production", "confirm")
    assert calls(world_a) == []


@pytest.mark.parametrize("answers", [(0, None, None, None), (True, "no", None, None),
                                     (None, None, None, "False")])
def test_triage_answer_that_is_not_a_boolean_is_bad_input(answers: tuple[Any, ...]) -> None:
    """start_here's answers are True, False or None; anything else is named, not guessed."""
    with pytest.raises(RollbackError) as caught:
        triage.Answers(*answers)
    bad = next(name for name, value in zip(triage.QUESTIONS, answers, strict=True)
               if value is not None and not isinstance(value, bool))
    Outcome(caught.value.exit_code, str(caught.value)).check(2, f"'{bad}'", "True or False")


# -- 2. bad numbers and flags on the command line: argparse says which flag ------------------------
BAD_FLAGS = [
    ("drill", "path-a", "--speed", "nan"),
    ("drill", "path-a", "--speed", "-1"),
    ("drill", "path-a", "--speed", "inf"),
    ("drill", "path-a", "--speed", "fast"),
    ("drill", "path-b", "--ready-timeout", "-5"),
    ("drill", "path-b", "--ready-timeout", "0"),
    ("run", "path-b", "--ready-timeout", "nan"),
    ("run", "path-b", "--record-number", "0"),
    ("run", "path-b", "--record-number", "twelve"),
]


@pytest.mark.parametrize("command, path, flag, value", BAD_FLAGS)
def test_bad_number_flag_is_a_usage_error_naming_the_flag(
        capsys: pytest.CaptureFixture[str], command: str, path: str, flag: str, value: str) -> None:
    """A bad number never reaches a world or a kernel: exit 2 naming the flag and the value."""
    outcome = run_cli(capsys, command, path, "--env", "staging", flag, value)
    outcome.check(2, flag, repr(value))


def test_drill_on_production_asks_for_confirm_and_takes_it(
        capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    """`drill --env production` needs --confirm like `run` does; the flag exists on drill."""
    outcome = run_cli(capsys, "drill", "path-a", "--env", "production")
    outcome.check(2, "--confirm production")
    help_text = run_cli(capsys, "drill", "--help").text
    assert "--confirm" in help_text


# -- 3. bad configuration: variables, runbook.toml -------------------------------------------------
BAD_VARIABLES = [
    ({"ROLLBACK_POLL_INTERVAL": "0"}, "ROLLBACK_POLL_INTERVAL"),
    ({"ROLLBACK_POLL_INTERVAL": "nan"}, "ROLLBACK_POLL_INTERVAL"),
    ({"ROLLBACK_WORKFLOW_TIMEOUT": "-1"}, "ROLLBACK_WORKFLOW_TIMEOUT"),
    ({"ROLLBACK_HEALTH_GRACE": "nan"}, "ROLLBACK_HEALTH_GRACE"),
    ({"ROLLBACK_READY_TIMEOUT": "-inf"}, "ROLLBACK_READY_TIMEOUT"),
    ({"ROLLBACK_COMMAND_TIMEOUT": "soon"}, "ROLLBACK_COMMAND_TIMEOUT"),
    ({"ROLLBACK_POLL_INTERVALL": "3"}, "ROLLBACK_POLL_INTERVALL"),
    ({"ROLLBACK_QA_APP": "shop-qa"}, "ROLLBACK_QA_APP"),
    ({"ROLLBACK_DRY_RUN": "false"}, "ROLLBACK_DRY_RUN"),
    ({"ROLLBACK_HEALTH_INTERVAL": "0"}, "ROLLBACK_HEALTH_INTERVAL"),
    ({"ROLLBACK_HEALTH_CONSECUTIVE": "0"}, "ROLLBACK_HEALTH_CONSECUTIVE"),
    ({"ROLLBACK_HEALTH_GRACE": "0"}, "cannot hold 3 consecutive 200s"),
]


@pytest.mark.parametrize("environ, named", BAD_VARIABLES, ids=[n for _, n in BAD_VARIABLES])
def test_bad_rollback_variable_is_named_before_anything_starts(
        capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch,
        environ: dict[str, str], named: str) -> None:
    """A bad or unknown ROLLBACK_* variable: exit 2 naming the variable; no run, no archive."""
    for var, value in environ.items():
        monkeypatch.setenv(var, value)
    outcome = run_cli(capsys, "run", "path-a", "--env", "staging", "--incidents-dir", "inc")
    outcome.check(2, named)
    assert not Path("inc").exists() or not list(Path("inc").glob("*.ipynb"))


BAD_TOML = [
    ('pol_interval = 3\n', "'pol_interval'"),
    ('workflow = "unterminated\n', "line 1"),
    ('poll_interval = "3"\n', "'poll_interval'"),
    ('poll_interval = 0\n', "'poll_interval'"),
    ('verify_tables = "customers"\n', "'verify_tables'"),
    ('[environments.staging]\nrecord_labels = "deployment-record"\n',
     "'environments.staging.record_labels'"),
    ('[environments.qa]\ninfisical_env = "qa"\n', "'environments.qa.app'"),
    ('github_repo = "acme"\n', "'github_repo'"),
]


@pytest.mark.parametrize("text, named", BAD_TOML, ids=[n for _, n in BAD_TOML])
def test_bad_config_file_names_file_and_key(capsys: pytest.CaptureFixture[str],
                                            monkeypatch: pytest.MonkeyPatch, tmp_path: Path,
                                            text: str, named: str) -> None:
    """A bad runbook.toml: exit 2 naming the file and the key (or line); the run never starts."""
    config = tmp_path / "runbook.toml"
    config.write_text(text)
    monkeypatch.setenv("ROLLBACK_RUNBOOK_CONFIG", str(config))
    outcome = run_cli(capsys, "drill", "path-a", "--env", "staging")
    outcome.check(2, named, str(config))


def test_missing_config_file_named_by_the_variable(capsys: pytest.CaptureFixture[str],
                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    """ROLLBACK_RUNBOOK_CONFIG naming nothing is refused, naming the path and the variable."""
    monkeypatch.setenv("ROLLBACK_RUNBOOK_CONFIG", "/nonexistent/runbook.toml")
    run_cli(capsys, "run", "path-a", "--env", "staging").check(
        2, "/nonexistent/runbook.toml", "ROLLBACK_RUNBOOK_CONFIG")


# -- 4. bad scenario files -------------------------------------------------------------------------
BAD_SCENARIOS = [
    ('[fly\nrestore_seconds = 3\n', "line 1"),
    ('[environments.staging]\napp = "a"\nmachines = "2"\n', "'environments.staging.machines'"),
    ('[environments.staging]\napp = "a"\nmachins = 2\n', "'environments.staging.machins'"),
    ('[fly]\nrestore_seconds = -1\n', "'fly.restore_seconds'"),
    ('[workflow]\nduration = nan\n', "'workflow.duration'"),
    ('[environments.staging]\napp = "a"\ndeploys = "v1"\n', "'environments.staging.deploys'"),
    ('[environments.staging]\napp = "a"\ncluster_id = "short"\n',
     "'environments.staging.cluster_id'"),
    ('start = "yesterday"\n', "'start'"),
]


@pytest.mark.parametrize("text, named", BAD_SCENARIOS, ids=[n for _, n in BAD_SCENARIOS])
def test_bad_scenario_file_names_file_and_key(capsys: pytest.CaptureFixture[str], tmp_path: Path,
                                              text: str, named: str) -> None:
    """A bad scenario: exit 2 naming the file and the key or line; no world, no archive."""
    scenario = tmp_path / "broken.toml"
    scenario.write_text(text)
    incidents = tmp_path / "incidents"
    outcome = run_cli(capsys, "drill", "path-a", "--env", "staging", "--scenario", str(scenario),
                      "--incidents-dir", str(incidents))
    outcome.check(2, named, str(scenario))
    assert list(incidents.glob("*.ipynb")) == []


def test_unknown_scenario_name_lists_the_shipped_ones(capsys: pytest.CaptureFixture[str]) -> None:
    run_cli(capsys, "drill", "path-a", "--env", "staging", "--scenario", "defualt").check(
        2, "'defualt'", "b-default")


# -- 5. unwritable stores --------------------------------------------------------------------------
@pytest.mark.parametrize("how", ["flag", "variable", "config", "file-itself"])
def test_unusable_incidents_directory_is_bad_input_before_the_run(
        capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, tmp_path: Path,
        how: str) -> None:
    """An incidents directory that cannot be created is exit 2 naming it and its source."""
    blocker = tmp_path / "a-file"
    blocker.write_text("not a directory")
    bad = blocker if how == "file-itself" else blocker / "incidents"
    argv = ["drill", "path-a", "--env", "staging"]
    source = "--incidents-dir"
    if how in ("flag", "file-itself"):
        argv += ["--incidents-dir", str(bad)]
    elif how == "variable":
        monkeypatch.setenv("ROLLBACK_INCIDENTS_DIR", str(bad))
        source = "ROLLBACK_INCIDENTS_DIR"
    else:
        (tmp_path / "runbook.toml").write_text(f'incidents_dir = "{bad}"\n')
        monkeypatch.setenv("ROLLBACK_RUNBOOK_CONFIG", str(tmp_path / "runbook.toml"))
        source = "incidents_dir"
    run_cli(capsys, *argv).check(2, str(bad.parent if how != "file-itself" else bad), source)


# -- 6. secrets typed into free text: refused before anything, never echoed ------------------------
TYPED_SECRETS = [
    ("--reason", "db broken: postgresql://app-user:Hunter2!x@pgbouncer.w3k8p1x9m2q7v4zr.flympg.net/fly-db",
     "Hunter2!x", "reason"),
    ("--reason", "PGPASSWORD=correct-horse-battery sh ./fix.sh", "correct-horse-battery", "reason"),
    ("--incident", "ghp_" + "Ab1" * 12, "ghp_" + "Ab1" * 12, "incident"),
    ("--incident", "github_pat_" + "Q9z" * 10, "github_pat_" + "Q9z" * 10, "incident"),
    ("--operator", "FlyV1 fm2_" + "lJPE" * 12, "fm2_" + "lJPE" * 12, "operator"),
    ("--new-cluster-name", "password: sw0rdfish-77", "sw0rdfish-77", "--new-cluster-name"),
]


@pytest.mark.parametrize("flag, value, secret, field", TYPED_SECRETS,
                         ids=[f"{f}-{n}" for n, (f, _, _, _) in enumerate(TYPED_SECRETS)])
@pytest.mark.parametrize("command", ["run", "drill"])
def test_secret_typed_into_free_text_is_refused_without_echo(
        capsys: pytest.CaptureFixture[str], tmp_path: Path, command: str, flag: str, value: str,
        secret: str, field: str) -> None:
    """A credential in operator text: exit 2 naming the field, the value never shown, no run."""
    incidents = tmp_path / "incidents"
    path = "path-b" if flag == "--new-cluster-name" else "path-a"
    outcome = run_cli(capsys, command, path, "--env", "staging", flag, value,
                      "--incidents-dir", str(incidents))
    outcome.check(2, field, "credential", "rotate", secrets=(secret,))
    assert list(incidents.glob("*.ipynb")) == []


def test_secret_in_a_notebook_parameter_is_refused_before_contact(world_a: Path) -> None:
    """The same refusal when the notebook is started with the secret as a parameter."""
    outcome = start_path("path-a", world_a, reason="token ghp_" + "Xy9" * 12)
    outcome.check(2, "reason", "credential", secrets=("ghp_" + "Xy9" * 12,))
    assert calls(world_a) == []


# -- 7. the wrapper refuses what a human must do ---------------------------------------------------
REFUSED = [
    ("mpg", "destroy", "w3k8p1x9m2q7v4zr"),
    ("mpg", "detach", "w3k8p1x9m2q7v4zr", "-a", "renewa-one-staging"),
    ("mpg", "attach", "w3k8p1x9m2q7v4zr", "-a", "renewa-one-staging"),
    ("secrets", "set", "DATABASE_URL=x", "-a", "renewa-one-staging"),
    ("secrets", "unset", "DATABASE_URL", "-a", "renewa-one-staging"),
    ("deploy", "-a", "renewa-one-staging"),
    ("releases", "rollback", "-a", "renewa-one-staging"),
    ("apps", "destroy", "renewa-one-staging"),
]


@pytest.mark.parametrize("args", REFUSED, ids=[" ".join(a[:2]) for a in REFUSED])
def test_destructive_command_is_refused_before_any_process(world_a: Path,
                                                           args: tuple[str, ...]) -> None:
    """Exit 4 naming the command as a human step; the sandbox's flyctl never sees it."""
    fly = Fly(FlyctlSandbox(World.load(world_a)))
    with pytest.raises(RollbackError) as caught:
        fly.run(*args)
    outcome = Outcome(caught.value.exit_code, f"{type(caught.value).__name__}: {caught.value}")
    outcome.check(4, " ".join(args[:2]), "by hand")
    assert calls(world_a) == []


# -- 8. GitHub failures ----------------------------------------------------------------------------
def _records_step(world: Path, **params: Any) -> Outcome:
    run = path_a.start({"env": "staging", "backend": "sandbox", "sandbox_dir": str(world), **params})
    try:
        run.current_state()
        run.recent_records()
        run.resolve_target()
    except RollbackError as exc:
        return Outcome(exc.exit_code, f"{type(exc).__name__}: {exc}", world)
    return Outcome(0, "resolved", world)


def test_expired_token_is_a_service_error_saying_how_to_get_a_new_one(tmp_path: Path) -> None:
    world = tmp_path / "world"
    create_drill_world("expired-token", world, speed=0)
    _records_step(world).check(4, "GitHubAuthError", "token", secrets=(sandbox_token(world),))


def test_github_outage_outlasting_retries_names_the_endpoint(world_a: Path) -> None:
    state = World.load(world_a)
    state.state["github"]["faults"]["server_error_on"] = list(range(1, 60))
    state.save()
    _records_step(world_a).check(4, "GitHubUnavailable", "/repos/renewa/renewa-one",
                                 secrets=(sandbox_token(world_a),))


def test_unknown_repository_is_named(world_a: Path) -> None:
    _records_step(world_a, config={"github_repo": "acme/missing"}).check(
        4, "acme/missing", secrets=(sandbox_token(world_a),))


@pytest.mark.e2e
def test_path_b_comment_failure_still_shows_the_checklist_and_names_the_cluster(
        tmp_path: Path) -> None:
    """GitHub fails after the new cluster is ready: the record step warns and names the cluster
    (the command line retries the edit at the end), and the flip checklist is still shown."""
    tmp_path.chmod(0o755)  # the postgres OS user must reach the servers' data
    world = tmp_path / "world-b"
    create_drill_world("b-default", world, speed=0)
    screen = RecordingScreen()
    try:
        run = path_b.start({"env": "staging", "dry_run": False, "backend": "sandbox",
                            "sandbox_dir": str(world)}, screen=screen)
        for step in (run.resolve, run.plan, run.restore, run.wait_until_ready,
                     run.verify_new_cluster):
            step()
        state = run.fly.runner.world  # type: ignore[attr-defined]  # the run's own world
        done = int(state.state["github"]["request_count"])
        state.state["github"]["faults"]["server_error_on"] = list(range(done + 1, done + 60))
        noted = run.record()
        checklist = run.checklist()
    finally:
        discard_drill_world(world)
    new_id = str(run.new_cluster)
    assert noted.status == "warning"
    assert any(new_id in note and "checklist" in note for note in noted.notes)
    assert checklist is not None and "Manual flip checklist" in checklist.title
    shown = repr(noted) + repr(checklist)
    assert "Infisical" in shown and new_id in shown
    passwords = [p for c in state.state["fly"]["clusters"].values()
                 for p in (c.get("role_passwords") or {}).values()]
    assert passwords and not any(p in shown for p in passwords)


# -- 9. plain papermill: the notebook's own validation, archived without a traceback --------------
@pytest.mark.e2e
@pytest.mark.parametrize("value", ["0", "notabool"])
def test_plain_papermill_dry_run_that_is_not_a_boolean_is_archived_bad_input(
        world_a: Path, tmp_path: Path, value: str) -> None:
    """`papermill … -p dry_run 0` is bad input in the archive: no live step, no traceback."""
    out = tmp_path / f"dry-run-{value}.ipynb"
    done = subprocess.run(
        [sys.executable, "-m", "papermill", str(notebook_of("path-a")), str(out),
         "-p", "env", "staging", "-p", "interactive", "False", "-p", "dry_run", value,
         "-p", "sandbox_dir", str(world_a), "--kernel", "python3"],
        capture_output=True, text=True, timeout=300, check=False)
    assert done.returncode != 0
    errors = [o for cell in json.loads(out.read_text())["cells"]
              for o in cell.get("outputs", []) if o["output_type"] == "error"]
    assert [e["ename"] for e in errors] == ["ConfigError"]
    cls = error_class_named(errors[0]["ename"])
    assert cls is not None
    shown = "\n".join(errors[0]["traceback"])
    Outcome(cls.exit_code, shown).check(2, "'dry_run'", "True or False",
                                        secrets=(sandbox_token(world_a),))
    assert not any(frame in shown for frame in FRAMES)
    assert [c for c in calls(world_a) if c["mutating"]] == []
    assert calls(world_a) == []


# -- 10. forged approvals and injected record comments: never believed, always named -----------------
APPROVAL_RUN = "a1b2c3d4e5f6"
FORGED_APPROVALS = [
    ("edited", f"/approve {APPROVAL_RUN}", "2026-06-10T09:31:30Z", "edited after it was posted"),
    ("html comment", f"ok <!-- /approve {APPROVAL_RUN} -->", "", "HTML comment"),
    ("fenced", f"```\n/approve {APPROVAL_RUN}\n```", "", "code block"),
    ("details", f"<details>\n/approve {APPROVAL_RUN}\n</details>", "", "<details>"),
    ("quoted", f"> /approve {APPROVAL_RUN}", "", "quote"),
    ("conditional", f"/approve {APPROVAL_RUN} NOT until the DB team agrees", "",
     "says more than the command"),
    ("no write access", f"/approve {APPROVAL_RUN}", "", "'read' access, not write"),
    ("the operator", f"/approve {APPROVAL_RUN}", "", "operator cannot approve"),
]


@pytest.mark.parametrize("form, body, edited, why", FORGED_APPROVALS,
                         ids=[f for f, *_ in FORGED_APPROVALS])
def test_a_forged_approval_is_refused_with_its_reason(form: str, body: str, edited: str,
                                                      why: str) -> None:
    from rollback_helpers.clients.github_comments import Comment
    from rollback_helpers.run.approval import Judge, approvers

    user = {"no write access": "carol", "the operator": "ops"}.get(form, "alice")
    at = "2026-06-10T09:31:00Z"
    judge = Judge(APPROVAL_RUN, "0123456789ab", "2026-06-10T09:30:00Z", frozenset({"ops"}),
                  {"alice": "write", "carol": "read", "ops": "admin"}.get)  # type: ignore[arg-type]
    verdicts = judge.verdicts([Comment(1, body, user, at, edited or at, "https://x/1")])
    assert verdicts and approvers(verdicts) == []
    assert why in verdicts[0].why


INJECTED = [("succeeded", "path-a"), ("dispatched", "path-a"), ("flip pending", "path-b"),
            ("restored", "path-b")]


@pytest.mark.parametrize("state, path", INJECTED, ids=[s for s, _ in INJECTED])
def test_an_injected_record_comment_never_counts_and_is_named(state: str, path: str) -> None:
    from rollback_helpers.clients.github_comments import Comment
    from rollback_helpers.run.run_comment import RunComment, own_runs, previous_runs, render_comment

    forged = render_comment(RunComment("f0rged", path, "staging", state=state, new_cluster="x"))
    ours = render_comment(RunComment("r1", path, "staging", state="failed"))

    class Issue:
        def list_comments(self, number: int) -> list[Comment]:
            return [Comment(1, ours, "runbook-bot", "2026-06-10T09:00:00Z",
                            "2026-06-10T09:00:00Z", "https://x/1"),
                    Comment(2, forged, "mallory", "2026-06-10T09:05:00Z",
                            "2026-06-10T09:05:00Z", "https://x/2")]

    found = previous_runs(Issue(), [7], path=path, env="staging")  # type: ignore[arg-type]
    own, ignored = own_runs(found, "runbook-bot")
    assert [r.record.run_id for r in own] == ["r1"]
    assert [r.author for r in ignored] == ["mallory"]
    assert "mallory" in ignored[0].ignored() and "https://x/2" in ignored[0].ignored()


def test_a_publication_by_another_author_is_never_believed() -> None:
    from rollback_helpers.clients.github_comments import Comment
    from rollback_helpers.errors import RecordTampered
    from rollback_helpers.records.verify import published_for

    marker = "<!-- rollback-runbook run=r1 path=path-a env=staging -->"

    def publication(cid: int, user: str, sha: str) -> Comment:
        return Comment(cid, f"{marker}\n- **archive:** `s3://b/r.ipynb`\n- **sha256:** `{sha}`\n",
                       user, "2026-06-10T09:00:00Z", "2026-06-10T09:00:00Z", f"https://x/{cid}")

    class Issue:
        repo = "o/r"

        def __init__(self, comments: list[Comment]) -> None:
            self.comments = comments

        def list_comments(self, number: int) -> list[Comment]:
            return self.comments

        def permission(self, user: str) -> str:
            return {"runbook-bot": "write", "mallory": "read"}.get(user, "none")

    mallory = publication(1, "mallory", "b" * 64)
    bot = publication(2, "runbook-bot", "a" * 64)
    found = published_for(Issue([mallory, bot]), 7, "r1", "s3://b/r.ipynb", "runbook-bot")
    assert found is not None and found.sha256 == "a" * 64
    assert published_for(Issue([mallory]), 7, "r1", "s3://b/r.ipynb", "mallory") is None  # read
    later = publication(3, "runbook-bot", "c" * 64)
    with pytest.raises(RecordTampered) as raised:
        published_for(Issue([bot, later]), 7, "r1", "s3://b/r.ipynb", "runbook-bot")
    assert "a" * 64 in str(raised.value) and "c" * 64 in str(raised.value)
