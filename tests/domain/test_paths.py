"""The registry of runbook paths: each path once, and everything that lists paths reads it."""

from __future__ import annotations

import ast
import importlib.util
import json
import subprocess
import sys
import typing
from typing import Any

import pytest

from rollback_helpers.domain.parameters import (
    MODELS,
    AnyParameters,
    ChangingParameters,
    check_parameters,
)
from rollback_helpers.domain.paths import PATHS, PathSpec, path_spec
from rollback_helpers.errors import ConfigError
from rollback_helpers.run.archive import notebook_of
from rollback_helpers.run.backends import sandbox_scenarios

SPECS = list(PATHS.values())


def parameters_cell(spec: PathSpec) -> dict[str, Any]:
    """The names and values the notebook's `parameters` cell assigns."""
    cells = json.loads(notebook_of(spec.name).read_text())["cells"]
    (cell,) = [c for c in cells if "parameters" in c.get("metadata", {}).get("tags", [])]
    tree = ast.parse("".join(cell["source"]))
    return {node.targets[0].id: ast.literal_eval(node.value) for node in tree.body
            if isinstance(node, ast.Assign) and isinstance(node.targets[0], ast.Name)}


def test_every_model_of_the_union_has_one_entry_and_the_other_way_round() -> None:
    assert set(typing.get_args(AnyParameters)) == set(MODELS) == {s.parameters for s in SPECS}
    for spec in SPECS:
        assert spec.parameters.model_fields["path"].default == spec.name


@pytest.mark.parametrize("spec", SPECS, ids=lambda s: s.name)
def test_a_path_changes_things_exactly_when_its_model_has_a_dry_run(spec: PathSpec) -> None:
    """The lock, the confirmation and the dry run follow `changes`; the model must agree."""
    assert spec.changes == issubclass(spec.parameters, ChangingParameters)
    assert spec.changes == ("dry_run" in spec.parameters.model_fields)


@pytest.mark.parametrize("spec", SPECS, ids=lambda s: s.name)
def test_the_notebooks_parameters_cell_is_its_model_with_safe_defaults(spec: PathSpec) -> None:
    """Every name the cell assigns is one the path takes (so `parameters_of(globals())` never
    refuses the notebook's own), every parameter but `config` is shown there, and its values
    pass: the sandbox, and a dry run for a path that changes things."""
    cell = parameters_cell(spec)
    takes = set(spec.parameters.model_fields) - {"path"}
    assert set(cell) <= takes and takes - set(cell) == {"config"}
    params = check_parameters(spec.name, cell)
    assert params.backend == "sandbox" and params.dry_run is True
    assert cell["scenario"] == spec.default_scenario


@pytest.mark.parametrize("spec", SPECS, ids=lambda s: s.name)
def test_each_path_names_a_shipped_notebook_and_scenario(spec: PathSpec) -> None:
    assert notebook_of(spec.name).is_file()
    assert spec.default_scenario in sandbox_scenarios()


def test_names_titles_and_notebooks_are_each_used_once() -> None:
    for attribute in ("name", "title", "notebook"):
        values = [getattr(spec, attribute) for spec in SPECS]
        assert len(set(values)) == len(values), attribute


def test_an_unknown_path_is_bad_input_listing_the_paths() -> None:
    with pytest.raises(ConfigError) as caught:
        path_spec("path-c")
    assert caught.value.exit_code == 2 and "path-a, path-b, verify-flip" in caught.value.next_step


def notebook_imports(spec: PathSpec) -> set[str]:
    """The modules the notebook's code cells import (``from pkg import module`` names both)."""
    cells = json.loads(notebook_of(spec.name).read_text())["cells"]
    found: set[str] = set()
    for cell in cells:
        if cell["cell_type"] == "code":
            for node in ast.walk(ast.parse("".join(cell["source"]))):
                if isinstance(node, ast.ImportFrom) and node.module:
                    found |= {node.module, *(f"{node.module}.{a.name}" for a in node.names)}
    return found


LOADED_BY = """
import json, sys
import {first}
print(json.dumps(sorted(name for name, module in sys.modules.items() if module is not None)))
"""


@pytest.mark.parametrize("spec", SPECS, ids=lambda s: s.name)
def test_the_modules_a_kernel_imports_early_are_the_step_module_and_what_it_leaves_to_later(
        spec: PathSpec) -> None:
    """A headless run's kernel imports ``steps`` while it waits for its launch: the step module
    the notebook imports first, then modules its later steps load. Each later one must exist and
    must not come with the step module already (an entry that does is stale)."""
    first, *later = spec.steps
    assert first in notebook_imports(spec)
    done = subprocess.run([sys.executable, "-c", LOADED_BY.format(first=first)],
                          capture_output=True, text=True, timeout=120, check=True)
    loaded = set(json.loads(done.stdout.strip().splitlines()[-1]))
    for module in later:
        assert importlib.util.find_spec(module) is not None, module
        assert module not in loaded, f"{first} imports {module} itself: drop it from steps"
