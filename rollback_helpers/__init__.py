"""The deployment-rollback runbook's helpers: everything a notebook cell calls."""

__version__ = "0.1.0"
