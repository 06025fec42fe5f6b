"""stats: on a sandbox history of 105 deployment records and 22 archived runs, the figures
equal a hand calculation; the four output forms hold them."""

from __future__ import annotations

import json
import shutil
import subprocess
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from rollback_helpers.cli.main import main
from rollback_helpers.records import stats, stats_report
from rollback_helpers.records.store import open_store
from rollback_helpers.sandbox.scenarios import record_body
from rollback_helpers.testing import sandbox_backends
from tests.records.history_builder import Run, archive

T0 = datetime(2026, 9, 1, 8, 0, tzinfo=UTC)
IMAGE = "registry.fly.io/renewa-one@sha256:" + "a" * 64
STAGING, PRODUCTION = 60, 45  # deploys: staging #2000…, production #3000…


def deployed(env: str, i: int) -> datetime:
    return T0 + timedelta(hours=i, minutes=30 if env == "production" else 0)


def issue(env: str, i: int, labels: tuple[str, ...] = ()) -> dict[str, Any]:
    number = (2000 if env == "staging" else 3000) + i
    at = deployed(env, i).timestamp()
    return {"number": number, "title": f"Deploy v{i} to {env}",
            "body": record_body(env, "renewa-one", IMAGE, "", sha=f"{i:040x}", at=at,
                                workflow_run=f"https://github.com/renewa/renewa-one/actions/runs/{i}"),
            "labels": ["deployment-record", f"env:{env}", *labels], "state": "open",
            "created_at": deployed(env, i).isoformat().replace("+00:00", "Z"),
            "updated_at": deployed(env, i).isoformat().replace("+00:00", "Z"), "user": "deploy-bot"}


def path_a(env: str, i: int, *, start: float, dispatched: float, done: float,
           on_target: float | None, outcome: str = "success", **more: Any) -> Run:
    number = (2000 if env == "staging" else 3000) + i
    run = Run("path-a", env, deployed(env, i) + timedelta(minutes=start), number, outcome,
              **more)
    run.at(0, f"path-a started on {env} (LIVE, backend real)")
    run.decided(0.5, "plan", "ana", f"roll back {env} to {IMAGE}")
    run.at(dispatched - start, "dispatched promote-image.yml: run 7001")
    run.at(done - start, f"workflow run 7001: {'success' if on_target else 'failure'}")
    if on_target is not None:
        run.at(on_target - start, "verify: 0 machine(s) off target, health 200")
    return run


def path_b(env: str, i: int, *, start: float, requested: float, ready: float,
           approval: tuple[float, float] | None = None) -> Run:
    number = (2000 if env == "staging" else 3000) + i
    run = Run("path-b", env, deployed(env, i) + timedelta(minutes=start), number)
    run.at(0, f"path-b started on {env} (LIVE, backend real)")
    run.decided(0.5, "plan", "ben", f"restore {env} into a new cluster")
    if approval:
        run.at(approval[0] - start, "waiting for approval of plan p1 by carla")
        run.decided(approval[1] - start, "approval", "carla", "approved plan p1")
    run.at(requested - start, "restore requested: backup_1_ab → new cluster zz9")
    run.at(ready - start, f"cluster zz9 ready {(ready - requested) * 60:.0f}s after the restore request")
    return run


def flip(env: str, i: int, *, at: float) -> Run:
    number = (2000 if env == "staging" else 3000) + i
    run = Run("verify-flip", env, deployed(env, i) + timedelta(minutes=at - 2), number)
    return run.at(0, f"verify-flip started on {env}").at(2, f"flip verified: zz9 serves {env}")


