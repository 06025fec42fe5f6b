"""How a step shows itself in a notebook: a titled report, a few facts, a table.

Reports render as HTML for people and as plain text for the archived record's
text view; both pass through :func:`redact` so nothing secret can be shown. A
report may carry output ``metadata`` (a decision, a run id): it is saved with the
output in the notebook, where the archive reads it back.
"""

from __future__ import annotations

import html
import sys
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal

from rollback_helpers.errors import RollbackError
from rollback_helpers.secrets import redact

if TYPE_CHECKING:
    import pandas as pd

    from rollback_helpers.ui.table import Table

METADATA_KEY = "rollback_runbook"  # notebook and output metadata written by the runbook
ReportStatus = Literal["ok", "skipped", "stopped", "warning", "failed", "info", "decision",
                       "pending"]
ICONS: dict[ReportStatus, str] = {"ok": "✅", "skipped": "⏭️", "stopped": "🛑", "warning": "⚠️",
                                  "failed": "❌", "info": "ℹ️", "decision": "✍️", "pending": "⏳"}


@dataclass
class Report:
    title: str
    status: ReportStatus = "ok"
    facts: list[tuple[str, Any]] = field(default_factory=list)
    table: Table | pd.DataFrame | None = None  # shown with to_string / to_html
    notes: list[str] = field(default_factory=list)
    code: str = ""  # a command for a human to read (never run by the runbook)
    metadata: dict[str, Any] = field(default_factory=dict)  # saved with the notebook output

    def fact(self, key: str, value: Any) -> Report:
        self.facts.append((key, value))
        return self

    def note(self, text: str) -> Report:
        self.notes.append(text)
        return self

    def _repr_mimebundle_(self, include: Any = None, exclude: Any = None
                          ) -> tuple[dict[str, Any], dict[str, Any]]:
        # Only the metadata: IPython fills text/plain and text/html from the methods below.
        return {}, dict(self.metadata)

    def __repr__(self) -> str:
        lines = [f"{ICONS.get(self.status, '')} {self.title}"]
        width = max((len(k) for k, _ in self.facts), default=0)
        lines += [f"  {k.ljust(width)}  {v}" for k, v in self.facts]
        if self.table is not None and not self.table.empty:
            lines += ["", self.table.to_string(index=False)]
        if self.code:
            lines += ["", *("    " + line for line in self.code.splitlines())]
        lines += [f"  • {n}" for n in self.notes]
        return redact("\n".join(lines))

    def _repr_html_(self) -> str:
        def esc(value: Any) -> str:  # mask first: escaping would hide a secret from redact
            return html.escape(redact(str(value)))

        parts = [f"<h4>{ICONS.get(self.status, '')} {esc(self.title)}</h4>"]
        if self.facts:
            rows = "".join(f"<tr><th style='text-align:left'>{esc(k)}</th>"
                           f"<td style='text-align:left'><code>{esc(v)}</code></td></tr>"
                           for k, v in self.facts)
            parts.append(f"<table>{rows}</table>")
        if self.table is not None and not self.table.empty:
            masked = self.table.map(lambda v: redact(str(v)))
            parts.append(masked.to_html(index=False, escape=True))
        if self.code:
            parts.append(f"<pre>{esc(self.code)}</pre>")
        if self.notes:
            parts.append("<ul>" + "".join(f"<li>{esc(n)}</li>" for n in self.notes) + "</ul>")
        return redact("\n".join(parts))


def short(digest: str) -> str:
    """``sha256:9f2c1a0b3d4e`` — the first 12 hex digits, enough to tell images apart."""
    return digest[:19] if digest.startswith("sha256:") else digest


def explain_failures_in_notebooks() -> None:
    """In a kernel: a runbook error shows as its explanation, not as a traceback.

    The cell still fails (papermill stops and records ``ename``/``evalue``, so the
    exit code follows the error class); only the traceback is left out, because the
    message already names the thing and the next step. Any other exception is a bug
    and keeps its full traceback.
    """
    ipython = sys.modules.get("IPython")  # a kernel has loaded it; without it there is no shell
    shell = ipython.get_ipython() if ipython is not None else None
    if shell is not None:
        shell.set_custom_exc((RollbackError,), _explained)


def _explained(shell: Any, etype: type[BaseException], value: BaseException, tb: Any,
               tb_offset: int | None = None) -> list[str]:
    structured = [f"{etype.__name__}: {redact(str(value))}"]
    shell._showtraceback(etype, value, structured)
    return structured
