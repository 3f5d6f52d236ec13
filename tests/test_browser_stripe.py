"""The Stripe payment path in a real browser: the shop under gunicorn with Stripe test keys,
its real pages, Content-Security-Policy and JavaScript in Debian's Chromium, Stripe's API
played by localstripe, and only Stripe.js itself a test double (tests/stripe_double.py says
what it stands in for and what it cannot).

These are the README's "With Stripe test keys" steps as a shopper meets them.
"""

import re
import uuid
from datetime import datetime, timedelta, timezone

import pytest
import requests
from playwright.sync_api import expect
from sqlalchemy import select

from storefront.extensions import db
from storefront.inventory.models import Hold
from storefront.orders.models import Order
from tests.factories import STRIPE_KEYS, make_product

# Stripe's answers to a declined card, as the browser sees them.
DECLINED = [r"^402: https://api\.stripe\.com/", r"^console: Failed to load resource: .* 402"]
CARD_OK, CARD_DECLINED, CARD_3DS = "4242424242424242", "4000000000000002", "4000002760003184"
LONDON = {"country": "GB", "name": "Ada Lovelace", "line1": "12 Marylebone Road", "city": "London",
          "postal_code": "NW1 5LR"}
TOKYO = {"country": "JP", "name": "Yamada Hanako", "line1": "Chiyoda-ku, Marunouchi 1-1", "state": "Tokyo",
         "postal_code": "100-0005"}


@pytest.fixture
def stripe_store(store, localstripe):
    """The store with Stripe test keys, its Stripe API being localstripe."""

    def start(**extra):
        return store(**STRIPE_KEYS, STRIPE_API_BASE=localstripe.url, **extra)

    return start


def pay_by_card(page, card=CARD_OK, address=LONDON, email="ada@example.com"):
    """Type an email, an address into the Address Element and a card into the Payment Element; press Pay."""
    form = page.locator("#payment-form")
    expect(form.locator("button[type=submit]")).to_be_enabled()
    form.locator("[name=email]").fill(email)
    fields = page.frame_locator("#payment-form .address-element iframe")
    fields.locator("[name=country]").select_option(address["country"])
    for name in ("name", "line1", "city", "state", "postal_code"):
        if name in address:
            fields.locator(f"[name={name}]").fill(address[name])
    card_fields = page.frame_locator("#payment-form .payment-element iframe")
    card_fields.locator("[name=number]").fill(card)
    card_fields.locator("[name=exp]").fill("12 / 34")
    card_fields.locator("[name=cvc]").fill("123")
    form.locator("button[type=submit]").click()


def hold_of(page) -> str:
    return page.locator(".hold").first.get_attribute("id").removeprefix("hold-")


def stored(reservation_id: str) -> Hold:
    db.session.expire_all()
    return db.session.get(Hold, uuid.UUID(reservation_id))


def intent_on_localstripe(localstripe, intent_id: str) -> dict:
    return requests.get(f"{localstripe.url}/v1/payment_intents/{intent_id}", timeout=10,
                        headers={"Authorization": f"Bearer {STRIPE_KEYS['STRIPE_SECRET_KEY']}"}).json()


def no_csp_violations(page) -> None:
    assert page.evaluate("window.__cspViolations") == []


def test_a_card_that_succeeds_pays_the_hold_in_place_and_the_order_has_the_typed_address(
        stripe_store, card_shopper, localstripe):
    product = make_product(total=2, name="Enamel pin", price=1450)
    visitor = card_shopper(stripe_store())
    page = visitor.visit(f"/products/{product.id}")
    visitor.buy(product.id)
    expect(page.locator("#payment-form button[type=submit]")).to_have_text("Pay $14.50")
    expect(page.locator("#payment-form")).not_to_contain_text("Test mode")
    # The form mounts a second time on this page (release, Buy again): still one Stripe object.
    reqs = []
    page.on("request", lambda r: reqs.append(r.method + " " + r.url))
    page.on("response", lambda r: reqs.append(str(r.status) + " " + r.url))
    page.click("text=Release this hold")
    expect(page.locator(".hold-cancelled")).to_be_visible()
    page.click(f"#stock-{product.id} button.buy-button")
    expect(page.locator(".hold-pending #payment-form")).to_be_visible()
    reservation_id = hold_of(page)

    pay_by_card(page)
    expect(page.locator(".hold-completed")).to_contain_text("Paid: it is yours")
    assert page.evaluate("window.__stripeDoubleInstances") == 1
    no_csp_violations(page)

    hold = stored(reservation_id)
    assert hold.status == "COMPLETED"
    intent = intent_on_localstripe(localstripe, hold.payment_intent_id)
    assert (intent["status"], intent["amount"], intent["currency"]) == ("succeeded", 1450, "usd")
    order = db.session.get(Order, hold.id)
    assert (order.email, order.ship_name, order.ship_line1, order.ship_city, order.ship_postal_code,
            order.ship_country) == ("ada@example.com", "Ada Lovelace", "12 Marylebone Road", "London", "NW1 5LR", "GB")
    assert visitor.stripe.calls == ["POST /v1/payment_methods", f"POST /v1/payment_intents/{hold.payment_intent_id}/confirm"]


