"""Step tables: rows under columns, as aligned text and as escaped HTML, shown by a Report."""

from __future__ import annotations

import pytest

from rollback_helpers.secrets import MASK, Secret
from rollback_helpers.ui.display import Report
from rollback_helpers.ui.table import Table


def test_mapping_rows_make_the_columns_in_first_seen_order() -> None:
    """Columns are the rows' keys as first seen; a key a row lacks is an empty cell."""
    table = Table([{"user": "app-user", "connected": True},
                   {"user": "migration-user", "connected": False, "error": "refused"}])
    assert table.columns == ("user", "connected", "error")
    assert table.records() == [{"user": "app-user", "connected": True, "error": None},
                               {"user": "migration-user", "connected": False, "error": "refused"}]
    assert len(table) == 2 and not table.empty


def test_sequence_rows_take_the_given_columns() -> None:
    """Tuples fill the named columns in order; a row of the wrong width is refused."""
    table = Table([("09:30", "started")], columns=["time (UTC)", "event"])
    assert table.records() == [{"time (UTC)": "09:30", "event": "started"}]
    with pytest.raises(ValueError, match="a row of 1 values for 2 columns"):
        Table([("09:30",)], columns=["time (UTC)", "event"])


def test_text_is_left_aligned_under_a_header_and_none_is_blank() -> None:
    """to_string pads every column to its widest cell, two spaces apart, without trailing blanks."""
    text = Table([{"machine": "m1", "release": 14, "note": None},
                  {"machine": "machine-2", "release": 7, "note": "new"}]).to_string(index=False)
    assert text.splitlines() == ["machine    release  note",
                                 "m1         14",
                                 "machine-2  7        new"]


def test_html_is_an_escaped_table_with_a_header_row() -> None:
    """to_html escapes cells and headers unless told not to."""
    table = Table([{"<b>": "<script>alert(1)</script>"}])
    page = table.to_html(index=False, escape=True)
    assert "<th>&lt;b&gt;</th>" in page and "<td>&lt;script&gt;alert(1)&lt;/script&gt;</td>" in page
    assert page.startswith("<table") and "<thead>" in page and "<tbody>" in page
    assert "<td><script>" in table.to_html(escape=False)


def test_map_applies_to_every_cell_and_keeps_the_columns() -> None:
    """map returns a new table; the original is unchanged."""
    table = Table([{"a": 1, "b": 2}])
    assert table.map(lambda v: v * 10).records() == [{"a": 10, "b": 20}]
    assert table.records() == [{"a": 1, "b": 2}]


def test_an_empty_table_is_empty_and_not_shown() -> None:
    """No rows (or no columns) is empty; a Report leaves it out."""
    assert Table().empty and Table([], columns=["a"]).empty
    report = Report("Nothing", table=Table())
    assert repr(report).splitlines() == [repr(report).splitlines()[0]]
    assert "<table" not in report._repr_html_()


def test_a_report_shows_a_table_with_secrets_masked() -> None:
    """A Secret in a table cell shows as the mask in the text and in the HTML."""
    report = Report("Logins", table=Table([{"user": "app-user",
                                            "password": Secret("tbl-secret-777")}]))
    for rendered in (repr(report), report._repr_html_()):
        assert "tbl-secret-777" not in rendered and MASK in rendered and "app-user" in rendered
