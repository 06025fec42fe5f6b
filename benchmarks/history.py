"""``rollback-runbook history`` over 50+ records (target: ≤ 2 s), for the suite in ``run_all``.

The measurement is :mod:`benchmarks.records_history`: one real drill's record
copied into a local folder and a loopback S3 store, then listed as the command
line lists it.
"""

from __future__ import annotations

from typing import Any

from benchmarks import records_history

TARGET_SECONDS = 2.0
RECORDS = 50


def measure() -> dict[str, Any]:
    return dict(records_history.measure(records=RECORDS, repeat=3))
