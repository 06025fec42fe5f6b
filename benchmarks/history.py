"""Benchmark slot: ``rollback-runbook history`` over 50 records (target: ≤ 2 s).

NOT MEASURED YET — the ``history`` command does not exist. When it lands, make
:func:`measure` build a sandbox world with 50 staging deployment records (see
``github_requests._world``), time the command as an engineer runs it (alternated
rounds, median, as ``drill_vs_papermill`` does) and return ``median_seconds``;
``run_all`` and ``docs/benchmarks.md`` already have its row.
"""

from __future__ import annotations

from typing import Any

TARGET_SECONDS = 2.0
RECORDS = 50


def measure() -> dict[str, Any]:
    return {"status": "pending", "why": "the history command does not exist yet",
            "records": RECORDS, "target_seconds": TARGET_SECONDS}
