"""The steps of each runbook path: what a notebook cell calls (Path A, Path B, verify-flip, triage)."""
