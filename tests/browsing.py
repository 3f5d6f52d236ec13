"""A shopper in Debian's Chromium, driven by Playwright: the browser tests' shared parts.

Every test that opens a Shopper fails on a console error (a CSP violation is one), an
uncaught page error, a failed request or an error status that it did not provoke itself.
"""

import os
import re
import shutil
import tempfile
from pathlib import Path

from tests.factories import DELIVERY as ADDRESS

# The README's pictures are refreshed only when asked (SCREENSHOTS_DIR=docs/screenshots);
# otherwise they go to a throwaway folder, so a test run never dirties the work tree.
SCREENSHOTS = Path(os.environ.get("SCREENSHOTS_DIR") or tempfile.mkdtemp(prefix="storefront-screenshots-"))
DESKTOP = {"width": 1280, "height": 860}
PHONE = {"width": 390, "height": 844}
# A stock poll still in flight when its element is swapped out is cancelled by the browser, and a page
# left while a poll, the product page's own-hold look (a GET per size) or a static file is still loading
# aborts them: nothing anyone sees, so not an error.
ABORTED_ON_LEAVING = (r"^failed: .*(/api/inventory/check/\d+|/api/queue/(\d+|\d+/entries/mine|challenge)"
                      r"|/products/\d+/hold"
                      r"|/admin/drops/\d+/live|/static/\S+)"
                      r" net::ERR_ABORTED$")
CHROMIUM_ARGS = [
    "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
    "--disable-component-update", "--disable-sync", "--disable-dev-shm-usage",
]


def chromium_path() -> str:
    found = shutil.which("chromium") or shutil.which("chromium-browser")
    if not found:
        raise RuntimeError("Chromium not found: apt-get install chromium (scripts/bootstrap --services does)")
    return found


class Shopper:
    """One browser context: one visitor, with their own fingerprint and storage."""

    def __init__(self, browser, base_url: str, *, viewport=DESKTOP, javascript=True, expected=(), **context):
        self.context = browser.new_context(viewport=viewport, java_script_enabled=javascript, base_url=base_url,
                                           **context)
        self.page = self.context.new_page()
        self.problems: list[str] = []
        self.expected = [re.compile(pattern) for pattern in (*expected, ABORTED_ON_LEAVING)]
        self.page.on("console", lambda m: m.type == "error" and self._problem(f"console: {m.text}"))
        self.page.on("pageerror", lambda error: self._problem(f"page error: {error}"))
        self.page.on("requestfailed", lambda r: self._problem(f"failed: {r.url} {r.failure}"))
        self.page.on("response", lambda r: r.status >= 400 and self._problem(f"{r.status}: {r.url}"))

    def _problem(self, text: str) -> None:
        if not any(pattern.search(text) for pattern in self.expected):
            self.problems.append(text)

    def visit(self, path: str):
        self.page.goto(path)
        return self.page

    def wait_for_visitor(self) -> str:
        self.page.wait_for_selector("html[data-visitor-id]", state="attached")
        return self.page.get_attribute("html", "data-visitor-id")

    def buy(self, product_id: int):
        self.wait_for_visitor()
        self.page.click(f"#stock-{product_id} button.buy-button")
        return self.page.wait_for_selector(".hold")

    def add_to_cart(self, *products) -> None:
        """Add each product to the cart from its page, as a shopper does."""
        from playwright.sync_api import expect

        for product in products:
            page = self.visit(f"/products/{product.id}")
            self.wait_for_visitor()
            page.click("text=Add to cart")
            expect(page.locator(f"#cart-note-{product.id}")).to_contain_text("In your cart")

    def pay(self, page=None, **details) -> None:
        """Give delivery details in the payment form, as a shopper types them, and press Pay."""
        page = page or self.page
        form = page.locator("#payment-form")
        values = {**ADDRESS, **details}
        for field in ("email", "name", "line1", "line2", "postalCode", "city"):
            form.locator(f"[name={field}]").fill(values[field])
        form.locator("[name=country]").select_option(values["country"])
        form.locator("button[type=submit]").click()

    def shot(self, name: str) -> None:
        SCREENSHOTS.mkdir(parents=True, exist_ok=True)
        self.page.screenshot(path=str(SCREENSHOTS / f"{name}.png"), full_page=True)
