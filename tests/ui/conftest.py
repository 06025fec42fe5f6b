"""One Playwright driver for every browser test in the session.

Playwright's sync API runs one event loop per driver: a second ``sync_playwright()``
started while another is open (the walkthrough's page lives for the whole session)
refuses to start. So the driver and one Chromium are shared, and each test module
opens its own pages or contexts on them."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from browser_setup import CHROMIUM_ARGS, ensure_chromium


@pytest.fixture(scope="session")
def pw_driver() -> Iterator[Any]:
    """The session's Playwright driver (Chromium from Debian's packages)."""
    playwright_api = pytest.importorskip("playwright.sync_api")
    ensure_chromium()
    with playwright_api.sync_playwright() as driver:
        yield driver


@pytest.fixture(scope="session")
def chromium(pw_driver: Any) -> Iterator[Any]:
    """A headless Chromium for tests that only need pages (not a persistent profile)."""
    browser = pw_driver.chromium.launch(executable_path=str(ensure_chromium()), headless=True,
                                        args=CHROMIUM_ARGS)
    yield browser
    browser.close()
