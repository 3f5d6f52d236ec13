"""Every page fits a 360-px phone screen: no sideways scrolling, the shopper's pages and the
owner's alike (wide tables scroll inside their own box). Measured in Chromium as the
document's scrollWidth, the payment form open, the admin's pages signed in."""

import re

import pytest
from playwright.sync_api import expect

from storefront.catalog.models import Product
from storefront.extensions import db
from storefront.listings.seed import seed_demo_catalogue
from tests.test_admin import PASSWORD

NARROW = {"width": 360, "height": 740}


def page_width(page) -> int:
    page.wait_for_load_state("networkidle")
    return page.evaluate("Math.max(document.documentElement.scrollWidth, document.body.scrollWidth)")


@pytest.fixture
def seeded_store(store):
    seed_demo_catalogue()
    return store(ADMIN_PASSWORD=PASSWORD)


def test_the_shoppers_pages_fit_a_360_px_screen(seeded_store, shopper):
    visitor = shopper(seeded_store, viewport=NARROW)
    drop = db.session.query(Product).filter_by(sku="RUNNER-SPRING").one()
    widths = {}
    for name, path in (("catalogue", "/"), ("product", "/products/2"), ("waiting drop", f"/products/{drop.id}")):
        visitor.visit(path)
        widths[name] = page_width(visitor.page)
    # The waiting drop says its start once, above its sizes; each size counts down on its own.
    page = visitor.visit(f"/products/{drop.id}")
    expect(page.locator(".options .stock").first).to_contain_text("Opens in")
    assert page.locator("time.starts-at:visible").count() == 1
    assert page.locator(".options .stock time[data-seconds-left]:visible").count() == 3
    page = visitor.visit("/products/2")
    visitor.buy(2)
    expect(page.locator("#payment-form")).to_be_visible()
    widths["payment form"] = page_width(page)
    hold_id = page.locator(".hold").first.get_attribute("id").removeprefix("hold-")
    visitor.visit(f"/reservations/{hold_id}")
    expect(visitor.page.locator("#payment-form")).to_be_visible()
    widths["hold page"] = page_width(visitor.page)
    visitor.pay()
    expect(visitor.page.locator(".hold-completed")).to_be_visible()
    for name, path in (("orders", "/orders"), ("order", f"/orders/{hold_id}"), ("cart", "/cart")):
        visitor.visit(path)
        widths[name] = page_width(visitor.page)
    assert {name: width for name, width in widths.items() if width > NARROW["width"]} == {}


def test_the_owners_pages_fit_a_360_px_screen(seeded_store, shopper):
    owner = shopper(seeded_store, viewport=NARROW, http_credentials={"username": "admin", "password": PASSWORD})
    drop = db.session.query(Product).filter_by(sku="RUNNER-SPRING").one()
    widths = {}
    for name, path in (("dashboard", "/admin/"), ("products", "/admin/products"),
                       ("product", f"/admin/products/{drop.id}"), ("orders", "/admin/orders"),
                       ("holds", "/admin/holds"), ("payments", "/admin/payments"),
                       ("drop's live view", f"/admin/drops/{drop.id}")):
        owner.visit(path)
        assert not re.search(r"Authentication required", owner.page.content())
        widths[name] = page_width(owner.page)
    assert {name: width for name, width in widths.items() if width > NARROW["width"]} == {}
