"""What every path's steps share: a cell that needs an earlier step's result."""

from __future__ import annotations

from typing import TypeVar

from rollback_helpers.errors import PreconditionFailed

T = TypeVar("T")


def require(value: T | None, step: str) -> T:
    """``value``, which the step ``step`` sets, or why this cell cannot run yet."""
    if value is None:
        raise PreconditionFailed(f"The step `{step}` has not run yet.",
                                 f"Run the `{step}` cell first (or Run All from the top).")
    return value
