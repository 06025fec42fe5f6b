"""Path A's metrics evidence end to end: the notebook run headless by papermill.

The target of ``metrics-target-already-bad`` answered 8 % of its requests with 5xx while
it ran; with the override the drill rolls back, and the archived record keeps who
overrode and why, the verdict and the chart (which ``render``'s HTML keeps too). The
stop without the override is tested in process (``test_path_a_evidence.py``).
"""

from __future__ import annotations

from pathlib import Path

import nbformat
import pytest

from rollback_helpers.cli import main as cli
from rollback_helpers.records import notebook_io
from rollback_helpers.records.render import render_html
from rollback_helpers.sandbox.core.world import World

pytestmark = pytest.mark.e2e


def drill(tmp_path: Path, *extra: str) -> tuple[int, Path, World]:
    sandbox, incidents = tmp_path / "sandbox", tmp_path / "incidents"
    code = cli.main(["drill", "path-a", "--env", "staging", "--scenario",
                     "metrics-target-already-bad", "--speed", "0", "--operator", "dana",
                     "--sandbox-dir", str(sandbox), "--incidents-dir", str(incidents), "--quiet",
                     *extra])
    archived = sorted(incidents.glob("*.ipynb"))
    assert len(archived) == 1
    return code, archived[0], World.load(sandbox)


def test_the_override_rolls_back_and_the_record_keeps_who_why_and_the_chart(
        tmp_path: Path) -> None:
    code, record, world = drill(tmp_path, "--override-unhealthy-target",
                                "v40 cannot read the new schema")
    assert code == 0
    assert len(world.state["github"]["runs"]) == 1
    nb = nbformat.read(str(record), as_version=4)
    overrides = [d for d in notebook_io.decisions_in(nb) if "unhealthy while it ran" in d["what"]]
    assert len(overrides) == 1 and overrides[0]["who"] == "dana"
    assert "v40 cannot read the new schema" in overrides[0]["how"]
    charts = [o for cell in nb.cells for o in cell.get("outputs", [])
              if "image/png" in o.get("data", {})]
    assert len(charts) == 1
    html = render_html(record.read_bytes())
    assert "data:image/png;base64," + charts[0]["data"]["image/png"][:40] in html
    assert "Metrics verdict" in html
