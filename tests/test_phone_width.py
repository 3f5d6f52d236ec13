"""Every page fits a 360-px phone screen: no sideways scrolling, the shopper's pages and the
owner's alike (wide tables scroll inside their own box). Measured in Chromium as the
document's scrollWidth, the payment form open, the admin's pages signed in. And axe-core
(tests/axe/, vendored from npm by scripts/vendor-static.sh) finds no violation on any of them."""

import re
from pathlib import Path

import pytest
from playwright.sync_api import expect

from storefront.catalog.models import Product
from storefront.extensions import db
from storefront.listings.seed import seed_demo_catalogue
from tests.test_admin import PASSWORD

NARROW = {"width": 360, "height": 740}
WIDE = {"width": 1280, "height": 860}
AXE = (Path(__file__).resolve().parent / "axe" / "axe.min.js").read_text(encoding="utf-8")


def page_width(page) -> int:
    page.wait_for_load_state("networkidle")
    # The page as the shopper sees it: once the visitor is known, the parts asked for with their id
    # (a hold, a cart, orders) have come. Leaving before would cancel them in flight (and measure less).
    page.wait_for_selector("html[data-visitor-id]", state="attached")
    page.wait_for_function("!document.querySelector('.htmx-request')")
    return page.evaluate("Math.max(document.documentElement.scrollWidth, document.body.scrollWidth)")


def axe_violations(page) -> list[str]:
    """axe-core's violations on the page as it stands (evaluated through the browser's protocol,
    which the page's CSP does not govern): ``rule: target`` for each node."""
    found = page.evaluate(AXE + "\n;axe.run(document).then(r => r.violations.flatMap("
                          "v => v.nodes.map(n => v.id + ': ' + n.target.join(' '))))")
    return found


# Words broken to fit (issue 42: the admin's stock read "4" over "0", its orders one letter a line):
# no element may break words anywhere, and no word in a table is laid out over two lines.
BROKEN_WORDS = """() => {
    const found = [];
    for (const el of document.querySelectorAll("body *")) {
        const style = getComputedStyle(el);
        if (style.overflowWrap === "anywhere" || style.wordBreak === "break-all") found.push("breaks anywhere: " + el.tagName + "." + el.className);
    }
    // A word of a table's cell laid out over two lines (its text's range has two boxes) was broken.
    const walker = document.createTreeWalker(document.body, NodeFilter.SHOW_TEXT);
    for (let node = walker.nextNode(); node; node = walker.nextNode()) {
        const cell = node.parentElement && node.parentElement.closest("td, th");
        if (!cell || !cell.offsetParent || node.parentElement.closest(".visually-hidden")) continue;
        for (const match of node.textContent.matchAll(/\\S+/g)) {
            const range = document.createRange();
            range.setStart(node, match.index);
            range.setEnd(node, match.index + match[0].length);
            const lines = new Set([...range.getClientRects()].filter(r => r.width > 0).map(r => Math.round(r.top)));
            if (lines.size > 1) { found.push("a word broken in its cell: " + match[0]); break; }
        }
    }
    return found;
}"""


def measure(page, name: str, widths: dict, violations: dict) -> None:
    widths[name] = page_width(page)
    found = axe_violations(page) + page.evaluate(BROKEN_WORDS)
    if found:
        violations[name] = found


@pytest.fixture
def seeded_store(store):
    seed_demo_catalogue()
    return store(ADMIN_PASSWORD=PASSWORD)


@pytest.mark.parametrize("viewport", [NARROW, WIDE], ids=["360 px", "1280 px"])
def test_the_shoppers_pages_fit_the_screen_and_pass_axe(seeded_store, shopper, viewport):
    visitor = shopper(seeded_store, viewport=viewport)
    drop = db.session.query(Product).filter_by(sku="RUNNER-SPRING").one()
    widths, violations = {}, {}
    for name, path in (("catalogue", "/"), ("product", "/products/2"), ("waiting drop", f"/products/{drop.id}")):
        visitor.visit(path)
        measure(visitor.page, name, widths, violations)
    # The waiting drop says its start once, above its sizes; each size counts down on its own.
    page = visitor.visit(f"/products/{drop.id}")
    expect(page.locator(".options .stock").first).to_contain_text("Opens in")
    assert page.locator("time.starts-at:visible").count() == 1
    assert page.locator(".options .stock time.countdown:visible").count() == 3
    page = visitor.visit("/products/2")
    visitor.buy(2)
    expect(page.locator("#payment-form")).to_be_visible()
    measure(page, "payment form", widths, violations)
    hold_id = page.locator(".hold").first.get_attribute("id").removeprefix("hold-")
    visitor.visit(f"/reservations/{hold_id}")
    expect(visitor.page.locator("#payment-form")).to_be_visible()
    measure(visitor.page, "hold page", widths, violations)
    visitor.pay()
    expect(visitor.page.locator(".hold-completed")).to_be_visible()
    for name, path in (("orders", "/orders"), ("order", f"/orders/{hold_id}"), ("cart", "/cart")):
        visitor.visit(path)
        measure(visitor.page, name, widths, violations)
    assert {name: width for name, width in widths.items() if width > viewport["width"]} == {}
    assert violations == {}


@pytest.mark.parametrize("viewport", [NARROW, WIDE], ids=["360 px", "1280 px"])
def test_the_owners_pages_fit_the_screen_and_pass_axe(seeded_store, shopper, viewport):
    owner = shopper(seeded_store, viewport=viewport, http_credentials={"username": "admin", "password": PASSWORD})
    drop = db.session.query(Product).filter_by(sku="RUNNER-SPRING").one()
    widths, violations = {}, {}
    for name, path in (("dashboard", "/admin/"), ("products", "/admin/products"),
                       ("product", f"/admin/products/{drop.id}"), ("orders", "/admin/orders"),
                       ("holds", "/admin/holds"), ("payments", "/admin/payments"),
                       ("drop's live view", f"/admin/drops/{drop.id}")):
        owner.visit(path)
        assert not re.search(r"Authentication required", owner.page.content())
        measure(owner.page, name, widths, violations)
    assert {name: width for name, width in widths.items() if width > viewport["width"]} == {}
    assert violations == {}
