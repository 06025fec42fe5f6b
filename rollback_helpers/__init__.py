"""The deployment-rollback runbook's helpers: everything a notebook cell calls."""

from rollback_helpers.import_guards import defer_idna, skip_httpx_cli, skip_iri_grammars
from rollback_helpers.version import __version__

__all__ = ["__version__"]

skip_iri_grammars()  # before anything imports nbformat/jsonschema: see import_guards
skip_httpx_cli()  # before anything imports httpx: its command line is not the runbook's
defer_idna()  # before anything imports httpx: its tables load for a non-ASCII host only
