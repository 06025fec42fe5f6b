"""The steps of each runbook path: what a notebook cell calls (Path A, Path B, verify-flip, triage)."""

from rollback_helpers.ui.display import explain_failures_in_notebooks

explain_failures_in_notebooks()
