"""`rollback-runbook check`: a read-only preflight, passing on the default sandbox, failing
with the right row on each rotten world."""

from __future__ import annotations

from pathlib import Path

import pytest

from rollback_helpers.cli import main as cli
from rollback_helpers.clients.fly_policy import refusal_reason
from rollback_helpers.domain.config import load_config
from rollback_helpers.run.backends import (
    Backends,
    create_drill_world,
    discard_drill_world,
    open_backends,
)
from rollback_helpers.runbook.preflight import Preflight, PreflightResult
from rollback_helpers.sandbox.core.world import World, read_calls

ROTTEN = {  # scenario → (the row that must fail: check, env)
    "check-no-backup": ("backup", "staging"),
    "check-missing-workflow": ("workflow", "—"),
    "check-map-disagrees": ("cluster map", "staging"),
    "check-expired-token": ("GitHub token", "—"),
}


def run_check(tmp_path: Path, capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str]:
    code = cli.main(["check", "--sandbox-dir", str(tmp_path / "world"), *args])
    return code, capsys.readouterr().out


def rows(out: str, mark: str) -> list[list[str]]:
    """The table's rows with ``mark``, split into check, env and result."""
    found = []
    for line in out.splitlines():
        if line.startswith(mark + "  "):
            check_env_result = [part for part in line[3:].split("  ") if part.strip()]
            found.append([part.strip() for part in check_env_result])
    return found


