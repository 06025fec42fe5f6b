"""The stats page in Debian's Chromium: the table, the chart drawn (an embedded PNG, nothing
fetched), one row per incident; its screenshot is docs/images/stats.png (docs/stats.md)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from browser_setup import REPO

from rollback_helpers.records import stats, stats_report
from rollback_helpers.records.store import open_store
from tests.records.history_builder import archive
from tests.records.test_stats import PRODUCTION, STAGING, deployed, history

pytestmark = pytest.mark.browser
playwright_api = pytest.importorskip("playwright.sync_api")
expect = playwright_api.expect
PICTURE = REPO / "docs" / "images" / "stats.png"


@pytest.fixture(scope="module")
def page(chromium: Any) -> Iterator[Any]:
    opened = chromium.new_page(viewport={"width": 1200, "height": 1100})
    yield opened
    opened.close()


def figures(tmp_path: Path) -> dict[str, Any]:
    """The test history's figures (the same 22 runs as tests/records/test_stats.py)."""
    store = open_store(str(tmp_path / "incidents"))
    for n, run in enumerate(history()):
        archive(store, tmp_path, f"{n:03d}.ipynb", run)
    deploys = [stats.Deploy(base + i, env, deployed(env, i), env == "staging" and i == 50)
               for env, base, count in (("staging", 2000, STAGING),
                                        ("production", 3000, PRODUCTION))
               for i in range(count)]
    return stats.compute(deploys, stats.read_runs(store), envs=["staging", "production"],
                         period=stats.Period())


def test_the_stats_page_shows_its_table_chart_and_incidents(page: Any, tmp_path: Path) -> None:
    """Opened from a file: the summary rows, a chart the browser decoded, nine incidents."""
    rendering = tmp_path / "stats.html"
    rendering.write_text(stats_report.as_html(figures(tmp_path), "Rollback stats"))
    requested: list[str] = []
    page.on("request", lambda request: requested.append(request.url))
    page.goto(rendering.as_uri())
    first = page.locator("table.stats").first
    expect(first.locator("tbody tr")).to_have_count(2)
    expect(first.locator("tbody tr").first).to_contain_text("8.3%")
    chart = page.locator("img[alt='recovery time over time']")
    assert chart.evaluate("img => img.complete && img.naturalWidth") == 900
    expect(page.locator("table.stats").nth(1).locator("tbody tr")).to_have_count(9)
    assert [url for url in requested if not url.startswith(("file://", "data:"))] == []
    PICTURE.parent.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(PICTURE), full_page=True)
    assert PICTURE.stat().st_size > 20_000
