"""``rollback-runbook``: the command line around the notebooks (drill, run, lab, …)."""
