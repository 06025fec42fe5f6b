"""A step's table: a few rows under named columns, shown as aligned text and as HTML.

The runbook's tables are small (the machines, ten records, the timeline) and are
only ever shown. A data-frame library is not needed for that, and importing
pandas (~0.4 s) in the kernel delayed the first step of every run, headless or
interactive. :class:`Table` has the members :class:`~rollback_helpers.display.Report`
uses — ``empty``, ``map``, ``to_string(index=False)``, ``to_html(index=False, escape=...)``
— with pandas' meaning, so a report shows a ``pandas.DataFrame`` just as well.

    Table([{"machine": "m1", "state": "started"}, {"machine": "m2", "state": "stopped"}])
    Table([("09:30", "started")], columns=["time (UTC)", "event"])

Rows given as mappings make the columns (their keys, in first-seen order); a
missing value and ``None`` show as an empty cell.
"""

from __future__ import annotations

import html
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any


class Table:
    def __init__(self, data: Iterable[Mapping[str, Any] | Sequence[Any]] = (),
                 columns: Sequence[str] | None = None) -> None:
        rows = list(data)
        if columns is None:
            columns = list(dict.fromkeys(key for row in rows if isinstance(row, Mapping)
                                         for key in row))
        self.columns: tuple[str, ...] = tuple(columns)
        self.rows: tuple[tuple[Any, ...], ...] = tuple(self._cells(row) for row in rows)

    def _cells(self, row: Mapping[str, Any] | Sequence[Any]) -> tuple[Any, ...]:
        if isinstance(row, Mapping):
            return tuple(row.get(column) for column in self.columns)
        if len(row) != len(self.columns):
            raise ValueError(f"a row of {len(row)} values for {len(self.columns)} columns: {row!r}")
        return tuple(row)

    @property
    def empty(self) -> bool:
        return not self.rows or not self.columns

    def __len__(self) -> int:
        return len(self.rows)

    def records(self) -> list[dict[str, Any]]:
        return [dict(zip(self.columns, row, strict=True)) for row in self.rows]

    def map(self, func: Callable[[Any], Any]) -> Table:
        """A table of ``func(value)`` for every cell (``DataFrame.map``)."""
        return Table([tuple(func(value) for value in row) for row in self.rows], self.columns)

    def to_string(self, index: bool = False) -> str:
        """Left-aligned columns, two spaces apart, under a header line."""
        lines = [self.columns, *(tuple(_text(v) for v in row) for row in self.rows)]
        widths = [max(len(line[i]) for line in lines) for i in range(len(self.columns))]
        return "\n".join("  ".join(cell.ljust(width) for cell, width in zip(line, widths, strict=True))
                         .rstrip() for line in lines)

    def to_html(self, index: bool = False, escape: bool = True) -> str:
        """An HTML ``<table>`` with pandas' class, so notebook front ends style it alike."""
        def cell(value: Any) -> str:
            text = _text(value)
            return html.escape(text) if escape else text

        head = "".join(f"<th>{cell(c)}</th>" for c in self.columns)
        body = "".join("<tr>" + "".join(f"<td>{cell(v)}</td>" for v in row) + "</tr>\n"
                       for row in self.rows)
        return (f'<table border="1" class="dataframe">\n<thead><tr style="text-align: left;">'
                f"{head}</tr></thead>\n<tbody>\n{body}</tbody>\n</table>")

    def __repr__(self) -> str:
        return self.to_string()

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Table) and (self.columns, self.rows) == (other.columns, other.rows)


def _text(value: Any) -> str:
    return "" if value is None else str(value)