def test_a_declined_card_shows_stripes_message_keeps_the_hold_and_a_second_card_pays(stripe_store, card_shopper):
    product = make_product(total=1, name="Poster")
    visitor = card_shopper(stripe_store(), expected=DECLINED)
    page = visitor.visit(f"/products/{product.id}")
    visitor.buy(product.id)
    reservation_id = hold_of(page)

    pay_by_card(page, card=CARD_DECLINED)
    expect(page.locator("#payment-form .payment-error")).to_have_text("Your card was declined.")
    expect(page.locator("#payment-form button[type=submit]")).to_be_enabled()
    assert stored(reservation_id).status == "PENDING"

    page.frame_locator("#payment-form .payment-element iframe").locator("[name=number]").fill(CARD_OK)
    page.locator("#payment-form button[type=submit]").click()
    expect(page.locator(".hold-completed")).to_be_visible()
    assert stored(reservation_id).status == "COMPLETED"
    no_csp_violations(page)


def at_the_banks_challenge(stripe_store, card_shopper):
    """A shopper who held a print and paid with a card that asks for 3-D Secure: now looking at the
    bank's challenge, in a frame over the hold's page. Returns the page, the hold's id and the frame."""
    product = make_product(total=1, name="Signed print")
    visitor = card_shopper(stripe_store())
    page = visitor.visit(f"/products/{product.id}")
    visitor.buy(product.id)
    reservation_id = hold_of(page)
    pay_by_card(page, card=CARD_3DS)
    challenge = page.frame_locator("iframe.stripe-double-3ds")
    expect(challenge.locator("#complete")).to_be_enabled()  # its script listens once they are on
    return page, reservation_id, challenge


def test_3d_secure_is_answered_in_the_page_and_the_hold_settles_at_once(stripe_store, card_shopper):
    # redirect: "if_required": a card's challenge never takes the shopper off the page (Stripe's docs).
    page, reservation_id, challenge = at_the_banks_challenge(stripe_store, card_shopper)
    on_the_hold = page.url
    challenge.locator("#complete").dispatch_event("click")  # no pointer: the frame may still be laying out
    expect(page.locator(".hold-completed")).to_contain_text("Paid: it is yours")
    assert page.url == on_the_hold
    # Settled when the page asked for the hold naming its intent: no webhook is configured here.
    assert stored(reservation_id).status == "COMPLETED"
    no_csp_violations(page)


def test_a_failed_3d_secure_is_said_in_the_form_and_the_shopper_can_pay_again(stripe_store, card_shopper):
    page, reservation_id, challenge = at_the_banks_challenge(stripe_store, card_shopper)
    on_the_hold = page.url
    challenge.locator("#fail").dispatch_event("click")
    # Stripe's {error}, code payment_intent_authentication_failure, in the form; nothing left the page.
    expect(page.locator("#payment-form .payment-error")).to_contain_text("unable to authenticate your payment method")
    expect(page.locator("#payment-form button[type=submit]")).to_be_enabled()
    assert page.url == on_the_hold and stored(reservation_id).status == "PENDING"

    pay_by_card(page, card=CARD_OK)
    expect(page.locator(".hold-completed")).to_be_visible()
    assert stored(reservation_id).status == "COMPLETED"


def test_a_return_from_a_failed_redirect_says_the_bank_did_not_confirm(stripe_store, card_shopper):
    """A redirect-based payment method comes back to return_url with redirect_status=failed."""
    product = make_product(total=1, name="Signed print")
    visitor = card_shopper(stripe_store())
    page = visitor.visit(f"/products/{product.id}")
    visitor.buy(product.id)
    reservation_id = hold_of(page)
    # The form settles before the shopper leaves (a frame still loading would be cut off as they go).
    expect(page.locator("#payment-form button[type=submit]")).to_be_enabled()
    page.wait_for_load_state("networkidle")
    visitor.visit(f"/reservations/{reservation_id}?redirect_status=failed")
    expect(page.locator(".hold-pending")).to_contain_text("Your bank did not confirm that payment")
    assert stored(reservation_id).status == "PENDING"
    # The card form mounts again, ready for another try (and nothing is left loading as the test ends).
    expect(page.locator("#payment-form button[type=submit]")).to_be_enabled()
    page.wait_for_load_state("networkidle")


