"""A drill's record tells the drill: one clock (its sandbox world's), the environment and the
scenario drilled. Real drills at instant speed, in this process; the default scenario's virtual
clock (June 2026) is far from the real one, so a wall-clock time in the record shows."""

from __future__ import annotations

import json
import re
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from webhook_receiver import receiver

from rollback_helpers.cli import main as cli
from rollback_helpers.clock import parse_iso
from rollback_helpers.run import archive
from rollback_helpers.run.backends import discard_drill_world
from rollback_helpers.run.run_comment import parse_comment
from rollback_helpers.sandbox.core.world import World
from rollback_helpers.sandbox.scenarios import load_scenario

pytestmark = pytest.mark.e2e
# Every way a time is written in a record: ISO 8601, the archive's stamp, a drill's incident id.
ISO = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(?:\.\d+)?(?:Z|[+-]\d\d:\d\d)?")
STAMP = re.compile(r"(?<!\d)(\d{8})[T-](\d{6})Z?(?!\d)")


@pytest.fixture
def sandbox(tmp_path: Path) -> Iterator[Path]:
    yield tmp_path / "sandbox"
    if (tmp_path / "sandbox").is_dir():
        discard_drill_world(tmp_path / "sandbox")


def drill(tmp_path: Path, sandbox: Path, *extra: str, env: str = "staging") -> tuple[int, Path]:
    incidents = tmp_path / "incidents"
    code = cli.main(["drill", "path-a", "--env", env, "--speed", "0", "--sandbox-dir",
                     str(sandbox), "--incidents-dir", str(incidents), "--quiet", *extra])
    [record] = sorted(incidents.glob("*.ipynb"))
    return code, record


def moments(text: str) -> list[float]:
    """Every time written in ``text``, as epoch seconds."""
    found = [parse_iso(m.group(0) if m.group(0)[-1].isalpha() or "+" in m.group(0)[19:]
                       else m.group(0) + "Z") for m in ISO.finditer(text)]
    found += [datetime.strptime(day + clock, "%Y%m%d%H%M%S").replace(tzinfo=UTC).timestamp()
              for day, clock in STAMP.findall(text)]
    return found


def comment_body(world: World) -> str:
    bodies = [c["body"] for cs in world.state["github"]["comments"].values() for c in cs]
    return next(b for b in bodies if parse_comment(b) is not None)


def comment_of(world: World) -> Any:
    return parse_comment(comment_body(world))


def test_every_time_in_a_drills_record_is_on_its_worlds_clock(
        tmp_path: Path, sandbox: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Name, start, end, steps, cells, decisions, timeline, incident id, record comment and the
    drill's notifications: all within the drill's virtual span, and none from the wall clock."""
    wall_start = time.time()
    with receiver("ok") as rec:
        monkeypatch.setenv("ROLLBACK_NOTIFY_DRILLS", rec.url())
        code, record = drill(tmp_path, sandbox)
    wall_end = time.time()
    assert code == 0
    world = World.load(sandbox)
    begin, end = parse_iso(load_scenario("default")["start"]), world.now
    assert end - begin > 300  # the workflow and the metrics watch took virtual minutes
    assert abs(wall_start - begin) > 86400  # the two clocks are far apart: a mix would show

    def within(at: str | float) -> bool:
        moment = at if isinstance(at, float) else parse_iso(at)
        return begin - 1 <= moment <= end + 1

    outcome = archive.read_outcome(record)
    name_stamp = moments(record.name)
    assert len(name_stamp) == 1 and within(name_stamp[0]), record.name
    assert within(outcome["started_at"]) and within(outcome["finished_at"])
    assert outcome["seconds"] == pytest.approx(
        parse_iso(outcome["finished_at"]) - parse_iso(outcome["started_at"]), abs=1.0)
    assert outcome["seconds"] > 300
    assert outcome["steps"] and all(within(s["started_at"]) and within(s["ended_at"])
                                    for s in outcome["steps"])
    assert outcome["decisions"] and all(within(d["at"]) for d in outcome["decisions"])
    assert outcome["timeline"] and all(within(t["at"]) for t in outcome["timeline"])
    assert outcome["parameters"]["incident"].startswith("DRILL-20260610-")
    nb = json.loads(record.read_text())
    cells = [c["metadata"]["papermill"] for c in nb["cells"] if c["cell_type"] == "code"]
    assert all(within(c["start_time"]) and within(c["end_time"]) for c in cells)
    assert within(nb["metadata"]["papermill"]["start_time"])
    assert within(nb["metadata"]["papermill"]["end_time"])
    comment = comment_of(world)
    assert within(comment.started_at) and within(comment.updated_at)
    assert record.name in comment.archive
    assert rec.events()[0] == "start" and outcome["notifications"]
    told = [m for body in rec.bodies for m in moments(json.dumps(body))]
    assert told and all(within(m) for m in told), rec.bodies

    everything = moments(record.read_text())
    assert len(everything) > 50
    assert [m for m in everything if wall_start - 5 <= m <= wall_end + 5] == []
    assert max(everything) <= end + 600  # the latest: a lease's expiry, lock_ttl ahead


def test_a_drill_on_another_environment_says_which_and_the_record_names_the_scenario(
        tmp_path: Path, sandbox: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """The default scenario is written for staging; a drill on development says what it drills
    there (not "Bad deploy on staging"), and its record and comment name development."""
    code, record = drill(tmp_path, sandbox, env="development")
    header = next(line for line in capsys.readouterr().out.splitlines()
                  if line.startswith("Drill: "))
    assert code == 0
    assert header.startswith("Drill: path-a on development, scenario 'default' (written for "
                             "staging) — on development: renewa-one-development runs v43")
    assert "Bad deploy on staging" not in header
    outcome = archive.read_outcome(record)
    assert (outcome["env"], outcome["parameters"]["scenario"]) == ("development", "default")
    assert "-development-path-a" in record.name
    world = World.load(sandbox)
    assert comment_of(world).env == "development" and "staging" not in comment_body(world)


def test_a_drift_drill_with_a_reason_names_drift_in_its_record(
        tmp_path: Path, sandbox: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """--reason replaces the drill's default reason, not the scenario the record names."""
    code, record = drill(tmp_path, sandbox, "--scenario", "drift", "--reason", "practice")
    out = capsys.readouterr().out
    assert code != 0  # drift stops the run
    assert "Drill: path-a on staging, scenario 'drift' — Drift: staging runs" in out
    outcome = archive.read_outcome(record)
    assert outcome["parameters"]["scenario"] == "drift"
    assert outcome["parameters"]["reason"] == "practice"
