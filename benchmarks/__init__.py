"""The runbook's benchmarks: figures, not tests. ``python -m benchmarks`` runs them all.

Each module measures one figure of the performance targets and returns a dict; :mod:`benchmarks.run_all`
writes every dict to ``benchmarks/results/<name>.json`` and regenerates
``docs/benchmarks.md`` from them.
"""
