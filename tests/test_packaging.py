"""Packaging stays consistent: conda and pip agree, the entry point exists, notebooks are clean."""

from __future__ import annotations

import importlib
import json
import os
import re
import shlex
import tomllib
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parent.parent
REQUIREMENT = re.compile(r"^\s*(?P<name>[A-Za-z0-9_.-]+)\s*(?:\[[^\]]*\])?\s*(?P<spec>[<>=!~].*)?$")
SPECIFIER = re.compile(r"^(?P<op>>=|<=|==|!=|~=|>|<)\s*(?P<version>[0-9][0-9A-Za-z.*+-]*)$")
CONDA_ONLY = {"python", "pip"}


def pyproject() -> dict[str, Any]:
    return tomllib.loads((ROOT / "pyproject.toml").read_text())


def parse_environment_lines(text: str) -> dict[str, Any]:
    """A tiny parser for the one shape environment.yml has (used when PyYAML is missing)."""
    deps: list[Any] = []
    in_deps = False
    for line in text.splitlines():
        if line.startswith("dependencies:"):
            in_deps = True
        elif in_deps and re.match(r"^  - ", line):
            item = line[4:].split(" #")[0].strip()
            deps.append({"pip": []} if item == "pip:" else item)
        elif in_deps and re.match(r"^\s{4,}- ", line) and deps and isinstance(deps[-1], dict):
            deps[-1]["pip"].append(line.strip()[2:])
        elif line and not line.startswith((" ", "#")):
            in_deps = False
    return {"dependencies": deps}


def load_environment_yml() -> dict[str, Any]:
    text = (ROOT / "environment.yml").read_text()
    try:
        import yaml
    except ImportError:
        return parse_environment_lines(text)
    loaded: dict[str, Any] = yaml.safe_load(text)
    return loaded


def test_fallback_parser_agrees_with_yaml() -> None:
    """The line parser reads environment.yml's dependencies exactly as PyYAML does."""
    yaml = pytest.importorskip("yaml")
    text = (ROOT / "environment.yml").read_text()
    assert parse_environment_lines(text)["dependencies"] == yaml.safe_load(text)["dependencies"]


def requirement_specs(requirements: list[str], where: str) -> dict[str, frozenset[str]]:
    """{normalised name: its version specifiers} for ``name[extras]<spec>,<spec>`` requirements."""
    found: dict[str, frozenset[str]] = {}
    for requirement in requirements:
        match = REQUIREMENT.match(requirement)
        assert match, f"{where}: cannot read requirement {requirement!r}"
        specs = [part.strip() for part in (match["spec"] or "").split(",") if part.strip()]
        parsed = [SPECIFIER.match(spec) for spec in specs]
        assert all(parsed), f"{where}: cannot read the versions of {requirement!r}"
        name = re.sub(r"[-_.]+", "-", match["name"]).lower()
        found[name] = frozenset(f"{m['op']}{m['version']}" for m in parsed if m)
    return found


def minimums(requirements: list[str], where: str) -> dict[str, str | None]:
    """{normalised name: minimum version (the ``>=`` bound), or None without one}."""
    specs = requirement_specs(requirements, where)
    return {name: next((s[2:] for s in spec if s.startswith(">=")), None)
            for name, spec in specs.items()}


def pip_requirements() -> list[str]:
    project = pyproject()["project"]
    return [*project["dependencies"], *project["optional-dependencies"]["test"]]


def conda_requirements() -> list[str]:
    entries = load_environment_yml()["dependencies"]
    return [e for e in entries
            if isinstance(e, str) and re.split(r"[<>=!~\s]", e)[0] not in CONDA_ONLY]


def test_requirement_parser_strips_extras() -> None:
    """psycopg[binary]>=3.2 and psycopg>=3.2 name the same package at the same minimum."""
    assert minimums(["psycopg[binary]>=3.2"], "x") == minimums(["psycopg>=3.2"], "x") == {
        "psycopg": "3.2"}


def test_requirement_parser_reads_upper_bounds() -> None:
    """A requirement with only an upper bound has no minimum but keeps its specifier."""
    assert requirement_specs(["hishel<2", "x>=1,<3"], "x") == {
        "hishel": frozenset({"<2"}), "x": frozenset({">=1", "<3"})}
    assert minimums(["hishel<2"], "x") == {"hishel": None}


def test_conda_and_pip_list_the_same_dependencies_and_minimums() -> None:
    """environment.yml lists pyproject's runtime + test dependencies with the same minimums."""
    pip = minimums(pip_requirements(), "pyproject.toml")
    conda = minimums(conda_requirements(), "environment.yml")
    assert "psycopg" in pip and "pytest" in pip  # both runtime and test lists were read
    assert conda == pip


