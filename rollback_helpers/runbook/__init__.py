"""The steps of each runbook path: what a notebook cell calls (Path A, Path B, verify-flip, triage).

A path's notebook starts it with its parameters as one mapping:
``run = path_a.start(parameters_of(globals()))``.
"""

from rollback_helpers.domain.parameters import parameters_of
from rollback_helpers.ui.display import explain_failures_in_notebooks

__all__ = ["parameters_of"]

explain_failures_in_notebooks()
