"""A drop's page tells the truth (issue 42), in Debian's Chromium with its clock right and with its clock
three minutes behind (its page processes under libfaketime, Debian's faketime): the countdown to a start is
the shop's to within 2 s, the page polls at its default pace (5 s, so that nothing hides a frozen
countdown), and at the start the stock, the line and the shopper's place change together, never
contradicting each other, with Buy on within 2 s."""

import time
from datetime import timedelta

import pytest
from playwright.sync_api import expect, sync_playwright
from sqlalchemy import update

from storefront.catalog.models import Product
from storefront.clock import isoformat_z, utcnow
from storefront.extensions import db
from tests.browsing import CHROMIUM_ARGS, Shopper, chromium_path
from tests.factories import make_product
from tests.test_one_clock import faketime_env
from tests.test_queue import NO_DOOR

BEHIND_SECONDS = 180


@pytest.fixture(params=["right", "3 minutes behind"])
def clock_browser(request, tmp_path):
    """Chromium whose clock is right, or runs three minutes behind the shop's. Its renderers (where a
    page's Date and timeOrigin come from) run under libfaketime, through Chromium's own prefix for the
    command that starts them: the whole browser under it takes 8 to 20 s to start and 3 to 14 s a page."""
    args = list(CHROMIUM_ARGS)
    if request.param != "right":
        env = faketime_env(-BEHIND_SECONDS, tmp_path)
        env["LD_PRELOAD"] = env["LD_PRELOAD"].replace(" ", ":")
        args.append("--renderer-cmd-prefix=env " + " ".join(f"{name}={value}" for name, value in env.items()))
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=chromium_path(), args=args)
        yield browser, request.param
        browser.close()


def starting(product_id: int, moment) -> None:
    """The drop's start moves (the product's and its options')."""
    db.session.execute(update(Product).where((Product.id == product_id) | (Product.option_of == product_id))
                       .values(starts_at=moment))
    db.session.commit()


def shown_seconds(text: str) -> int:
    parts = [int(part) for part in text.split(":")]
    return parts[0] * 60 + parts[1] if len(parts) == 2 else parts[0] * 3600 + parts[1] * 60 + parts[2]


def page_state(page, product_id: int) -> dict:
    """What the page says, read at one instant in the page itself."""
    return page.evaluate("""(id) => {
        const stock = document.querySelector('.stock[data-on-sale]');
        const line = document.getElementById('queue-' + id);
        const place = document.getElementById('place-' + id);
        return {onSale: stock && stock.dataset.onSale, line: line && line.dataset.state,
                place: place && place.dataset.status, placeText: place && place.textContent.replace(/\\s+/g, ' ').trim(),
                opensIn: !!document.querySelector('.stock .counting-down:not([hidden])')};
    }""", product_id)


def contradictions(state: dict) -> list[str]:
    found = []
    before = state["line"] in ("not_open", "open")
    if before and state["onSale"] == "true":
        found.append("the line waits for the start, the stock is on sale")
    if not before and state["onSale"] == "false":
        found.append("the line is let in, the stock says it opens later")
    if state["place"] in ("admitted", "held") and state["onSale"] == "false":
        found.append("the place has its turn, the stock says it opens later")
    if state["place"] == "waiting" and "drawn at the start" in state["placeText"] and not before:
        found.append("the place waits for a draw that happened")
    if state["opensIn"] and state["onSale"] == "true":
        found.append("a countdown beside a sale")
    return found


def test_the_countdown_is_the_shops_and_the_start_opens_everything_at_once(app, settings, live_server,
                                                                             clock_browser):
    browser, clock = clock_browser
    product = make_product(total=0, name="Runner", starts_at=(utcnow() + timedelta(minutes=2)).replace(microsecond=0),
                           queued=True)
    for label in ("S", "M"):
        make_product(total=2, option_of=product.id, option_label=label, starts_at=product.starts_at, queued=True)
    server = live_server({**settings, **NO_DOOR})  # STOCK_POLL_SECONDS: the default, 5
    shopper = Shopper(browser, server.url)
    page = shopper.visit(f"/products/{product.id}")
    if clock != "right":  # the browser's own clock is off indeed
        assert page.evaluate("Date.now()") / 1000 < time.time() - BEHIND_SECONDS + 5
    page.click("button.join-button")

    # The start moves nearer while the page is open (the owner brings it forward): the page hears of it
    # with its next poll, and counts down to the new moment.
    start = (utcnow() + timedelta(seconds=25)).replace(microsecond=0)
    starting(product.id, start)
    expect(page.locator(f".stock time.countdown[datetime='{isoformat_z(start)}']").first).to_be_attached(timeout=7_000)
    expect(page.locator(f"#place-{product.id}")).to_contain_text("Your place is drawn at the start")

    countdown = page.locator(".stock time.countdown").first
    for sample in range(4):  # four samples over 18 s
        if sample:
            time.sleep(6)
        shown, shops = shown_seconds(countdown.text_content()), (start - utcnow()).total_seconds()
        assert abs(shown - shops) <= 2, f"the page shows {shown} s left, the shop {shops:.1f} s"

    states = []
    while utcnow() < start + timedelta(seconds=4):  # samples every 250 ms around the start
        states.append((utcnow(), page_state(page, product.id)))
        time.sleep(0.25)
    for moment, state in states:
        assert contradictions(state) == [], (moment - start, state)
    turned = [moment for moment, state in states if state["place"] == "admitted"]
    assert turned, states[-1]
    assert start <= turned[0] < start + timedelta(seconds=2), turned[0] - start
    expect(page.locator(f"#place-{product.id} button.buy-button")).to_be_enabled()
    assert shopper.problems == []
    shopper.context.close()
