"""The Stripe gateway against local Stripe-compatible servers; never the real Stripe.

stripe-mock (Stripe's own mock) proves our requests have shapes Stripe accepts.
localstripe (stateful) runs the flows that need state: an intent created by the
shop, confirmed with a test card as Stripe.js would, a signed webhook sent back
to the shop, a refund issued once.
"""

import json
import time
import uuid
from typing import NamedTuple

import pytest
import requests
from sqlalchemy import select

from storefront.extensions import db
from storefront.inventory.models import Hold
from storefront.payments.gateway import PaymentRefused, StripeGateway, gateway
from storefront.payments.models import PaymentEvent
from tests.factories import (
    STRIPE_KEYS,
    TEST_WEBHOOK_SECRET,
    intent_event,
    lapse,
    make_product,
    stripe_signature,
    visitor,
)

HTMX = {"HX-Request": "true"}


class StripeCall(NamedTuple):
    method: str
    url: str
    headers: dict
    body: str | None
    status: int


@pytest.fixture
def stripe_calls(monkeypatch):
    """Every request the shop's Stripe client sends from now on, with the status it got back."""
    import stripe as stripe_sdk

    calls: list[StripeCall] = []
    original = stripe_sdk.RequestsClient.request

    def recording(self, method, url, headers, post_data=None):
        content, status, response_headers = original(self, method, url, headers, post_data)
        calls.append(StripeCall(method, url, dict(headers), post_data, status))
        return content, status, response_headers

    monkeypatch.setattr(stripe_sdk.RequestsClient, "request", recording)
    return calls


def stripe_settings(settings, server):
    return {**settings, **STRIPE_KEYS, "STRIPE_API_BASE": server.url}


def hold_fragment(client, product, user):
    response = client.post("/api/reservations", data={"productId": product.id, "userId": visitor(user)},
                           headers=HTMX)
    assert response.status_code == 201
    html = response.get_data(as_text=True)
    reservation_id = html.split('id="hold-')[1].split('"')[0]
    return reservation_id, html


def stored_hold(reservation_id):
    db.session.expire_all()
    return db.session.get(Hold, uuid.UUID(reservation_id))


# stripe-mock: request shapes


def test_the_payment_form_carries_a_payment_intent_created_through_stripe(make_app, settings, stripe_mock):
    app = make_app(stripe_settings(settings, stripe_mock))
    client = app.test_client()
    with app.app_context():
        assert isinstance(gateway(), StripeGateway)
        product = make_product(total=2)
        reservation_id, html = hold_fragment(client, product, 1)
        assert "data-stripe-payment" in html
        assert 'data-publishable-key="pk_test_StorefrontSuite123"' in html
        assert "data-client-secret=" in html and "_secret_" in html
        assert "Test mode" not in html  # the demo gateway is off with Stripe configured
        assert STRIPE_KEYS["STRIPE_SECRET_KEY"] not in html
        intent_id = stored_hold(reservation_id).payment_intent_id
        assert intent_id and intent_id.startswith("pi_")
        shown = client.get(f"/api/reservations/{reservation_id}", headers={"X-Visitor-Id": visitor(1)})
        assert shown.get_json()["paymentIntentId"] == intent_id

        page = client.get(f"/products/{product.id}")
        assert "https://js.stripe.com/v3/" in page.get_data(as_text=True)
        policy = page.headers["Content-Security-Policy"]
        # Stripe's integration security guide, item by item.
        assert "script-src 'self' https://js.stripe.com https://*.js.stripe.com https://maps.googleapis.com" in policy
        assert "frame-src https://js.stripe.com https://*.js.stripe.com https://hooks.stripe.com" in policy
        assert "connect-src 'self' https://api.stripe.com https://maps.googleapis.com" in policy

        assert client.post(f"/reservations/{reservation_id}/demo-payment",
                           headers={**HTMX, "X-Visitor-Id": visitor(1)}).status_code == 404


