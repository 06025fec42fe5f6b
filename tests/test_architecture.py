"""The layout is the architecture: layers, the sandbox at the seams and in rooms, no circles, small modules.

The import contracts live in ``pyproject.toml`` (``[tool.importlinter]``) and are
checked by import-linter; ``docs/architecture.md`` draws them.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "rollback_helpers"
MAX_LINES = 400


def lint_imports(cwd: Path) -> subprocess.CompletedProcess[str]:
    lint = Path(sys.executable).with_name("lint-imports")
    # PYTHONPATH first: the copy's package, not the installed one, is what gets analysed.
    return subprocess.run([str(lint), "--no-cache"], cwd=cwd, capture_output=True, text=True,
                          timeout=120, env={**os.environ, "PYTHONPATH": str(cwd)})


def test_the_import_contracts_are_kept() -> None:
    """Data flows down, the sandbox is imported only at the seams, nothing imports in a circle,
    and the sandbox's rooms stay rooms."""
    done = lint_imports(ROOT)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "5 kept, 0 broken" in done.stdout


@pytest.mark.parametrize(("edits", "broken"), [
    ({"clients/health.py": "from rollback_helpers.runbook import path_a"}, "Data flows down"),
    ({"records/store.py": "from rollback_helpers.run import lock"}, "Data flows down"),
    ({"domain/images.py": "from rollback_helpers.sandbox.core import world"}, "only run.backends"),
    ({"ui/progress.py": "from rollback_helpers.ui import display",
      "ui/display.py": "from rollback_helpers.ui import progress"}, "No import circles"),
    ({"sandbox/core/world.py": "from rollback_helpers.sandbox.github import api"},
     "The sandbox's rooms"),
    ({"sandbox/github/issues.py": "from rollback_helpers.sandbox.fly import flyctl"},
     "The sandbox's rooms"),
    ({"sandbox/github/issues.py": "from rollback_helpers.sandbox.postgres import servers"},
     "GitHub touches no PostgreSQL"),
], ids=["upward", "records-into-the-live-run", "sandbox-outside-the-seams", "circle",
        "sandbox-core-upward", "sandbox-github-uses-fly", "sandbox-github-uses-postgres"])
def test_a_violation_breaks_a_contract(tmp_path: Path, edits: dict[str, str], broken: str) -> None:
    """An upward import, a sandbox import outside the seams, a circle, or one room of the
    sandbox reaching into another it must not fails the check."""
    copy = tmp_path / "repo"
    copy.mkdir()
    (copy / "pyproject.toml").write_text((ROOT / "pyproject.toml").read_text())
    shutil.copytree(PACKAGE, copy / "rollback_helpers", ignore=shutil.ignore_patterns("__pycache__"))
    for module, line in edits.items():
        target = copy / "rollback_helpers" / module
        target.write_text(target.read_text() + f"\n{line}  # deliberate\n")
    done = lint_imports(copy)
    assert done.returncode != 0, done.stdout
    assert broken in done.stdout.split("Broken contracts", 1)[-1]


def test_no_module_is_over_400_lines() -> None:
    """Small rooms: a module past 400 lines is one to split."""
    big = {str(p.relative_to(ROOT)): n for p in PACKAGE.rglob("*.py")
           if (n := len(p.read_text().splitlines())) > MAX_LINES}
    assert big == {}


@pytest.mark.parametrize("tool", [["ruff", "check", "rollback_helpers", "tests", "benchmarks"],
                                  ["mypy", "--strict", "rollback_helpers"]], ids=["ruff", "mypy"])
def test_the_package_is_lint_and_type_clean(tool: list[str]) -> None:
    """ruff and mypy --strict report nothing: the house style is checked, not hoped for."""
    done = subprocess.run([str(Path(sys.executable).with_name(tool[0])), *tool[1:]], cwd=ROOT,
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-2000:]
