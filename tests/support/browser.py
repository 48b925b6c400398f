"""A real headless browser for the console's tests: Debian's Chromium driven by
Playwright. Missing, it fails the test with the command that installs it. Pages can be
watched for Content Security Policy violations."""

from __future__ import annotations

import os
import shutil
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

import pytest
from playwright.async_api import Browser, ConsoleMessage, Page, Response, async_playwright


def chromium_path() -> str:
    for candidate in (os.environ.get("VITALS_TEST_CHROMIUM"), "/usr/bin/chromium"):
        if candidate and os.access(candidate, os.X_OK):
            return candidate
    found = shutil.which("chromium") or shutil.which("chromium-browser")
    if found is None:
        pytest.fail(
            "Chromium is not installed; run: deploy/local/browser.sh install", pytrace=False
        )
    return found


@asynccontextmanager
async def chromium() -> AsyncIterator[Browser]:
    async with async_playwright() as playwright:
        browser = await playwright.chromium.launch(
            executable_path=chromium_path(), args=["--no-sandbox"]
        )
        try:
            yield browser
        finally:
            await browser.close()


# Runs in every document before its own scripts: each violation of its Content
# Security Policy, and the document itself (so a watch that saw nothing did run).
REPORT_TO_THE_TEST = """
window.__vitalsCsp("document", location.href);
document.addEventListener("securitypolicyviolation", (event) => {
  const what = `${event.effectiveDirective} blocked ${event.blockedURI}`;
  const where = `${event.documentURI} (${event.sourceFile}:${event.lineNumber})`;
  window.__vitalsCsp("violation", `${what} in ${where}`);
});
"""


@dataclass
class CspWatch:
    """What a page's Content Security Policy did, on every document the page showed:
    violations (events, and Chromium's console errors about the policy), the documents
    watched, and the pages of ``origin`` that came without a policy."""

    origin: str
    documents: list[str] = field(default_factory=list)
    violations: list[str] = field(default_factory=list)
    unprotected: list[str] = field(default_factory=list)

    async def watch(self, page: Page) -> None:
        await page.expose_binding("__vitalsCsp", self._reported)
        await page.add_init_script(REPORT_TO_THE_TEST)
        page.on("console", self._console)
        page.on("response", self._response)

    def _reported(self, _source: Any, kind: str, text: str) -> None:
        (self.documents if kind == "document" else self.violations).append(text)

    def _console(self, message: ConsoleMessage) -> None:
        if message.type == "error" and "Content Security Policy" in message.text:
            self.violations.append(message.text)

    def _response(self, response: Response) -> None:
        mine = response.url.startswith(self.origin) and response.request.is_navigation_request()
        if mine and "content-security-policy" not in response.headers:
            self.unprotected.append(response.url)

    async def assert_clean(self, page: Page) -> None:
        """No violation on any document so far, each page of ``origin`` under a policy."""
        # One more turn of the page's event loop, for the last document's reports still
        # queued (Chromium's console error about a violation comes at once anyway).
        await page.evaluate("() => new Promise((done) => setTimeout(done))")
        assert self.documents, "the watch ran in no document"
        assert self.violations == [], f"CSP violations on {self.documents}"
        assert self.unprotected == [], "pages without a Content-Security-Policy"


@asynccontextmanager
async def csp_checked(browser: Browser, origin: str) -> AsyncIterator[Page]:
    """A new page, checked when the block ends: no Content Security Policy violation on
    any document it showed, and every page of ``origin`` came with a policy."""
    page = await browser.new_page()
    watch = CspWatch(origin)
    await watch.watch(page)
    yield page
    await watch.assert_clean(page)