def test_cancel_retrieve_and_refund_requests_are_accepted_by_stripe_mock(make_app, settings, stripe_mock,
                                                                        stripe_calls):
    app = make_app(stripe_settings(settings, stripe_mock))
    with app.app_context():
        stripe = gateway()
        # stripe-mock validates each request against Stripe's OpenAPI spec and answers with
        # its fixture intent, whose status is requires_payment_method: a 400 would raise.
        assert stripe.cancel("pi_123") == "requires_payment_method"
        assert stripe.retrieve("pi_123")["status"] == "requires_payment_method"
        assert stripe.refund("pi_123", 1500, "hold-key").startswith("re_")
        # A cancel asked again (after the intent left "processing", say) is a new request to
        # Stripe, not the replay of the first answer that a fixed key would get for 24 hours.
        assert stripe.cancel("pi_123") == "requires_payment_method"

    (cancel_method, cancel_url, cancel_headers, _, _), (get_method, get_url, _, _, _), \
        (refund_method, refund_url, refund_headers, refund_body, _), (_, again_url, again_headers, _, _) = stripe_calls
    assert (cancel_method, cancel_url) == ("post", f"{stripe_mock.url}/v1/payment_intents/pi_123/cancel")
    assert again_url == cancel_url
    assert cancel_headers["Idempotency-Key"] != again_headers["Idempotency-Key"]
    assert (get_method, get_url) == ("get", f"{stripe_mock.url}/v1/payment_intents/pi_123")
    assert (refund_method, refund_url) == ("post", f"{stripe_mock.url}/v1/refunds")
    assert refund_headers["Idempotency-Key"] == "storefront-refund-hold-key"
    assert sorted(refund_body.split("&")) == ["amount=1500", "payment_intent=pi_123"]


def test_an_unreachable_stripe_keeps_the_hold_and_says_payment_is_unavailable(make_app, settings):
    app = make_app({**settings, **STRIPE_KEYS, "STRIPE_API_BASE": "http://127.0.0.1:9"})
    client = app.test_client()
    with app.app_context():
        product = make_product(total=1)
        reservation_id, html = hold_fragment(client, product, 1)
        assert "Payment is unavailable right now" in html
        assert stored_hold(reservation_id).status == "PENDING"


def test_a_stripe_error_is_logged_without_the_key(make_app, settings, stripe_mock, caplog):
    app = make_app({**stripe_settings(settings, stripe_mock), "STRIPE_SECRET_KEY": "sk_test_rejected_by_the_mock"})
    client = app.test_client()
    with app.app_context():
        product = make_product(total=1)
        _, html = hold_fragment(client, product, 1)
        assert "Payment is unavailable right now" in html
        assert "could not start payment" in caplog.text
        assert "sk_test_rejected_by_the_mock" not in caplog.text


# localstripe: flows with state


class Shopper:
    """Confirms a PaymentIntent with a test card on localstripe, as Stripe.js would."""

    def __init__(self, server):
        self.api = server.url
        self.auth = {"Authorization": f"Bearer {STRIPE_KEYS['STRIPE_SECRET_KEY']}"}

    def call(self, method, path, **data):
        response = requests.request(method, f"{self.api}{path}", data=data, headers=self.auth, timeout=10)
        response.raise_for_status()
        return response.json()

    def pay(self, intent_id):
        card = self.call("POST", "/v1/payment_methods", type="card", **{
            "card[number]": "4242424242424242", "card[exp_month]": "12", "card[exp_year]": "2035",
            "card[cvc]": "123"})
        self.call("POST", f"/v1/payment_intents/{intent_id}", payment_method=card["id"])
        return self.call("POST", f"/v1/payment_intents/{intent_id}/confirm")

    def refunds(self, intent_id):
        # localstripe lists every refund whatever the filter: keep this intent's.
        refunds = self.call("GET", "/v1/refunds", payment_intent=intent_id)["data"]
        return [refund for refund in refunds if refund.get("payment_intent") == intent_id]

    def intent(self, intent_id):
        return self.call("GET", f"/v1/payment_intents/{intent_id}")


def wait_for_status(reservation_id, status, seconds=15):
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if stored_hold(reservation_id).status == status:
            return
        time.sleep(0.1)
    raise AssertionError(f"hold {reservation_id} is {stored_hold(reservation_id).status}, not {status}")