def test_conda_and_pip_pin_the_same_version_ranges() -> None:
    """Every version bound (upper bounds included) is the same in both files."""
    assert requirement_specs(conda_requirements(), "environment.yml") == requirement_specs(
        pip_requirements(), "pyproject.toml")


def test_conda_environment_installs_the_project_itself() -> None:
    """The conda environment pip-installs this project in editable mode, on a modern Python."""
    entries = load_environment_yml()["dependencies"]
    pip_sections = [e["pip"] for e in entries if isinstance(e, dict) and "pip" in e]
    assert pip_sections == [["-e ."]]
    python = [e for e in entries if isinstance(e, str) and e.startswith("python")]
    requires = pyproject()["project"]["requires-python"]
    assert python == [f"python{requires}"]


def test_console_script_points_at_the_cli_main() -> None:
    """`rollback-runbook` runs rollback_helpers.cli.main:main, which exists and is callable."""
    target = pyproject()["project"]["scripts"]["rollback-runbook"]
    assert target == "rollback_helpers.cli.main:main"
    module, attr = target.split(":")
    assert callable(getattr(importlib.import_module(module), attr))


def test_every_folder_of_modules_is_a_package_the_wheel_finds() -> None:
    """setuptools ships only folders with an ``__init__.py`` (the sandbox's rooms among them)."""
    import setuptools

    found = set(setuptools.find_packages(str(ROOT), include=pyproject()["tool"]["setuptools"][
        "packages"]["find"]["include"]))
    folders = {".".join(p.parent.relative_to(ROOT).parts)
               for p in (ROOT / "rollback_helpers").rglob("*.py") if "__pycache__" not in p.parts}
    assert {"rollback_helpers.sandbox.core", "rollback_helpers.sandbox.github",
            "rollback_helpers.sandbox.fly", "rollback_helpers.sandbox.postgres"} <= found
    assert folders <= found


def test_the_shipped_scenarios_match_the_package_data_glob() -> None:
    """Every scenario beside ``sandbox/scenarios.py`` is matched by a package-data glob."""
    from rollback_helpers.sandbox.scenarios import SCENARIO_DIR, list_scenarios

    package = ROOT / "rollback_helpers"
    globs = pyproject()["tool"]["setuptools"]["package-data"]["rollback_helpers"]
    shipped = {p.resolve() for pattern in globs for p in package.glob(pattern)}
    assert list_scenarios()
    assert {p.resolve() for p in SCENARIO_DIR.glob("*.toml")} <= shipped
    assert "default" in list_scenarios() and "b-default" in list_scenarios()


PACKAGED = ROOT / "rollback_helpers" / "notebooks"  # shipped in the wheel
NOTEBOOKS = sorted({p.resolve() for p in [*PACKAGED.glob("*.ipynb"), *(ROOT / "notebooks").glob("*.ipynb")]})


def test_there_are_notebooks_to_check() -> None:
    """The notebook checks below have something to look at."""
    assert NOTEBOOKS


def test_notebooks_live_in_the_package_and_the_checkout_links_to_them() -> None:
    """One copy: `notebooks/` in a checkout is the package's folder, which the wheel ships."""
    assert (ROOT / "notebooks").resolve() == PACKAGED.resolve()
    assert "notebooks/*.ipynb" in pyproject()["tool"]["setuptools"]["package-data"][
        "rollback_helpers"]
    from rollback_helpers.run.archive import notebooks_dir

    assert notebooks_dir().resolve() == PACKAGED.resolve()


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_notebook_is_committed_clean(path: Path) -> None:
    """No code cell carries outputs or an execution count."""
    notebook = json.loads(path.read_text())
    dirty = [i for i, cell in enumerate(notebook["cells"]) if cell["cell_type"] == "code"
             and (cell.get("outputs") or cell.get("execution_count") is not None)]
    assert dirty == [], f"{path.name}: cells {dirty} have outputs or execution counts"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_notebook_has_exactly_one_parameters_cell(path: Path) -> None:
    """Papermill finds exactly one code cell tagged `parameters`."""
    notebook = json.loads(path.read_text())
    tagged = [cell for cell in notebook["cells"]
              if "parameters" in cell.get("metadata", {}).get("tags", [])]
    assert len(tagged) == 1
    assert tagged[0]["cell_type"] == "code"


def test_ci_runs_the_test_script() -> None:
    """.ci/run invokes ./run-tests (not some other command), and both are executable."""
    commands = [shlex.split(line) for line in (ROOT / ".ci" / "run").read_text().splitlines()
                if line.strip() and not line.lstrip().startswith("#")]
    assert any("./run-tests" in words for words in commands)
    for script in (ROOT / ".ci" / "run", ROOT / "run-tests"):
        assert os.access(script, os.X_OK), f"{script} is not executable"
