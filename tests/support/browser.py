"""Headless Debian Chromium for the dashboard's browser tests (Playwright drives it)."""

from __future__ import annotations

import os
import shutil
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
