"""The deployment-rollback runbook's helpers: everything a notebook cell calls."""

from rollback_helpers.import_guards import skip_httpx_cli, skip_iri_grammars
from rollback_helpers.version import __version__

__all__ = ["__version__"]

skip_iri_grammars()  # before anything imports nbformat/jsonschema: see import_guards
skip_httpx_cli()  # before anything imports httpx: its command line is not the runbook's
