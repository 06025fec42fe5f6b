"""The layout is the architecture: layers, the sandbox at the seams and in rooms, no circles, small modules.

The import contracts live in ``pyproject.toml`` (``[tool.importlinter]``) and are
checked by import-linter; ``docs/architecture.md`` draws them.
"""

from __future__ import annotations

import ast
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "rollback_helpers"
MAX_LINES = 400
MAX_PARAMETERS = 8


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


def parameter_counts(source: str) -> dict[str, int]:
    """Each function's name (and line) → how many parameters it takes, self and cls aside."""
    counts = {}
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
            args = node.args
            names = [a.arg for a in [*args.posonlyargs, *args.args, *args.kwonlyargs,
                                     *([args.vararg] if args.vararg else []),
                                     *([args.kwarg] if args.kwarg else [])]]
            counts[f"{node.name}:{node.lineno}"] = len([n for n in names if n not in ("self", "cls")])
    return counts


def test_no_function_takes_more_than_8_parameters() -> None:
    """Parameters travel as one object (a path's parameters, a record), not re-listed at each hop."""
    many = {f"{p.relative_to(ROOT)}:{name}": n for p in PACKAGE.rglob("*.py")
            for name, n in parameter_counts(p.read_text()).items() if n > MAX_PARAMETERS}
    assert many == {}


def test_the_parameter_count_sees_every_kind_of_parameter() -> None:
    """Positional-only, keyword-only, *args and **kwargs all count; self and cls do not."""
    source = "class C:\n    def m(self, a, /, b, *c, d, e=1, **f): ...\n" \
             "async def g(cls, a, b, c, d, e, f, g, h, i): ...\n"
    assert parameter_counts(source) == {"m:2": 6, "g:3": 9}


def stubs(source: str) -> list[str]:
    """Methods whose body (a docstring aside) is only `raise NotImplementedError`."""
    found = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
            body = [b for b in node.body if not (isinstance(b, ast.Expr)
                                                 and isinstance(b.value, ast.Constant))]
            if len(body) == 1 and isinstance(body[0], ast.Raise) and body[0].exc is not None \
                    and "NotImplementedError" in ast.unparse(body[0].exc):
                found.append(f"{node.name}:{node.lineno}")
    return found


def test_no_class_is_split_by_a_mixin_that_stubs_its_partners_methods() -> None:
    """A class too big for one module is split into collaborators, not into mixins that
    declare each other's methods as `raise NotImplementedError` stubs."""
    found = {str(p.relative_to(ROOT)): s for p in PACKAGE.rglob("*.py") if (s := stubs(p.read_text()))}
    assert found == {}
    mixin = ('class M:\n    def f(self):\n        """doc"""\n        raise NotImplementedError\n'
             "    def g(self):\n        if x:\n            raise NotImplementedError('no')\n")
    assert stubs(mixin) == ["f:2"]


@pytest.mark.parametrize("tool", [["ruff", "check", "rollback_helpers", "tests", "benchmarks"],
                                  ["mypy", "--strict", "rollback_helpers"]], ids=["ruff", "mypy"])
def test_the_package_is_lint_and_type_clean(tool: list[str]) -> None:
    """ruff and mypy --strict report nothing: the house style is checked, not hoped for."""
    done = subprocess.run([str(Path(sys.executable).with_name(tool[0])), *tool[1:]], cwd=ROOT,
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-2000:]