def test_paying_on_stripe_completes_the_hold_through_the_signed_webhook(app, settings, localstripe, live_server):
    shop_settings = stripe_settings(settings, localstripe)
    shop = live_server(shop_settings, workers=2, threads=4)
    shopper = Shopper(localstripe)
    hook = f"storefront-{uuid.uuid4().hex[:8]}"
    requests.post(f"{localstripe.url}/_config/webhooks/{hook}", timeout=10, json={
        "url": f"{shop.url}/api/webhooks/stripe", "secret": TEST_WEBHOOK_SECRET,
        "events": ["payment_intent.succeeded"]}).raise_for_status()
    try:
        product = make_product(total=1)
        held = requests.post(f"{shop.url}/api/reservations", data={"productId": product.id, "userId": visitor(1)},
                             headers=HTMX, timeout=10)
        reservation_id = held.text.split('id="hold-')[1].split('"')[0]
        intent_id = stored_hold(reservation_id).payment_intent_id
        intent = shopper.intent(intent_id)
        assert intent["amount"] == 2500 and intent["currency"] == "usd"
        assert intent["metadata"] == {"productId": str(product.id), "userId": visitor(1),
                                      "reservationId": reservation_id}

        assert shopper.pay(intent_id)["status"] == "succeeded"

        wait_for_status(reservation_id, "COMPLETED")
        assert shopper.refunds(intent_id) == []
    finally:
        # localstripe cannot forget a webhook; point this one at nothing.
        requests.post(f"{localstripe.url}/_config/webhooks/{hook}", timeout=10,
                      json={"url": "http://127.0.0.1:9/", "secret": "x", "events": []})


def test_a_late_payment_for_a_unit_sold_elsewhere_is_refunded_exactly_once(make_app, settings, localstripe):
    app = make_app(stripe_settings(settings, localstripe))
    client = app.test_client()
    shopper = Shopper(localstripe)
    with app.app_context():
        product = make_product(total=1, price=4200)
        late_id, _ = hold_fragment(client, product, 1)
        intent_id = stored_hold(late_id).payment_intent_id
        lapse(late_id)
        hold_fragment(client, product, 2)  # the lapsed unit goes to another visitor
        shopper.pay(intent_id)

        late = {"reservationId": late_id, "amount": 4200, "currency": "usd", "productId": product.id,
                "userId": visitor(1), "paymentIntentId": intent_id}
        payload = intent_event(late, event_id="evt_late_on_localstripe")
        for _ in range(5):
            response = client.post("/api/webhooks/stripe", data=payload,
                                   headers={"Stripe-Signature": stripe_signature(payload)})
            assert response.status_code == 200

        hold = stored_hold(late_id)
        assert hold.status == "REFUNDED"
        refunds = shopper.refunds(intent_id)
        assert [(r["id"], r["amount"]) for r in refunds] == [(hold.refund_id, 4200)]


def test_releasing_a_hold_cancels_its_payment_intent(make_app, settings, localstripe):
    app = make_app(stripe_settings(settings, localstripe))
    client = app.test_client()
    shopper = Shopper(localstripe)
    with app.app_context():
        product = make_product(total=1)
        reservation_id, _ = hold_fragment(client, product, 1)
        intent_id = stored_hold(reservation_id).payment_intent_id
        released = client.delete(f"/api/reservations/{reservation_id}", headers={"X-Visitor-Id": visitor(1)})
        assert released.get_json()["status"] == "CANCELLED"
        assert shopper.intent(intent_id)["status"] == "canceled"
        assert stored_hold(reservation_id).payment_released_at is not None


def test_the_sweep_cancels_the_payment_intents_of_lapsed_holds(make_app, settings, localstripe):
    from storefront.inventory.holds import sweep_lapsed_holds
    from storefront.payments.reconcile import reconcile_payments

    app = make_app(stripe_settings(settings, localstripe))
    client = app.test_client()
    shopper = Shopper(localstripe)
    with app.app_context():
        product = make_product(total=1)
        reservation_id, _ = hold_fragment(client, product, 1)
        intent_id = stored_hold(reservation_id).payment_intent_id
        lapse(reservation_id)
        sweep_lapsed_holds()
        assert reconcile_payments() == {"canceled": 1}
        assert reconcile_payments() == {}
        assert shopper.intent(intent_id)["status"] == "canceled"
        assert db.session.execute(select(Hold.status)).scalar_one() == "EXPIRED"
        assert stored_hold(reservation_id).payment_released_at is not None