def history() -> list[Run]:
    approval_run = path_a("production", 5, start=2, dispatched=10, done=14, on_target=15)
    approval_run.at(2, "waiting for approval of plan p1 by dana").decided(9 - 2, "approval", "dana",
                                                                        "approved plan p1")
    runs = [
        path_a("staging", 10, start=5, dispatched=7, done=10, on_target=11),                # S1
        path_a("staging", 20, start=3, dispatched=4, done=9, on_target=None, outcome="workflow-failed"),
        path_b("staging", 20, start=20, requested=26, ready=46, approval=(21, 25)),          # S2
        flip("staging", 20, at=70),
        path_a("staging", 30, start=8, dispatched=12, done=20, on_target=25,                 # S3
               facts={"recovered_at": (deployed("staging", 30) + timedelta(minutes=30)
                                       ).isoformat()}),
        path_a("staging", 40, start=1, dispatched=2, done=5, on_target=None, outcome="workflow-failed"),
        path_a("staging", 55, start=1, dispatched=2, done=3, on_target=4, live=False),       # dry run
        approval_run,                                                                        # P1
        path_a("production", 15, start=4, dispatched=6, done=8, on_target=9),               # P2
        path_b("production", 25, start=10, requested=30, ready=60),                         # P3
        flip("production", 25, at=95),
        path_a("production", 35, start=10, dispatched=15, done=19, on_target=20),           # P4
        path_a("production", 44, start=3, dispatched=5, done=7, on_target=None, outcome="interrupted"),
        Run("path-a", "production", deployed("production", 40), None, "preflight-failed"),  # no issue
    ]
    drills = [path_a("staging", 10, start=1, dispatched=2, done=4, on_target=5, drill=True)
              for _ in range(4)]
    drills += [path_b("staging", 20, start=1, requested=2, ready=12) for _ in range(2)]
    drills += [flip("staging", 20, at=30),
               path_a("production", 5, start=1, dispatched=2, done=3, on_target=None,
                      outcome="workflow-failed")]
    for run in drills[4:]:
        run.drill = True
    return runs + drills


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Path, Path]]:
    """A sandbox world whose GitHub holds 105 deployment records, and a store of 22 runs."""
    root = tmp_path_factory.mktemp("stats")
    backends = sandbox_backends("default", root / "world")
    with backends.world.transaction() as w:
        w.state["github"]["issues"] = [issue("staging", i, ("rolled-back",) if i == 50 else ())
                                       for i in range(STAGING)] + [
            issue("production", i) for i in range(PRODUCTION)]
    backends.close()
    store = open_store(str(root / "incidents"))
    for n, run in enumerate(history()):
        archive(store, root, f"{n:03d}-{run.env}-{run.path}.ipynb", run)
    yield root / "world", root / "incidents"


def run_stats(capsys: pytest.CaptureFixture[str], world: tuple[Path, Path], *extra: str) -> str:
    code = main(["stats", "--sandbox-dir", str(world[0]), "--incidents-dir", str(world[1]),
                 "--env", "staging", "--env", "production", *extra])
    out = capsys.readouterr().out
    assert code == 0, out
    return out


HAND = {  # env: deploys, failed, CFR, rollbacks, A, B, recovered, p50, p90, max, waits
    # staging failed: #2010 #2020 #2030 #2040 (incidents), #2050 (labelled only); 5 / 60.
    # recovery: S1 11 min, S2 flip at 70 min, S3 metrics verdict at 30 min → 660, 1800, 4200 s;
    # nearest rank of 3: p50 the 2nd, p90 the 3rd. S4 failed and was not recovered.
    # waits: approval S2 21→25 min; workflow S1 3 + S2 5 + S3 8 + S4 3 min; restore S2 26→46 min.
    "staging": (60, 5, round(5 / 60, 4), 4, 4, 1, 3, 1800, 4200, 4200,
                {"approval": 240, "workflow": 1140, "restore": 1200}),
    # production: #3005 #3015 #3025 #3035 #3044 over 45; recovered in 15, 9, 95, 20 min →
    # 540, 900, 1200, 5700 s: p50 the 2nd (900), p90 the 4th (5700). #3044 was interrupted.
    # waits: approval P1 4→9 min; workflow 4 + 2 + 4 min (P5's run stopped before it ended:
    # 2 more); restore P3 30→60 min.
    "production": (45, 5, round(5 / 45, 4), 5, 4, 1, 4, 900, 5700, 5700,
                   {"approval": 300, "workflow": 720, "restore": 1800}),
}


def test_stats_equal_the_hand_calculation(capsys: pytest.CaptureFixture[str],
                                          world: tuple[Path, Path]) -> None:
    """Deploys, failures, rate, rollbacks by path, recovery p50/p90/max and waits, per env."""
    figures = json.loads(run_stats(capsys, world, "--format", "json"))
    by_env = {e["env"]: e for e in figures["environments"]}
    for env, hand in HAND.items():
        got = by_env[env]
        spread = got["recovery_seconds"]
        assert (got["deploys"], got["failed_deploys"], got["change_failure_rate"], got["rollbacks"],
                got["path_a"], got["path_b"], got["recovered"], spread["p50"], spread["p90"],
                spread["max"], got["waiting_seconds"]) == hand, env
    drills = figures["drills"]
    assert (drills["drills"], drills["path_a"], drills["path_b"], drills["verify_flip"],
            drills["succeeded"], drills["failed"]) == (8, 5, 2, 1, 7, 1)
    assert len(figures["unattributed_runs"]) == 1 and figures["records_read"] == 22


