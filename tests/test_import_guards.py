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


# What importing the Path A step module must not load, and why each stays out: pandas (steps
# build ui.table tables), the IRI grammars (import_guards), nbformat and the jsonschema under
# it (read and written only when a record is), httpx's command line with click, rich and
# pygments (import_guards), psutil (only when another run on this machine holds the lock), the
# sandbox (run.backends opens it when a drill starts), psycopg (Path B's logins), matplotlib
# (ui.chart imports it when it draws), idna's tables (import_guards: an ASCII host never needs
# them), outside a kernel, IPython (asked for its shell only where it is loaded already), the
# metrics evidence (the plan step loads it) and the notifications (a live run's first notice).
KEPT_OFF_PATH_A = ("pandas", "rfc3987_syntax", "nbformat", "jsonschema", "httpx._main", "click",
                   "rich", "pygments", "psutil", "rollback_helpers.sandbox", "psycopg", "IPython",
                   "matplotlib", "idna.core", "idna.idnadata", "rollback_helpers.domain.evidence",
                   "rollback_helpers.clients.metrics", "rollback_helpers.run.metrics_evidence",
                   "rollback_helpers.runbook.path_a_evidence", "rollback_helpers.run.notify")
LOADED = """
import json, sys
import rollback_helpers.runbook.path_a
print(json.dumps(sorted(name for name, module in sys.modules.items() if module is not None)))
"""


def loaded_by(code: str) -> set[str]:
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=120, check=True)
    return set(json.loads(done.stdout.strip().splitlines()[-1]))


def test_the_path_a_step_module_keeps_the_heavy_imports_off() -> None:
    """A fresh interpreter importing the Path A step module loads none of the heavy modules."""
    modules = loaded_by(LOADED)
    assert "rollback_helpers.runbook.path_a" in modules and "httpx" in modules
    assert "pydantic" in modules  # the first step validates its parameters with it
    came_back = {name for name in modules for heavy in KEPT_OFF_PATH_A
                 if name == heavy or name.startswith(heavy + ".")}
    assert not came_back, f"imported by rollback_helpers.runbook.path_a again: {sorted(came_back)}"


IDN = """
import json, sys
import inspect, rollback_helpers, httpx
ascii_host = httpx.URL("https://api.github.com/repos").host
inspect.getmodule(print)  # reads every module's __file__, as the kernel does
before = "idna.idnadata" in sys.modules
encoded = httpx.URL("https://bücher.example/").raw_host.decode()
decoded = httpx.URL("https://xn--bcher-kva.example/").host
import idna.core
print(json.dumps({"ascii": ascii_host, "tables before": before, "encoded": encoded,
                  "decoded": decoded, "real": type(sys.modules["idna"]).__name__,
                  "direct": idna.core.encode("bücher").decode()}))
"""


def test_idna_loads_its_tables_only_for_a_host_that_needs_them() -> None:
    """After ``import rollback_helpers``, an ASCII host leaves idna's tables unloaded, and an IDN
    host is encoded and decoded as before; the real idna then takes its place."""
    done = subprocess.run([sys.executable, "-c", IDN], capture_output=True, text=True,
                          timeout=120, check=True)
    assert json.loads(done.stdout.strip().splitlines()[-1]) == {
        "ascii": "api.github.com", "tables before": False, "encoded": "xn--bcher-kva.example",
        "decoded": "bücher.example", "real": "module", "direct": "xn--bcher-kva"}


BUILT = """
import json
from rollback_helpers.domain import parameters
parameters.check_parameters("path-a", {"env": "staging"})
print(json.dumps({m.__name__: bool(m.__pydantic_complete__) for m in parameters.MODELS}))
"""


def test_a_run_builds_only_its_own_paths_parameters_model() -> None:
    """Validating Path A's parameters builds Path A's model, not Path B's nor verify-flip's."""
    done = subprocess.run([sys.executable, "-c", BUILT], capture_output=True, text=True,
                          timeout=120, check=True)
    assert json.loads(done.stdout.strip().splitlines()[-1]) == {
        "PathAParameters": True, "PathBParameters": False, "VerifyFlipParameters": False}


CLIENT = """
import json, sys
import rollback_helpers, httpx
client = httpx.Client(transport=httpx.MockTransport(lambda request: httpx.Response(204)))
print(json.dumps({"status": client.get("http://127.0.0.1/").status_code,
                  "command line": sys.modules.get("httpx._main") is not None,
                  "rich": "rich" in sys.modules, "main": callable(httpx.main)}))
"""


def test_httpx_answers_without_its_command_line() -> None:
    """After ``import rollback_helpers``, httpx's client works and its command line is not loaded."""
    done = subprocess.run([sys.executable, "-c", CLIENT], capture_output=True, text=True,
                          timeout=120, check=True)
    seen = json.loads(done.stdout.strip().splitlines()[-1])
    assert seen == {"status": 204, "command line": False, "rich": False, "main": True}


def test_guard_marks_httpx_command_line_unavailable_before_httpx(
        monkeypatch: pytest.MonkeyPatch) -> None:
    """Before httpx is imported, ``httpx._main`` is made unimportable (None in sys.modules)."""
    monkeypatch.delitem(sys.modules, "httpx", raising=False)
    monkeypatch.setitem(sys.modules, "httpx._main", sys.modules.get("httpx._main"))
    monkeypatch.delitem(sys.modules, "httpx._main")
    import_guards.skip_httpx_cli()
    assert "httpx._main" in sys.modules and sys.modules["httpx._main"] is None


def test_guard_leaves_a_process_that_already_imported_httpx_alone(
        monkeypatch: pytest.MonkeyPatch) -> None:
    """A process whose httpx already imported its command line keeps it."""
    monkeypatch.setitem(sys.modules, "httpx", sys.modules.get("httpx", object()))
    monkeypatch.setitem(sys.modules, "httpx._main", sys.modules.get("httpx._main"))
    monkeypatch.delitem(sys.modules, "httpx._main")
    import_guards.skip_httpx_cli()
    assert "httpx._main" not in sys.modules


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
