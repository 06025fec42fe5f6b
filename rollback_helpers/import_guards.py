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

``idna``: the IDNA tables, loaded when a host name needs them
--------------------------------------------------------------
httpx imports ``idna`` at module level, and ``idna`` loads its Unicode tables
(``idna.idnadata``) as it is imported: about a tenth of the Path A step module's
import in a kernel, for host names that are all ASCII (httpx calls ``idna`` only
for a non-ASCII host or an ``xn--`` label). :func:`defer_idna` puts a stand-in
module under the name ``idna`` before httpx is first imported; on its first
attribute read (PEP 562's module ``__getattr__``) it imports the real ``idna``,
which takes its place in ``sys.modules``, and copies its names, so an IDN host
works exactly as before. (The standard library's ``importlib.util.LazyLoader``
cannot do this on Python 3.11: the ``import idna`` statement itself reads the
module's ``__spec__``, which loads it.) A scan of ``sys.modules`` that reads
each module's ``__file__``, as :func:`inspect.getmodule` does in the kernel, finds
no such name on the stand-in instead of loading it. A process that imported
``idna`` or httpx already is left as it is.
"""

from __future__ import annotations

import importlib
import importlib.util
import sys
import types
from typing import Any

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



class _Deferred(types.ModuleType):
    """A module's stand-in: the real module is imported on the first attribute read."""

    def __getattr__(self, attr: str) -> Any:
        if attr.startswith("__") and attr.endswith("__") and attr != "__path__":
            # What a scan of sys.modules reads (inspect.getmodule reads each ``__file__``): not a use.
            raise AttributeError(f"module {self.__name__!r} is not loaded yet: no {attr}")
        if sys.modules.get(self.__name__) is self:
            del sys.modules[self.__name__]
        real = importlib.import_module(self.__name__)
        self.__dict__.update(real.__dict__)  # later reads find the names without this hook
        return getattr(real, attr)


def defer_idna() -> None:
    """Make ``idna`` load on first use, unless it or httpx is imported, or it is not installed."""
    if "idna" in sys.modules or "httpx" in sys.modules or importlib.util.find_spec("idna") is None:
        return
    sys.modules["idna"] = _Deferred("idna")
