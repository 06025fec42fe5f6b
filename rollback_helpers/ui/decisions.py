"""Decisions: what a human (or a parameter) confirmed, who, when (UTC) and how.

Every decision is written into the notebook as an ordinary output carrying
``{"rollback_runbook": {"decisions": [...]}}`` in its metadata, which
:func:`rollback_helpers.records.notebook_io.decisions_in` reads back from headless and
interactive records alike. The widgets that make them are :mod:`.interactive`.
"""

from __future__ import annotations

import getpass
import os
import secrets
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field

from rollback_helpers.clock import utc_iso
from rollback_helpers.errors import guard_free_text
from rollback_helpers.secrets import redact
from rollback_helpers.ui.display import METADATA_KEY, Report, ReportStatus


@dataclass(frozen=True)
class Decision:
    """One human (or parameter) decision: what it confirmed, who, when (UTC), how."""

    what: str
    who: str
    at: str
    how: str            # 'button "Roll back …"', 'parameter dry_run=False', 'checkbox', …
    step: str           # the step it belongs to: "plan", "environment", "flip checklist", …
    run_id: str = ""
    id: str = field(default_factory=lambda: secrets.token_hex(4))

    def as_dict(self) -> dict[str, str]:
        return asdict(self)

    def line(self) -> str:
        return f"{self.what} — {self.how}, by {self.who} at {self.at}"

    def report(self) -> Report:
        return decision_report(f"Decision: {self.what}", [self]).fact("by", self.who).fact(
            "at (UTC)", self.at).fact("how", self.how)


def decision_report(title: str, decisions: Sequence[Decision],
                    status: ReportStatus = "decision") -> Report:
    """A report that carries ``decisions`` in its output metadata (read back by the archive)."""
    return Report(title, status=status,
                  metadata={METADATA_KEY: {"decisions": [d.as_dict() for d in decisions]}})


def make_decision(what: str, *, how: str, step: str, who: str, at: float | None = None,
                  run_id: str = "") -> Decision:
    """A decision as recorded: its text redacted, since a review's or a comment's words (not
    the operator's, so not refused) may carry a credential into the archive."""
    return Decision(redact(what), redact(who), utc_iso(time.time() if at is None else at),
                    redact(how), step, run_id)


def default_operator() -> str:
    """Who decides, when nobody said: ``$ROLLBACK_OPERATOR``, else the login name.

    The name goes into lease commits, comments and the archive: a credential in
    ``ROLLBACK_OPERATOR`` is refused (exit 2), as in any other free text.
    """
    if named := os.environ.get("ROLLBACK_OPERATOR"):
        return guard_free_text("ROLLBACK_OPERATOR", named)
    try:
        return getpass.getuser()
    except (KeyError, OSError):
        return "unknown"


Decide = Callable[[str, str], Decision]  # (what, how) -> the recorded decision