def test_delivery_details_go_onto_the_payment_intent_in_a_shape_stripe_accepts(make_app, settings, stripe_mock,
                                                                              stripe_calls):
    from storefront.orders.models import Order
    from tests.factories import DELIVERY

    app = make_app(stripe_settings(settings, stripe_mock))
    client = app.test_client()
    with app.app_context():
        product = make_product(total=1)
        reservation_id, html = hold_fragment(client, product, 1)
        assert "data-delivery-url=\"/api/reservations/" in html and 'class="address-element"' in html
        intent_id = stored_hold(reservation_id).payment_intent_id
        saved = client.post(f"/api/reservations/{reservation_id}/delivery", json=DELIVERY,
                            headers={"X-Visitor-Id": visitor(1)})
        assert saved.status_code == 200
        db.session.expire_all()
        assert db.session.get(Order, uuid.UUID(reservation_id)).ship_postal_code == "NW1 5LR"

    method, url, headers, body, status = stripe_calls[-1]
    assert (method, url, status) == ("post", f"{stripe_mock.url}/v1/payment_intents/{intent_id}", 200)
    assert headers["Idempotency-Key"].startswith(f"storefront-delivery-{intent_id}-")
    fields = dict(part.split("=", 1) for part in body.split("&"))
    assert fields["receipt_email"] == "ada%40example.com"
    assert fields["shipping[name]"] == "Ada+Lovelace" and fields["shipping[address][country]"] == "GB"
    assert fields["shipping[address][postal_code]"] == "NW1+5LR"


# The Stripe path's loose ends (issue 19): each of these failed before its fix.


def test_a_dashboard_refund_marks_the_order_refunded_once_whatever_the_order_of_events(make_app, settings,
                                                                                        localstripe):
    from storefront.orders.book import order_of

    app = make_app(stripe_settings(settings, localstripe))
    client = app.test_client()
    with app.app_context():
        product = make_product(total=1, price=4200)
        reservation_id, _ = hold_fragment(client, product, 1)
        intent_id = stored_hold(reservation_id).payment_intent_id
        Shopper(localstripe).pay(intent_id)
        # The shopper's return (a page: another client, since a page hands its browser a cookie).
        paid = app.test_client().get(f"/reservations/{reservation_id}?payment_intent={intent_id}")
        assert paid.status_code == 200 and stored_hold(reservation_id).status == "COMPLETED"

        def charge_refunded(amount_refunded, event_id):
            charge = {"id": "ch_dashboard", "object": "charge", "payment_intent": intent_id, "amount": 4200,
                      "amount_refunded": amount_refunded, "refunded": amount_refunded == 4200, "currency": "usd"}
            payload = json.dumps({"id": event_id, "object": "event", "type": "charge.refunded",
                                  "data": {"object": charge}}).encode()
            answer = client.post("/api/webhooks/stripe", data=payload, headers={"Stripe-Signature": stripe_signature(payload)})
            assert answer.status_code == 200

        with db.engine.connect() as conn:
            assert order_of(conn, uuid.UUID(reservation_id)).status == "paid"
        charge_refunded(4200, "evt_full_refund")
        charge_refunded(1000, "evt_earlier_partial_refund_arriving_late")  # out of order: changes nothing
        with db.engine.connect() as conn:
            order = order_of(conn, uuid.UUID(reservation_id))
        assert (order.status, order.refunded_amount) == ("refunded", 4200)
        assert "refunded in Stripe" in order.refund_reason
        page = client.get(f"/orders/{reservation_id}", headers={**HTMX, "X-Visitor-Id": visitor(1)})
        assert "the whole payment went back to you" in page.get_data(as_text=True)


def test_a_reload_of_a_hold_whose_payment_succeeded_settles_it_instead_of_offering_pay_again(make_app, settings,
                                                                                            localstripe):
    app = make_app(stripe_settings(settings, localstripe))
    client = app.test_client()
    with app.app_context():
        product = make_product(total=1)
        reservation_id, _ = hold_fragment(client, product, 1)
        Shopper(localstripe).pay(stored_hold(reservation_id).payment_intent_id)  # paid; no webhook, no return
        reloaded = client.get(f"/reservations/{reservation_id}", headers={**HTMX, "X-Visitor-Id": visitor(1)})
        html = reloaded.get_data(as_text=True)
        assert "Paid: it is yours" in html and "data-stripe-payment" not in html
        assert stored_hold(reservation_id).status == "COMPLETED"


