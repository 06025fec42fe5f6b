"""Imports this package keeps out of the processes it runs in (the CLI and the kernel).

``rfc3987_syntax``: IRI grammars compiled at import time (2–3 s here)
-----------------------------------------------------------------------
nbformat (under papermill, and the archive) imports jsonschema, and
``jsonschema._format`` imports the optional ``rfc3987_syntax`` at module level to
offer the ``iri`` and ``iri-reference`` format checkers. That module builds about
35 Lark Earley parsers as it is imported, which cost every ``rollback-runbook``
command 2.3–2.7 s on the project's 2-core machines before it did anything
(python-jsonschema/jsonschema#1428; opendatahub-io/notebooks#3532 measures the
same in JupyterLab's start).

No runbook validates an IRI, and nbformat validates notebooks with a bare
``Draft4Validator``, without a format checker, so no format checker ever runs on a
notebook. :func:`skip_iri_grammars` marks ``rfc3987_syntax`` as unavailable
(``sys.modules[name] = None`` makes an import of it raise ``ModuleNotFoundError``:
Python's documented import protocol), and jsonschema then does what it does when
that optional package is not installed: it leaves the two IRI formats unchecked
(unknown formats are annotations in JSON Schema). Nothing is uninstalled, no GPL
``rfc3987`` is added, and every other format checker (``date-time``, ``uri``, …)
is unaffected.

It only acts before jsonschema is first imported: a process that imported
jsonschema earlier (so chose its checkers already) is left as it is. A program
that imports ``rollback_helpers`` and wants IRI checks imports jsonschema first.
``tests/test_import_guards.py`` fails if the grammars come back into the CLI, the
archive or the Path A step module.

``httpx._main``: httpx's own command line (click, rich, pygments)
------------------------------------------------------------------
``import httpx`` imports ``httpx._main``, the ``httpx`` console command, which
imports click, rich and pygments whenever they are installed, and they are: Jupyter
and papermill bring them (in a kernel, where IPython has loaded pygments, about 70
modules and a tenth of the Path A step module's import). httpx's ``__init__`` wraps that import in
``try: from ._main import main / except ImportError:`` and defines a ``main`` that
explains the missing extra instead. :func:`skip_httpx_cli` marks ``httpx._main``
unavailable the same way, before httpx is first imported, so the runbook's
processes get httpx's client without its command line. The ``httpx`` command
itself runs in its own process and is unaffected; a program that imports
``rollback_helpers`` and calls ``httpx.main()`` imports httpx first.
"""

from __future__ import annotations

import sys

SKIPPED = ("rfc3987_syntax",)
HTTPX_CLI = "httpx._main"


def skip_iri_grammars() -> None:
    """Make ``rfc3987_syntax`` unavailable, unless jsonschema or it is already imported."""
    if "jsonschema" in sys.modules:
        return
    for name in SKIPPED:
        sys.modules.setdefault(name, None)  # type: ignore[arg-type]  # None: "not importable"


def skip_httpx_cli() -> None:
    """Make ``httpx._main`` unavailable, unless httpx or it is already imported."""
    if "httpx" in sys.modules:
        return
    sys.modules.setdefault(HTTPX_CLI, None)  # type: ignore[arg-type]  # None: "not importable"