def test_check_passes_on_the_default_sandbox_and_changes_nothing(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """Every row ✔, exit 0, and the sandbox saw GitHub, flyctl and health calls, none mutating."""
    code, out = run_check(tmp_path, capsys)
    assert code == 0, out
    assert rows(out, "✘") == [] and rows(out, "–") == []
    ok = rows(out, "✔")
    checks = {(r[0], r[1]) for r in ok}
    for env in ("development", "staging", "production"):
        for check in ("app status", "records", "Path A target", "cluster map", "backup", "health"):
            assert (check, env) in checks
    for check in ("GitHub token", "GitHub permissions", "workflow", "flyctl login"):
        assert (check, "—") in checks
    calls = read_calls(tmp_path / "world")
    assert {c["seam"] for c in calls} == {"github", "flyctl", "http"}
    assert [c for c in calls if c["mutating"]] == []
    queries = [c for c in calls if c["call"].startswith("POST https://api.fly.io/prometheus/")]
    assert queries and all("/api/v1/query " in c["call"] for c in queries)  # read-only by design
    assert all(c["call"].startswith("GET ") for c in calls
               if c["seam"] != "flyctl" and c not in queries)
    token = World.load(tmp_path / "world").state["github"]["token"]
    assert token not in out


@pytest.mark.parametrize("scenario", sorted(ROTTEN))
def test_each_rotten_world_fails_check_with_its_row(
        tmp_path: Path, capsys: pytest.CaptureFixture[str], scenario: str) -> None:
    """The rotten part is the one ✘ row (with a next step), and nothing was changed."""
    code, out = run_check(tmp_path, capsys, "--scenario", scenario)
    assert code == 3, out
    failed = rows(out, "✘")
    assert [(r[0], r[1]) for r in failed] == [ROTTEN[scenario]], out
    next_line = out.split(failed[0][2], 1)[1].splitlines()[1]
    assert next_line.strip().startswith("next: ")
    assert [c for c in read_calls(tmp_path / "world") if c["mutating"]] == []


def test_the_rows_say_what_is_wrong(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """Each rotten row names the thing: the record, the workflow, the clusters."""
    expected = {"check-no-backup": "has no backup_id",
                "check-missing-workflow": "promote-image.yml",
                "check-map-disagrees": "names m4q8z2x6c1v9b3na for staging, but renewa-one-staging "
                                       "is attached to w3k8p1x9m2q7v4zr",
                "check-expired-token": "401"}
    for scenario, words in expected.items():
        _, out = run_check(tmp_path / scenario, capsys, "--scenario", scenario)
        (row,) = rows(out, "✘")
        assert words in row[2], out


def test_check_one_environment(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """--env limits the per-environment rows; a rotten staging passes when only production is checked."""
    code, out = run_check(tmp_path, capsys, "--scenario", "check-no-backup", "--env", "production")
    assert code == 0, out
    assert {r[1] for r in rows(out, "✔")} == {"—", "production"}


def test_an_unknown_environment_is_bad_input(tmp_path: Path,
                                              capsys: pytest.CaptureFixture[str]) -> None:
    """Exit 2 before any world is built or anything is contacted."""
    assert cli.main(["check", "--env", "qa", "--sandbox-dir", str(tmp_path / "w")]) == 2
    assert "Unknown environment 'qa'" in capsys.readouterr().err
    assert not (tmp_path / "w").exists()


# -- the preflight itself, through other seams ------------------------------------------------
def preflight(backends: Backends, **config: str) -> PreflightResult:
    cfg = load_config(config or None)
    return Preflight(cfg, backends).run(["staging"])


def sandbox(world_dir: Path, scenario: str = "default", **state: dict[str, object]) -> Backends:
    """Seams to a fresh world; ``state`` (e.g. ``fly={"logged_in": False}``) is merged in first."""
    create_drill_world(scenario, world_dir, speed=0)
    world = World.load(world_dir)
    for part, values in state.items():
        world.state[part].update(values)
    world.save()
    return open_backends("sandbox", sandbox_dir=world_dir)


def test_no_token_fails_the_token_row_and_skips_what_needs_github(tmp_path: Path) -> None:
    """Without a token nothing is sent to GitHub; flyctl and health rows still run."""
    backends = sandbox(tmp_path)
    backends.github_token = None
    result = preflight(backends)
    assert result.row("GitHub token").status == "failed"
    assert "gh auth login" in result.row("GitHub token").next_step
    assert result.row("records", "staging").status == "skipped"
    assert result.row("app status", "staging").status == "ok"
    assert not [c for c in read_calls(str(backends.sandbox_dir)) if c["seam"] == "github"]


def test_missing_flyctl_fails_one_row_and_github_rows_still_pass(tmp_path: Path) -> None:
    """A real backend without flyctl: the flyctl row says so; GitHub-only checks still run."""
    backends = sandbox(tmp_path)
    backends.name = "real"  # the sandbox's seams, but flyctl looked up on PATH like the real one
    result = preflight(backends, flyctl="flyctl-that-is-not-installed")
    assert result.row("flyctl login").status == "failed"
    assert "not on PATH" in result.row("flyctl login").detail
    assert result.row("records", "staging").status == "ok"
    assert result.row("workflow").status == "ok"
    assert result.row("app status", "staging").status == "skipped"
    assert not result.passed


def test_flyctl_logged_out_fails_the_login_row(tmp_path: Path) -> None:
    """`flyctl auth whoami` without a login is a ✘ that says to log in."""
    backends = sandbox(tmp_path, fly={"logged_in": False})
    result = preflight(backends)
    assert result.row("flyctl login").status == "failed"
    assert "flyctl auth login" in result.row("flyctl login").next_step


def test_a_token_without_write_access_fails_permissions(tmp_path: Path) -> None:
    """A read-only role (GitHub's permissions object) cannot dispatch: the permissions row fails."""
    read_only = {"admin": False, "maintain": False, "push": False, "triage": False, "pull": True}
    backends = sandbox(tmp_path, github={"permissions": read_only, "token_scopes": ["read:org"]})
    row = preflight(backends).row("GitHub permissions")
    assert row.status == "failed"
    assert "no write access" in row.detail and "lack `repo`" in row.detail


def test_whoami_is_allowed_and_other_auth_commands_are_not() -> None:
    """`auth whoami` is read-only; `auth token` would print a secret and stays refused."""
    assert refusal_reason(["auth", "whoami", "--json"]) is None
    assert refusal_reason(["auth", "token"]) is not None
    assert refusal_reason(["auth", "logout"]) is not None


def test_scenario_keys_for_a_disabled_workflow_and_a_logged_out_flyctl(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """`[workflow] state` and `[fly] logged_in` in a scenario file reach the check's rows."""
    scenario = tmp_path / "rotten.toml"
    scenario.write_text('description = "A disabled workflow, and flyctl logged out."\n'
                        '[workflow]\nstate = "disabled_manually"\n[fly]\nlogged_in = false\n'
                        '[environments.staging]\napp = "renewa-one-staging"\n'
                        'deploys = ["v41", "v42"]\ncluster_id = "w3k8p1x9m2q7v4zr"\n')
    code, out = run_check(tmp_path, capsys, "--scenario", str(scenario), "--env", "staging")
    assert code == 3
    failed = {(r[0], r[1]): r[2] for r in rows(out, "✘")}
    assert set(failed) == {("workflow", "—"), ("flyctl login", "—")}
    assert "'disabled_manually'" in failed[("workflow", "—")]
    assert "gh workflow enable promote-image.yml" in out
    assert ("app status", "staging") in {(r[0], r[1]) for r in rows(out, "–")}


def test_every_shipped_scenario_is_documented() -> None:
    """docs/scenarios.md names every scenario `rollback-runbook scenarios` lists."""
    from rollback_helpers.run.backends import sandbox_scenarios

    docs = (Path(__file__).resolve().parents[2] / "docs" / "scenarios.md").read_text()
    assert [name for name in sandbox_scenarios() if f"`{name}`" not in docs] == []


def test_a_fine_grained_token_passes_permissions_on_its_role(tmp_path: Path) -> None:
    """No x-oauth-scopes header (fine-grained or app token): the role decides, and the row says so."""
    backends = sandbox(tmp_path, github={"token_scopes": []})
    row = preflight(backends).row("GitHub permissions")
    assert row.status == "ok" and "fine-grained" in row.detail


def test_a_team_configuration_is_not_checked_against_the_sandbox(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    """A runbook.toml for another repository and the sandbox's world: bad input, said plainly."""
    config = tmp_path / "runbook.toml"
    config.write_text('github_repo = "acme/shop"\n')
    monkeypatch.setenv("ROLLBACK_RUNBOOK_CONFIG", str(config))
    assert cli.main(["check", "--sandbox-dir", str(tmp_path / "world")]) == 2
    err = capsys.readouterr().err
    assert "names acme/shop, but the sandbox world holds renewa/renewa-one" in err
    assert "--backend real" in err


def test_a_scenario_with_the_real_backend_is_bad_input(capsys: pytest.CaptureFixture[str]) -> None:
    """--scenario only means something on the sandbox: with --backend real it is exit 2."""
    assert cli.main(["check", "--backend", "real", "--scenario", "check-no-backup"]) == 2
    assert "--backend real" in capsys.readouterr().err


def test_check_acts_in_an_existing_world_and_never_rebuilds_it(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """--sandbox-dir holding another drill's world: check reads that world (its own scenario,
    its call log kept), and leaves its files in place for the others."""
    world = tmp_path / "world"
    create_drill_world("check-no-backup", world, speed=0)
    before = read_calls(world)
    try:
        code, out = run_check(tmp_path, capsys)  # no --scenario: the default is another world
    finally:
        discard_drill_world(world)
    assert code == 3, out
    assert [(r[0], r[1]) for r in rows(out, "✘")] == [ROTTEN["check-no-backup"]]
    assert "sandbox scenario 'check-no-backup'" in out
    assert read_calls(world)[:len(before)] == before and (world / "world.json").is_file()


def test_a_metrics_endpoint_that_is_down_fails_the_metrics_row_only(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """Fly's metrics answering 503 is a ✘ metrics row (with the way to fix it); every other
    row still passes: a rollback would work, without the evidence that it ended the incident."""
    code, out = run_check(tmp_path, capsys, "--scenario", "metrics-endpoint-down", "--env",
                          "staging")
    assert code == 3, out
    (row,) = rows(out, "✘")
    assert row[:2] == ["metrics", "staging"] and "503" in row[2], out
    assert "FLY_API_TOKEN" in out.split(row[2], 1)[1].splitlines()[1]
