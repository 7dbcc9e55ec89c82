"""Headless Debian Chromium for the dashboard's browser tests (Playwright drives it)."""

from __future__ import annotations

import contextlib
import os
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
ARTIFACTS = Path(__file__).resolve().parents[2] / "build" / "test-artifacts"

try:
    from playwright.sync_api import Page, expect, sync_playwright
except ImportError:  # pragma: no cover - the test extras install it
    Page = expect = sync_playwright = None  # type: ignore[assignment,misc]

# Marks for a module of browser tests: they need Playwright's package and Debian's chromium.
browser_tests = [
    pytest.mark.slow,
    pytest.mark.skipif(sync_playwright is None,
                       reason="playwright is not installed (pip install -e '.[test]')"),
    pytest.mark.skipif(not os.access(CHROMIUM, os.X_OK),
                       reason="Debian chromium is not installed (scripts/bootstrap.sh --test installs it)"),
]


@contextlib.contextmanager
def chromium_page(width: int = 1400, height: int = 1000) -> Iterator[Page]:
    """A page in headless Debian Chromium, closed on the way out; screenshots go to ARTIFACTS."""
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    assert sync_playwright is not None
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
        try:
            yield browser.new_page(viewport={"width": width, "height": height})
        finally:
            browser.close()


@contextlib.contextmanager
def signed_in(base_url: str, token: str, path: str = "/ui/", *, width: int = 1400,
              height: int = 1000) -> Iterator[Page]:
    """A page signed in to the dashboard at `base_url` with `token`, showing `path`."""
    with chromium_page(width, height) as page:
        page.goto(f"{base_url}/ui/login?next={path}")
        page.fill("#token", token)
        page.click("button[type=submit]")
        page.wait_for_url(base_url + path)
        yield page
