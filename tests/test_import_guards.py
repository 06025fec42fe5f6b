"""What the CLI, the archive and the Path A step module import, and what they must not.

Each process check runs a fresh interpreter and asserts on ``sys.modules``, never on
seconds: the slow imports are named, so their return fails here on any machine.
"""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from rollback_helpers import import_guards

PROBE = """
import json, sys
import {module}
import nbformat, jsonschema
from nbformat.v4 import new_code_cell, new_notebook
bad = new_notebook(cells=[new_code_cell("x = 1")])
bad.cells[0]["cell_type"] = "no-such-type"
try:
    nbformat.validate(bad)
    rejected = False
except nbformat.ValidationError:
    rejected = True
nbformat.validate(new_notebook(cells=[new_code_cell("x = 1")]))
loaded = sorted(name for name, module in sys.modules.items() if module is not None)
print(json.dumps({{"modules": loaded, "rejected": rejected,
                   "formats": sorted(jsonschema.FormatChecker().checkers)}}))
"""


def probe(module: str) -> dict[str, object]:
    """Import ``module`` in a fresh interpreter, then nbformat; what it loaded and decided."""
    done = subprocess.run([sys.executable, "-c", PROBE.format(module=module)], capture_output=True,
                          text=True, timeout=120, check=True)
    return dict(json.loads(done.stdout.strip().splitlines()[-1]))


@pytest.mark.parametrize("module", ["rollback_helpers.cli.main", "rollback_helpers.run.archive"])
def test_the_cli_and_archive_never_import_the_iri_grammars(module: str) -> None:
    """The CLI's import path loads jsonschema (through nbformat) but not rfc3987_syntax."""
    seen = probe(module)
    modules = seen["modules"]
    assert isinstance(modules, list)
    assert "jsonschema" in modules and "nbformat" in modules
    assert "rfc3987_syntax" not in modules and "lark" not in modules


def test_nbformat_still_validates_notebooks_without_the_iri_checker() -> None:
    """An invalid notebook is still rejected; only the iri formats go unchecked."""
    seen = probe("rollback_helpers.cli.main")
    formats = seen["formats"]
    assert seen["rejected"] is True
    assert isinstance(formats, list)
    assert "iri" not in formats and "iri-reference" not in formats
    assert {"email", "ipv4", "regex"} <= set(formats)  # the other checkers are all there


def test_the_path_a_step_module_imports_no_data_frame_library() -> None:
    """The kernel's first step does not load pandas (its tables are rollback_helpers.ui.table)."""
    done = subprocess.run([sys.executable, "-c", "import sys, rollback_helpers.runbook.path_a; print("
                           "*(sys.modules.get(m) is not None for m in ('pandas', 'rfc3987_syntax')))"],
                          capture_output=True, text=True, timeout=120, check=True)
    assert done.stdout.split() == ["False", "False"]


def forget_iri_grammars(monkeypatch: pytest.MonkeyPatch) -> None:
    """No ``rfc3987_syntax`` entry in sys.modules for this test; the test process's comes back."""
    monkeypatch.setitem(sys.modules, "rfc3987_syntax", sys.modules.get("rfc3987_syntax"))
    monkeypatch.delitem(sys.modules, "rfc3987_syntax")


def test_guard_marks_the_grammars_unavailable_before_jsonschema(
        monkeypatch: pytest.MonkeyPatch) -> None:
    """Before jsonschema is imported, rfc3987_syntax is made unimportable (None in sys.modules)."""
    monkeypatch.delitem(sys.modules, "jsonschema", raising=False)
    forget_iri_grammars(monkeypatch)
    import_guards.skip_iri_grammars()
    assert "rfc3987_syntax" in sys.modules and sys.modules["rfc3987_syntax"] is None
    with pytest.raises(ImportError):
        import rfc3987_syntax  # noqa: F401


def test_guard_leaves_a_process_that_already_imported_jsonschema_alone(
        monkeypatch: pytest.MonkeyPatch) -> None:
    """A process whose jsonschema already chose its checkers keeps them."""
    monkeypatch.setitem(sys.modules, "jsonschema", sys.modules.get("jsonschema", object()))
    forget_iri_grammars(monkeypatch)
    import_guards.skip_iri_grammars()
    assert "rfc3987_syntax" not in sys.modules