@pytest.mark.parametrize("browser_clock", ["3 minutes ahead", "3 minutes behind"])
def test_a_wrong_browser_clock_shows_the_servers_time_and_never_reloads_the_live_form(
        stripe_store, card_shopper, browser_clock):
    product = make_product(total=1, name="Clock")
    visitor = card_shopper(stripe_store(HOLD_TTL_SECONDS="60"))
    page = visitor.page
    offset = timedelta(minutes=3 if browser_clock == "3 minutes ahead" else -3)
    page.clock.install(time=datetime.now(timezone.utc) + offset)
    hold_requests = []
    page.on("request", lambda request: "/reservations/" in request.url and hold_requests.append(request.url))
    visitor.visit(f"/products/{product.id}")
    visitor.buy(product.id)
    page.evaluate("window.__form = document.querySelector('#payment-form')")

    page.wait_for_timeout(3500)  # the countdown ticks; a loop would have re-rendered several times
    minutes, seconds = page.locator(".hold time").inner_text().split(":")
    assert 45 <= int(minutes) * 60 + int(seconds) <= 58
    assert page.evaluate("document.contains(window.__form)"), "the live payment form was re-rendered"
    assert hold_requests == []

    pay_by_card(page)
    expect(page.locator(".hold-completed")).to_be_visible()


def test_a_japanese_address_without_a_city_pays(stripe_store, card_shopper):
    product = make_product(total=1, name="Tenugui", price=1500, currency="jpy")
    visitor = card_shopper(stripe_store())
    page = visitor.visit(f"/products/{product.id}")
    visitor.buy(product.id)
    expect(page.locator("#payment-form button[type=submit]")).to_have_text("Pay ¥1,500")
    reservation_id = hold_of(page)

    pay_by_card(page, address=TOKYO, email="hanako@example.jp")
    expect(page.locator(".hold-completed")).to_be_visible()
    order = db.session.get(Order, uuid.UUID(reservation_id))
    assert (order.ship_country, order.ship_state, order.ship_city, order.ship_postal_code) == ("JP", "Tokyo", None,
                                                                                              "100-0005")


def test_a_cart_checkout_is_paid_by_card_the_same_way(stripe_store, card_shopper, localstripe):
    mug, tin = make_product(total=3, name="Mug", price=1200), make_product(total=3, name="Tin", price=800)
    visitor = card_shopper(stripe_store())
    visitor.add_to_cart(mug, tin)
    page = visitor.visit("/cart")
    page.click("text=Check out")
    expect(page.locator("#payment-form button[type=submit]")).to_have_text("Pay $20.00")
    pay_by_card(page)
    expect(page.locator(".checkout")).to_contain_text("Your order SF-")
    statuses = db.session.execute(select(Hold.status, Hold.payment_intent_id)).all()
    assert [status for status, _ in statuses] == ["COMPLETED", "COMPLETED"]
    assert intent_on_localstripe(localstripe, statuses[0][1])["amount"] == 2000
    no_csp_violations(page)


def test_when_stripe_js_cannot_load_the_form_says_so_and_sends_nothing(stripe_store, shopper):
    product = make_product(total=1)
    visitor = shopper(stripe_store(), expected=[r"js\.stripe\.com", r"Failed to load resource"])
    visitor.context.route("https://js.stripe.com/**", lambda route: route.abort())
    page = visitor.visit(f"/products/{product.id}")
    visitor.buy(product.id)
    # From the hold on: every request that could carry what the shopper types (anything but a GET,
    # and anything to the delivery route), whatever its body or address.
    sent = []
    page.on("request", lambda request: (request.method != "GET" or "/delivery" in request.url)
            and sent.append(f"{request.method} {request.url}"))
    form = page.locator("#payment-form")
    expect(form.locator(".payment-error")).to_contain_text("The card form could not load")
    expect(form.locator("button[type=submit]")).to_be_disabled()
    form.locator("[name=email]").fill("ada@example.com")
    form.locator("[name=email]").press("Enter")
    page.wait_for_timeout(300)
    assert sent == []


def test_a_network_error_while_sending_the_address_is_shown_and_pay_comes_back(stripe_store, card_shopper):
    product = make_product(total=1)
    visitor = card_shopper(stripe_store(), expected=[r"/delivery net::ERR_FAILED", r"Failed to load resource"])
    page = visitor.visit(f"/products/{product.id}")
    visitor.buy(product.id)
    page.route(re.compile(r".*/api/reservations/[0-9a-f-]+/delivery$"), lambda route: route.abort())

    pay_by_card(page)
    expect(page.locator("#payment-form .payment-error")).to_contain_text("could not be sent")
    expect(page.locator("#payment-form button[type=submit]")).to_be_enabled()

    page.unroute(re.compile(r".*/api/reservations/[0-9a-f-]+/delivery$"))
    page.locator("#payment-form button[type=submit]").click()
    expect(page.locator(".hold-completed")).to_be_visible()
