"""Reports: the same facts, table, notes and code in text and HTML, escaped and redacted."""

from __future__ import annotations

from collections.abc import Callable

import pandas as pd
import pytest

from rollback_helpers.secrets import MASK, Secret
from rollback_helpers.ui.display import ICONS, Report, short

DIGEST = "sha256:9f2c1a0b3d4e" + "0" * 52


def full_report() -> Report:
    table = pd.DataFrame({"issue": [42, 41], "image": ["img-v42", "img-v41"],
                          "state": ["current", "target"]})
    return (Report("Rollback plan for staging", status="warning", table=table,
                   code="flyctl deploy -a renewa-one-staging \\\n  --image img-v41")
            .fact("environment", "staging")
            .fact("target issue", 41)
            .note("Machines restart one at a time.")
            .note("Dry run: nothing was changed."))


def test_fact_and_note_chain_and_keep_order() -> None:
    """fact() and note() return the report and keep insertion order."""
    report = Report("t").fact("a", 1).fact("b", 2).note("n1").note("n2")
    assert report.facts == [("a", 1), ("b", 2)]
    assert report.notes == ["n1", "n2"]


def test_text_shows_title_facts_table_code_and_notes() -> None:
    """The plain-text rendering holds every part of the report."""
    text = repr(full_report())
    assert text.splitlines()[0] == f"{ICONS['warning']} Rollback plan for staging"
    assert "  environment   staging" in text  # keys padded to the longest
    assert "  target issue  41" in text
    assert "img-v42" in text and "img-v41" in text and "current" in text and "target" in text
    assert "    flyctl deploy -a renewa-one-staging \\" in text
    assert "      --image img-v41" in text
    assert "  • Machines restart one at a time." in text
    assert "  • Dry run: nothing was changed." in text


def test_html_shows_title_facts_table_code_and_notes() -> None:
    """The HTML rendering holds every part of the report, in its own element."""
    page = full_report()._repr_html_()
    assert f"<h4>{ICONS['warning']} Rollback plan for staging</h4>" in page
    assert "<th style='text-align:left'>environment</th>" in page
    assert "<code>staging</code>" in page and "<code>41</code>" in page
    assert "<td>img-v42</td>" in page and "<td>target</td>" in page
    assert "<pre>flyctl deploy -a renewa-one-staging \\\n  --image img-v41</pre>" in page
    assert "<li>Machines restart one at a time.</li>" in page


def test_empty_parts_are_left_out() -> None:
    """A bare report renders only its title; an empty table is not shown."""
    report = Report("Nothing to do", status="skipped", table=pd.DataFrame())
    assert repr(report) == f"{ICONS['skipped']} Nothing to do"
    assert report._repr_html_() == f"<h4>{ICONS['skipped']} Nothing to do</h4>"


def test_unknown_status_has_no_icon() -> None:
    """A status without an icon still renders the title."""
    assert repr(Report("Odd", status="mystery")) == " Odd"


SCRIPT = "<script>alert('x')</script>"


@pytest.mark.parametrize("where", ["title", "fact key", "fact value", "note", "code", "table"])
def test_html_escapes_markup_everywhere(where: str) -> None:
    """Markup in any part of a report is shown as text, never run as HTML."""
    report = Report(SCRIPT if where == "title" else "t", code=SCRIPT if where == "code" else "")
    if where == "fact key":
        report.fact(SCRIPT, "v")
    if where == "fact value":
        report.fact("k", SCRIPT)
    if where == "note":
        report.note(SCRIPT)
    if where == "table":
        report.table = pd.DataFrame({"cell": [SCRIPT]})
    page = report._repr_html_()
    assert "<script>" not in page
    assert "&lt;script&gt;" in page


DSN = "postgresql://app-user:fact-pw-4321@db.internal:5432/fly-db"
MASKED_DSN = f"postgresql://app-user:{MASK}@db.internal:5432/fly-db"


@pytest.mark.parametrize("render", [repr, Report._repr_html_], ids=["text", "html"])
def test_secret_looking_url_in_a_fact_is_masked(render: Callable[[Report], str]) -> None:
    """A connection string with a password shown as a fact is masked in both renderings."""
    shown = render(Report("Cluster").fact("DATABASE_URL", DSN))
    assert "fact-pw-4321" not in shown
    assert MASKED_DSN in shown


@pytest.mark.parametrize("render", [repr, Report._repr_html_], ids=["text", "html"])
def test_secrets_in_notes_code_and_table_are_masked(render: Callable[[Report], str]) -> None:
    """Passwords in notes, code, table cells and Secret values are masked in both renderings."""
    report = Report("Login", code=f"psql {DSN}",
                    table=pd.DataFrame({"url": [DSN], "token": [Secret("tbl-secret-777")]}))
    report.note(f"connect with {DSN}").fact("password", Secret("fact-secret-888"))
    shown = render(report)
    for leaked in ("fact-pw-4321", "tbl-secret-777", "fact-secret-888"):
        assert leaked not in shown
    assert MASKED_DSN in shown


def test_known_secret_with_html_special_characters_is_masked_in_html() -> None:
    """A value once wrapped in a Secret is masked in HTML even if it contains & or quotes."""
    Secret("s3cr3t'pw&more")
    report = Report("Leak?").fact("stderr", "auth failed for s3cr3t'pw&more")
    assert "s3cr3t" not in repr(report)
    assert "s3cr3t" not in report._repr_html_()


def test_short_digest_keeps_twelve_hex_digits() -> None:
    """short() cuts a digest to sha256: plus 12 hex digits and leaves other text alone."""
    assert short(DIGEST) == "sha256:9f2c1a0b3d4e"
    assert short("not-a-digest") == "not-a-digest"