def test_confirming_polls_and_lapse_checks_ask_stripe_nothing(make_app, settings, localstripe, stripe_calls):
    app = make_app(stripe_settings(settings, localstripe))
    client = app.test_client()
    with app.app_context():
        product = make_product(total=1)
        reservation_id, _ = hold_fragment(client, product, 1)
        asked_before = len(stripe_calls)
        own = {**HTMX, "X-Visitor-Id": visitor(1)}
        polled = client.get(f"/reservations/{reservation_id}?confirming=1", headers=own)
        assert polled.status_code == 200 and "Confirming your purchase" in polled.get_data(as_text=True)
        # The countdown reached 0:00 before the server's clock did: nothing to swap, nothing asked.
        early = client.get(f"/reservations/{reservation_id}?lapsed=1", headers=own)
        assert (early.status_code, early.get_data()) == (204, b"")
        assert stripe_calls[asked_before:] == []
        lapse(reservation_id)
        lapsed = client.get(f"/reservations/{reservation_id}?lapsed=1", headers=own)
        assert lapsed.status_code == 200 and "This hold lapsed" in lapsed.get_data(as_text=True)


def test_a_refund_failing_on_the_return_page_is_not_a_500(make_app, settings, localstripe, monkeypatch):
    from storefront.payments.gateway import PaymentError

    app = make_app(stripe_settings(settings, localstripe))
    client = app.test_client()
    with app.app_context():
        product = make_product(total=1)
        late_id, _ = hold_fragment(client, product, 1)
        intent_id = stored_hold(late_id).payment_intent_id
        lapse(late_id)
        hold_fragment(client, product, 2)  # the unit goes to someone else
        Shopper(localstripe).pay(intent_id)

        def unreachable(*args, **kwargs):
            raise PaymentError("APIConnectionError (status None, code none)")

        monkeypatch.setattr(gateway(), "refund", unreachable)
        returned = client.get(f"/reservations/{late_id}?payment_intent={intent_id}&redirect_status=succeeded")
        assert returned.status_code == 200
        hold = stored_hold(late_id)
        assert (hold.status, hold.refund_id) == ("REFUNDED", None)  # decided; the refund is retried by its job


def test_a_japanese_address_needs_no_city_but_the_countries_that_use_one_do(make_app, settings, stripe_mock):
    from tests.factories import DELIVERY

    app = make_app(stripe_settings(settings, stripe_mock))
    client = app.test_client()
    with app.app_context():
        product = make_product(total=3)
        own = {"X-Visitor-Id": visitor(1)}
        reservation_id, _ = hold_fragment(client, product, 1)
        url = f"/api/reservations/{reservation_id}/delivery"
        tokyo = {**DELIVERY, "city": "", "state": "Tokyo", "postalCode": "100-0005", "country": "JP",
                 "line1": "Chiyoda-ku, Marunouchi 1-1"}
        assert client.post(url, json=tokyo, headers=own).status_code == 200
        for address, field in (({**DELIVERY, "city": ""}, "city"),
                               ({**DELIVERY, "country": "US", "postalCode": "10001", "state": ""}, "state"),
                               ({**tokyo, "state": ""}, "state")):
            refused = client.post(url, json=address, headers=own)
            assert refused.status_code == 400 and refused.get_json()["field"] == field, refused.get_json()


def test_a_refund_stripe_refused_is_asked_again_under_a_new_key(make_app, settings, localstripe, stripe_calls):
    from storefront.payments.settlement import refund_once

    app = make_app(stripe_settings(settings, localstripe))
    client = app.test_client()
    with app.app_context():
        product = make_product(total=1)
        reservation_id, _ = hold_fragment(client, product, 1)
        intent_id = stored_hold(reservation_id).payment_intent_id
        # Not paid yet: Stripe (localstripe) refuses, and says so; the refusal is written down.
        with pytest.raises(PaymentRefused):
            refund_once(intent_id, 2500, "hold-late", reservation_id)
        Shopper(localstripe).pay(intent_id)
        # Paid now: the next attempt is a new request (a new key), not the day-long replay of the no.
        refund_id = refund_once(intent_id, 2500, "hold-late", reservation_id)
        # (A retry after an answer lost on the way would count one refusal still, and send "-1" again:
        # Stripe replays the refund it made. localstripe keeps no keys, so that part is Stripe's word.)
        keys = [call.headers["Idempotency-Key"] for call in stripe_calls if call.url.endswith("/v1/refunds")]
        assert keys == ["storefront-refund-hold-late-0", "storefront-refund-hold-late-1"]
        assert refund_id.startswith("re_")
        refused = db.session.execute(select(PaymentEvent.outcome, PaymentEvent.detail)
                                     .where(PaymentEvent.payment_intent_id == intent_id)).all()
        assert [outcome for outcome, _ in refused] == ["refund_refused"]
