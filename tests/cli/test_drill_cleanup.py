"""A drill leaves nothing behind in the temp dir: not its world, not its servers' data.

When the world's directory is private (``mkdtemp`` makes it 0700) and we are root,
each PostgreSQL server keeps its data in its own runtime directory under /tmp; the
drill must delete those too, also when it fails.
"""

from __future__ import annotations

import json
import tempfile
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from rollback_helpers.cli import main as cli
from rollback_helpers.run import backends

pytestmark = pytest.mark.e2e


def runtime_dirs(world: Path) -> list[Path]:
    """The servers' data directories outside the world, as the world recorded them."""
    found = []
    for record in world.glob("clusters/*/cluster.json"):
        runtime = json.loads(record.read_text()).get("runtime_dir")
        if runtime:
            found.append(Path(runtime))
    return found


def test_failed_path_b_drill_deletes_its_world_and_the_servers_data(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A Path B drill that fails (restore error) still removes every directory it made."""
    world = Path(tempfile.mkdtemp(prefix="rollback-drill-test-"))  # private, like a drill's
    monkeypatch.setattr(cli, "tempfile", SimpleNamespace(mkdtemp=lambda **_: str(world)))
    seen: list[Path] = []
    real_discard = backends.discard_drill_world

    def discard(directory: Any, **kwargs: Any) -> None:
        seen.extend(runtime_dirs(Path(directory)))
        real_discard(directory, **kwargs)

    monkeypatch.setattr(backends, "discard_drill_world", discard)
    code = cli.main(["drill", "path-b", "--env", "staging", "--scenario", "b-restore-error",
                     "--speed", "0", "--quiet", "--incidents-dir", str(tmp_path / "incidents")])
    assert code == 7
    assert seen, "the servers kept their data outside the world (the case this test is about)"
    assert [d for d in seen if d.exists()] == []
    assert not world.exists()
    assert len(list((tmp_path / "incidents").glob("*.ipynb"))) == 1
