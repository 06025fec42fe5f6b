"""How a failed cell becomes the archive's outcome: the one outcome table of the error tree."""

from __future__ import annotations

from pathlib import Path

import pytest

from rollback_helpers.errors import OUTCOMES
from rollback_helpers.run.archive import failed_at

COMMON = {"path": "path-a", "env": "staging", "archive": "a.ipynb"}


@pytest.mark.parametrize(("ename", "exit_code"), [("ValueError", 1), ("WorkflowFailed", 5),
                                                  ("RollbackError", 1), ("BadInput", 2)])
def test_a_failed_cell_archives_its_codes_one_outcome(tmp_path: Path, ename: str,
                                                      exit_code: int) -> None:
    """An error that is not ours (a bug) archives exit 1 as OUTCOMES[1], as ours do."""
    outcome = failed_at(ename, "boom", 0, tmp_path / "missing.ipynb", dict(COMMON))
    assert outcome.exit_code == exit_code
    assert outcome.outcome == OUTCOMES[exit_code]
    assert outcome.error == f"{ename}: boom"