def test_an_incident_names_its_moments_and_its_records(capsys: pytest.CaptureFixture[str],
                                                       world: tuple[Path, Path]) -> None:
    """S2: deployed → started (the failed Path A) → dispatched → recovered at the flip."""
    figures = json.loads(run_stats(capsys, world, "--format", "json", "--env", "staging"))
    s2 = next(i for e in figures["environments"] for i in e["incidents"] if i["record_issue"] == 2020)
    d = deployed("staging", 20)
    assert (s2["deployed_at"], s2["started_at"], s2["dispatched_at"], s2["recovered_at"]) == tuple(
        (d + timedelta(minutes=m)).isoformat().replace("+00:00", "Z") for m in (0, 3, 4, 70))
    assert s2["paths"] == ["path-a", "path-b"] and len(s2["records"]) == 3


def test_a_period_keeps_only_its_deploys_and_incidents(capsys: pytest.CaptureFixture[str],
                                                       world: tuple[Path, Path]) -> None:
    """--since/--until: staging's deploys 25…44 hold S3 and S4 only."""
    figures = json.loads(run_stats(capsys, world, "--format", "json", "--since",
                                   deployed("staging", 25).isoformat(), "--until",
                                   deployed("staging", 45).isoformat()))
    staging = next(e for e in figures["environments"] if e["env"] == "staging")
    assert (staging["env"], staging["deploys"], staging["rollbacks"], staging["failed_deploys"],
            staging["recovery_seconds"]["max"]) == ("staging", 20, 2, 2, 1800)


def test_the_table_fits_the_terminal(capsys: pytest.CaptureFixture[str],
                                     world: tuple[Path, Path],
                                     monkeypatch: pytest.MonkeyPatch) -> None:
    """A wide terminal shows every column; a narrow one the essential ones, no line wider."""
    monkeypatch.setenv("COLUMNS", "160")
    wide = run_stats(capsys, world).splitlines()
    assert "wait:restore" in wide[0] and wide[1].split()[:4] == ["staging", "60", "5", "8.3%"]
    monkeypatch.setenv("COLUMNS", "60")
    narrow = run_stats(capsys, world).splitlines()
    assert narrow[0].split() == list(stats_report.NARROW) and max(map(len, narrow)) <= 60
    assert narrow[1].split() == ["staging", "60", "8.3%", "4", "30m00s", "1h10m", "1h10m"]


def test_openmetrics_parses_and_holds_the_figures(capsys: pytest.CaptureFixture[str],
                                                  world: tuple[Path, Path]) -> None:
    """prometheus_client's OpenMetrics parser reads it back; promtool accepts it."""
    parser = pytest.importorskip("prometheus_client.openmetrics.parser")  # jupyter_server's
    text_string_to_metric_families = parser.text_string_to_metric_families
    text = run_stats(capsys, world, "--format", "openmetrics")
    samples = {(s.name, tuple(sorted(s.labels.items()))): s.value
               for family in text_string_to_metric_families(text) for s in family.samples}
    assert samples[("rollback_runbook_recovery_time_seconds",
                    (("env", "production"), ("quantile", "0.9")))] == 5700
    assert samples[("rollback_runbook_change_failure_rate_ratio", (("env", "staging"),))] == round(5 / 60, 4)
    assert samples[("rollback_runbook_waiting_seconds", (("env", "staging"), ("wait", "restore")))] == 1200
    if shutil.which("promtool"):
        checked = subprocess.run(["promtool", "check", "metrics"], input=text, text=True,
                                 capture_output=True, check=False)
        assert checked.returncode == 0, checked.stdout + checked.stderr


def test_html_embeds_the_chart_and_lists_the_incidents(capsys: pytest.CaptureFixture[str],
                                                       world: tuple[Path, Path],
                                                       tmp_path: Path) -> None:
    """-o writes one self-contained page: the table, a PNG chart, one row per incident."""
    run_stats(capsys, world, "--format", "html", "-o", str(tmp_path / "stats.html"))
    page = (tmp_path / "stats.html").read_text()
    assert page.count("data:image/png;base64,iVBOR") == 1
    assert page.count("<td>#20") == 4 and page.count("<td>#30") == 5


def test_bad_input_exits_2_naming_it(capsys: pytest.CaptureFixture[str],
                                     world: tuple[Path, Path]) -> None:
    """A --since that is no date, or an environment nobody configured: exit 2, no traceback."""
    assert main(["stats", "--since", "yesterday", "--sandbox-dir", str(world[0])]) == 2
    assert "--since 'yesterday' is not a date" in capsys.readouterr().err
    assert main(["stats", "--env", "qa", "--sandbox-dir", str(world[0])]) == 2
    assert "qa" in capsys.readouterr().err


def test_percentile_is_nearest_rank() -> None:
    """p of n values is the ⌈p/100·n⌉-th smallest; none of none."""
    assert stats.percentile([5, 1, 3, 2, 4], 50) == 3
    assert stats.percentile([5, 1, 3, 2, 4], 90) == 5
    assert stats.percentile([7], 90) == 7 and stats.percentile([], 50) is None
