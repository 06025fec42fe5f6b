"""A rendered record in Debian's Chromium: the outcome banner is what a reader sees first, the
code appears only on request, and the page fetches nothing from the network."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import nbformat
import pytest
from browser_setup import CHROMIUM_ARGS, ensure_chromium

from rollback_helpers.run.record_render import render_html
from rollback_helpers.ui.display import METADATA_KEY

pytestmark = pytest.mark.browser
playwright_api = pytest.importorskip("playwright.sync_api")
expect = playwright_api.expect


def failed_record() -> bytes:
    nb = nbformat.v4.new_notebook()
    cell = nbformat.v4.new_code_cell("run.watch()  # CELL-CODE")
    cell.outputs = [nbformat.v4.new_output("stream", name="stdout", text="watching run 7000011\n")]
    nb.cells = [nbformat.v4.new_markdown_cell("## Watch the workflow run"), cell]
    nb.metadata[METADATA_KEY] = {
        "path": "path-a", "env": "staging", "exit_code": 5, "outcome": "workflow-failed",
        "dry_run": False, "mode": "headless", "failed_step": "Watch the workflow run",
        "parameters": {"env": "staging"}, "decisions": []}
    return nbformat.writes(nb).encode()


@pytest.fixture
def page(tmp_path: Path) -> Iterator[Any]:
    chromium = ensure_chromium()
    with playwright_api.sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=str(chromium), headless=True,
                                     args=CHROMIUM_ARGS)
        yield browser.new_page(viewport={"width": 1200, "height": 900})
        browser.close()


def test_a_rendering_opens_with_its_outcome_banner(page: Any, tmp_path: Path) -> None:
    """The banner says the outcome, at the top of the page; the code shows after the toggle."""
    rendering = tmp_path / "record.html"
    rendering.write_text(render_html(failed_record()))
    requested: list[str] = []
    page.on("request", lambda request: requested.append(request.url))
    page.goto(rendering.as_uri())
    banner = page.locator("#rb-outcome")
    expect(banner).to_have_text("WORKFLOW-FAILED: path-a on staging (live, headless), exit code 5, "
                                "at step “Watch the workflow run”")
    box = banner.bounding_box()
    assert box is not None and box["y"] < 100  # the first thing on the page
    assert "rgb(252, 232, 230)" in banner.evaluate("e => getComputedStyle(e).backgroundColor")
    code = page.get_by_text("CELL-CODE")
    expect(code).to_be_hidden()
    expect(page.get_by_text("watching run 7000011")).to_be_visible()
    page.get_by_text("Show the cells' code").click()
    expect(code).to_be_visible()
    assert [url for url in requested if not url.startswith("file://")] == []
