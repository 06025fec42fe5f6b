"""nbval over every runbook notebook, on a fresh sandbox world, as a reader would run them.

Each notebook is given the parameters a reader would choose (an environment, a
sandbox world) with papermill's parameteriser, then nbval runs it cell by cell
(``--nbval-lax``: no stored outputs to compare; any error fails).
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import nbformat
import pytest
from papermill.iorw import load_notebook_node
from papermill.parameterize import parameterize_notebook

from rollback_helpers import sandbox
from rollback_helpers.domain.paths import PATHS
from rollback_helpers.run.archive import notebook_of, notebooks_dir
from rollback_helpers.sandbox.scenarios import create_world

pytestmark = pytest.mark.e2e

CASES = {path: (spec.default_scenario, {"env": "staging"}) for path, spec in PATHS.items()}


def all_notebooks() -> list[str]:
    return sorted(p.name for p in notebooks_dir().glob("*.ipynb"))


def test_every_runbook_notebook_is_covered() -> None:
    """A notebook added to notebooks/ without an nbval case here fails this test."""
    covered = {PATHS[path].notebook for path in CASES} | {"start_here.ipynb"}
    assert set(all_notebooks()) <= covered


@pytest.mark.parametrize("path", sorted(CASES))
def test_notebook_runs_clean_under_nbval(path: str, tmp_path: Path) -> None:
    """Every cell of the notebook runs without error on the sandbox (a dry run by default)."""
    scenario, params = CASES[path]
    world_dir = tmp_path / "world"
    world_dir.mkdir()
    world_dir.chmod(0o755)
    tmp_path.chmod(0o755)
    try:
        create_world(scenario, world_dir)
        nb = load_notebook_node(str(notebook_of(path)))
        nb = parameterize_notebook(nb, {**params, "sandbox_dir": str(world_dir)})
        copy = tmp_path / PATHS[path].notebook
        nbformat.write(nb, str(copy))
        done = subprocess.run([sys.executable, "-m", "pytest", "--nbval-lax", "-q",
                               "-p", "no:cacheprovider", str(copy)],
                              capture_output=True, text=True, cwd=tmp_path, timeout=300)
    finally:
        sandbox.discard(world_dir)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-2000:]
    assert " passed" in done.stdout
