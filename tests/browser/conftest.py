"""Browser fixtures: Debian's Chromium driven by Playwright against the live server.

One browser per session, a fresh context (cookies, storage) per page. When a test fails, a
screenshot of every page it opened is saved under pytest's temporary directory and its path
is added to the report.
"""

from __future__ import annotations

import os
import re

import pytest
from playwright.sync_api import Browser, Page, expect, sync_playwright

CHROMIUM = os.environ.get("CHROMIUM_PATH", "/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
MOBILE = {"width": 360, "height": 740}
DESKTOP = {"width": 1280, "height": 800}
TIMEOUT_MS = 10_000

expect.set_options(timeout=TIMEOUT_MS)


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item, call):
    """Keep each phase's report on the test item, so fixtures can tell a failure."""
    report = yield
    setattr(item, f"rep_{report.when}", report)
    return report


@pytest.fixture(scope="session")
def browser():
    with sync_playwright() as p:
        instance = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield instance
        instance.close()


@pytest.fixture
def new_page(browser: Browser, live_server, request, tmp_path):
    """Open a page in a fresh browser context: ``new_page(viewport=MOBILE)``."""
    contexts = []
    pages: list[Page] = []

    def factory(viewport: dict | None = None) -> Page:
        context = browser.new_context(
            base_url=live_server.base_url, viewport=viewport or DESKTOP, locale="en-US"
        )
        context.set_default_timeout(TIMEOUT_MS)
        contexts.append(context)
        page = context.new_page()
        pages.append(page)
        return page

    yield factory
    report = getattr(request.node, "rep_call", None)
    if report is not None and report.failed:
        name = re.sub(r"[^A-Za-z0-9_.-]+", "_", request.node.name)[:80]
        for i, page in enumerate(pages):
            if page.is_closed():
                continue
            path = tmp_path / f"{name}-{i}.png"
            try:
                page.screenshot(path=str(path), full_page=True)
            except Exception as exc:  # a broken page must not hide the test's own failure
                report.sections.append(("screenshot", f"could not save: {exc}"))
            else:
                report.sections.append(("screenshot", str(path)))
    for context in contexts:
        context.close()


@pytest.fixture
def page(new_page) -> Page:
    """A desktop-sized page in a fresh context; its base URL is the live server."""
    return new_page()
