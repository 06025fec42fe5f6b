"""A tampered record's page runs none of its scripts in a real browser (Chromium, Playwright)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import nbformat
import pytest

from rollback_helpers.records.render import render_html
from rollback_helpers.ui.display import METADATA_KEY

pytestmark = pytest.mark.browser
playwright_api = pytest.importorskip("playwright.sync_api")

ATTACKS = [
    "<script>document.title = 'pwned'; window.pwned = 1</script>",
    "<img src=x onerror=\"document.title = 'pwned'; window.pwned = 1\">",
    "<svg onload=\"window.pwned = 1\"></svg>",
    "<a href=\"javascript:window.pwned = 1\" id=\"rb-link\">click</a>",
]


def tampered_record() -> bytes:
    """A record whose markdown, HTML output, JavaScript output and parameters carry scripts."""
    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_markdown_cell("# Run\n\n" + "\n".join(ATTACKS))]
    code = nbformat.v4.new_code_cell("print('hi')")
    code.outputs = [
        nbformat.v4.new_output("display_data", data={"text/html": "\n".join(ATTACKS),
                                                     "text/plain": "x"}),
        nbformat.v4.new_output("display_data", data={
            "application/javascript": "window.pwned = 1; document.title = 'pwned'"}),
    ]
    nb.cells.append(code)
    nb.metadata[METADATA_KEY] = {"path": "path-a", "env": "staging", "exit_code": 0,
                                 "parameters": {"reason": ATTACKS[0]}}
    return nbformat.writes(nb).encode()  # type: ignore[no-untyped-call,no-any-return]


def test_a_script_in_a_record_does_not_run_in_the_rendered_page(tmp_path: Path,
                                                               chromium: Any) -> None:
    page_file = tmp_path / "record.html"
    page_file.write_text(render_html(tampered_record(), title="tampered"), encoding="utf-8")
    page = chromium.new_page()
    try:
        page.goto(page_file.as_uri())
        page.wait_for_load_state("load")
        assert page.evaluate("window.pwned") is None
        assert page.evaluate("[...document.querySelectorAll('a')]"
                             ".every(a => !a.href.startsWith('javascript:'))")
        assert page.title() != "pwned"
        assert "Run" in page.inner_text("body")  # the page itself still reads
    finally:
        page.close()
