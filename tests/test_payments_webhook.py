"""POST /api/webhooks/stripe: signatures, and what each event does to a hold.

Events are signed with a test secret exactly as Stripe signs them. The gateway
here is the demo one (no Stripe key), so refunds are bookkeeping only; refunds
against a Stripe-compatible server are in test_payments_stripe.py.
"""

import json
import time

import pytest
from sqlalchemy import select

from storefront.catalog.models import Product
from storefront.extensions import db
from storefront.inventory.models import Hold
from storefront.payments.gateway import gateway
from storefront.payments.models import PaymentEvent
from tests.factories import TEST_WEBHOOK_SECRET, intent_event, lapse, make_product, stripe_signature, visitor, units

WEBHOOK = "/api/webhooks/stripe"


@pytest.fixture
def app(make_app, settings):
    app = make_app({**settings, "STRIPE_WEBHOOK_SECRET": TEST_WEBHOOK_SECRET})
    with app.app_context():
        yield app


def deliver(client, payload: bytes, signature: str | None = "sign"):
    headers = {"Content-Type": "application/json"}
    if signature == "sign":
        signature = stripe_signature(payload)
    if signature is not None:
        headers["Stripe-Signature"] = signature
    return client.post(WEBHOOK, data=payload, headers=headers)


def place(client, product, user=1, quantity=1):
    response = client.post(
        "/api/reservations", json={"productId": product.id, "userId": visitor(user), "quantity": quantity}
    )
    assert response.status_code == 201
    return response.get_json()


def state(reservation: dict):
    db.session.expire_all()
    hold = db.session.execute(select(Hold).where(Hold.user_id == reservation["userId"])).scalars().all()
    hold = next(h for h in hold if str(h.id) == reservation["reservationId"])
    product = db.session.get(Product, hold.product_id)
    return hold.status, units(product.id).held, units(product.id).sold


def outcomes():
    db.session.expire_all()
    return [(e.type, e.outcome) for e in db.session.execute(select(PaymentEvent)).scalars()]


def test_a_signed_succeeded_event_completes_the_hold(client):
    product = make_product(total=3)
    reservation = place(client, product, quantity=2)
    response = deliver(client, intent_event(reservation))
    assert response.status_code == 200
    assert response.get_json() == {"received": True}
    assert state(reservation) == ("COMPLETED", 0, 2)
    assert client.get(f"/api/inventory/check/{product.id}").get_json()["available"] == 1
    assert outcomes() == [("payment_intent.succeeded", "completed")]


@pytest.mark.parametrize(
    "signature",
    [
        None,  # missing
        "",
        "t=1700000000,v1=deadbeef",
        "garbage",
        "WRONG_SECRET",
        "STALE",
    ],
)
def test_an_unsigned_wrongly_signed_or_stale_event_is_400_and_changes_nothing(client, signature):
    product = make_product(total=1)
    reservation = place(client, product)
    payload = intent_event(reservation)
    if signature == "WRONG_SECRET":
        signature = stripe_signature(payload, secret="whsec_someone_else")
    elif signature == "STALE":
        signature = stripe_signature(payload, timestamp=int(time.time()) - 301)
    response = deliver(client, payload, signature)
    assert response.status_code == 400
    assert response.get_json()["error"] == "invalid_signature"
    assert state(reservation) == ("PENDING", 1, 0)
    assert outcomes() == []


def test_a_tampered_body_is_400(client):
    product = make_product(total=1)
    reservation = place(client, product)
    payload = intent_event(reservation)
    signature = stripe_signature(payload)
    tampered = payload.replace(b'"amount": 2500', b'"amount": 1')
    assert tampered != payload
    assert deliver(client, tampered, signature).status_code == 400
    assert state(reservation) == ("PENDING", 1, 0)


def test_a_recent_signature_within_tolerance_is_accepted(client):
    product = make_product(total=1)
    reservation = place(client, product)
    payload = intent_event(reservation)
    assert deliver(client, payload, stripe_signature(payload, timestamp=int(time.time()) - 280)).status_code == 200


def test_a_signed_body_that_is_not_an_event_is_400(client):
    for payload in (b"not json", b"[1, 2]", b'{"no": "id"}'):
        assert deliver(client, payload).status_code == 400


def test_the_same_event_five_times_completes_once(client):
    product = make_product(total=2)
    reservation = place(client, product)
    payload = intent_event(reservation, event_id="evt_same_one")
    for _ in range(5):
        assert deliver(client, payload).status_code == 200
    assert state(reservation) == ("COMPLETED", 0, 1)
    assert outcomes() == [("payment_intent.succeeded", "duplicate")]  # the last delivery's word


def test_a_failed_payment_is_recorded_and_the_hold_survives_to_be_paid(client):
    product = make_product(total=1)
    reservation = place(client, product)
    failed = deliver(client, intent_event(reservation, "payment_intent.payment_failed", error="Your card was declined."))
    assert failed.status_code == 200
    assert state(reservation) == ("PENDING", 1, 0)
    event = db.session.execute(select(PaymentEvent)).scalar_one()
    assert (event.outcome, event.detail) == ("payment_failed", "Your card was declined.")

    assert deliver(client, intent_event(reservation)).status_code == 200
    assert state(reservation) == ("COMPLETED", 0, 1)


def test_succeeded_then_canceled_stays_completed(client):
    product = make_product(total=1)
    reservation = place(client, product)
    deliver(client, intent_event(reservation))
    assert deliver(client, intent_event(reservation, "payment_intent.canceled")).status_code == 200
    assert state(reservation) == ("COMPLETED", 0, 1)
    assert ("payment_intent.canceled", "kept_completed") in outcomes()


def test_canceled_releases_a_pending_hold_at_once(client):
    product = make_product(total=1)
    reservation = place(client, product)
    assert deliver(client, intent_event(reservation, "payment_intent.canceled")).status_code == 200
    assert state(reservation) == ("CANCELLED", 0, 0)
    assert client.get(f"/api/inventory/check/{product.id}").get_json()["available"] == 1


def test_a_late_payment_with_stock_left_completes_the_lapsed_hold(client):
    product = make_product(total=2)
    reservation = place(client, product)
    lapse(reservation["reservationId"])
    assert deliver(client, intent_event(reservation)).status_code == 200
    assert state(reservation) == ("COMPLETED", 0, 1)
    assert outcomes() == [("payment_intent.succeeded", "completed_late")]


def test_a_late_payment_for_a_swept_hold_with_stock_left_completes_it(client, app):
    from storefront.inventory.holds import sweep_lapsed_holds

    product = make_product(total=1)
    reservation = place(client, product)
    lapse(reservation["reservationId"])
    sweep_lapsed_holds()
    assert state(reservation) == ("EXPIRED", 0, 0)
    deliver(client, intent_event(reservation))
    assert state(reservation) == ("COMPLETED", 0, 1)


def test_a_late_payment_when_the_stock_is_gone_is_refunded_once(client):
    product = make_product(total=1)
    late = place(client, product, user=1)
    lapse(late["reservationId"])
    place(client, product, user=2)  # takes the unit that lapsed

    payload = intent_event(late, event_id="evt_late_payment")
    for _ in range(5):
        assert deliver(client, payload).status_code == 200

    db.session.expire_all()
    hold = db.session.get(Hold, __import__("uuid").UUID(late["reservationId"]))
    assert hold.status == "REFUNDED"
    # Five deliveries, one refund of the whole amount, as the demo gateway (Stripe's part) made them.
    made = [(refund.id, refund.payment_intent, refund.amount) for refund in gateway().refunds.values()]
    assert made == [(hold.refund_id, hold.payment_intent_id, late["amount"])]
    product_row = db.session.get(Product, product.id)
    assert (units(product_row.id).held, units(product_row.id).sold) == (1, 0)
    shown = client.get(f"/api/reservations/{late['reservationId']}", headers={"X-Visitor-Id": visitor(1)})
    assert shown.get_json()["status"] == "REFUNDED"


def test_a_payment_of_the_wrong_amount_is_refused_and_refunded_in_full_once(client):

    product = make_product(total=1, price=2500)
    reservation = place(client, product)
    for n, wrong in enumerate(({"amount": 100}, {"currency": "eur"})):
        payload = intent_event(reservation, intent_id=f"pi_wrong_{n}", event_id=f"evt_wrong_{n}", **wrong)
        for _ in range(2):  # redelivered: still one refund
            assert deliver(client, payload).status_code == 200
        assert state(reservation) == ("PENDING", 1, 0)
    assert {outcome for _, outcome in outcomes()} == {"amount_mismatch"}
    db.session.expire_all()
    refunds = db.session.execute(select(PaymentEvent.payment_intent_id, PaymentEvent.refund_id, PaymentEvent.detail)
                                 .order_by(PaymentEvent.payment_intent_id)).all()
    assert [(intent, refund.startswith("re_demo_")) for intent, refund, _ in refunds] == [
        ("pi_wrong_0", True), ("pi_wrong_1", True)]
    # Each refunded in full (what was paid: 100 usd, then 2500 eur), once, however often delivered.
    made = sorted((refund.payment_intent, refund.amount) for refund in gateway().refunds.values())
    assert made == [("pi_wrong_0", 100), ("pi_wrong_1", 2500)]
    assert refunds[0].detail == "paid 100 usd, hold is 2500 usd"


def test_other_event_types_are_acknowledged_and_ignored(client):
    product = make_product(total=1)
    reservation = place(client, product)
    for event_type, thing in (("customer.created", {"id": "cus_1"}), ("charge.refunded", {"id": "ch_1"})):
        # (a charge without a PaymentIntent is another integration's, not one of ours)
        payload = json.dumps({"id": f"evt_{event_type}", "object": "event", "type": event_type,
                              "data": {"object": thing}}).encode()
        assert deliver(client, payload).get_json() == {"received": True}
    assert state(reservation) == ("PENDING", 1, 0)
    assert outcomes() == []


def test_an_event_for_an_unknown_hold_is_recorded_and_changes_nothing(client):
    reservation = {"reservationId": "8d3c53c4-3c1b-4a8e-9d1a-2f5d1b1c0a11", "amount": 100, "currency": "usd",
                   "productId": 1, "userId": visitor(1)}
    assert deliver(client, intent_event(reservation)).status_code == 200
    assert outcomes() == [("payment_intent.succeeded", "unknown_hold")]


def test_a_secret_never_reaches_a_page(client, app):
    product = make_product(total=1)
    page = client.get(f"/products/{product.id}").get_data(as_text=True)
    fragment = client.post("/api/reservations", data={"productId": product.id, "userId": visitor(1)},
                           headers={"HX-Request": "true"}).get_data(as_text=True)
    for text in (page, fragment):
        assert TEST_WEBHOOK_SECRET not in text
        assert app.config["SECRET_KEY"] not in text


def test_a_batch_settles_each_event_once_in_one_transaction_and_refunds_after_it(app, client):
    from storefront.payments.jobs import complete_payments
    from storefront.payments.messages import sealed
    from storefront.payments.webhook import payment_message

    first, second = make_product(total=3), make_product(total=1, price=4200)
    paid = place(client, first, 1)
    late = place(client, second, 2)
    lapse(late["reservationId"])
    place(client, second, 3)  # the lapsed unit is sold again
    wrong = place(client, first, 4)

    def message(hold, event_id, **changes):
        return sealed(payment_message(json.loads(intent_event(hold, event_id=event_id, **changes))))

    with app.app_context():
        batch = [message(paid, "evt_batch_1"), message(late, "evt_batch_2"), message(paid, "evt_batch_1"),
                 message(wrong, "evt_batch_3", amount=1)]
        first_run = complete_payments(batch)
        second_run = complete_payments(batch)  # the same batch again (a redelivery)
    assert first_run == {"completed": 1, "duplicate": 1, "refunded": 1, "amount_mismatch": 1}
    assert second_run == {"duplicate": 3, "amount_mismatch": 1}
    assert state(paid) == ("COMPLETED", 1, 1)
    assert state(late)[0] == "REFUNDED"
    assert state(wrong)[0] == "PENDING"
    db.session.expire_all()
    refunds = db.session.execute(select(PaymentEvent.id, PaymentEvent.refund_id)
                                 .where(PaymentEvent.refund_id.is_not(None))).all()
    assert sorted(event for event, _ in refunds) == ["evt_batch_2", "evt_batch_3"]
    late_hold = db.session.get(Hold, __import__("uuid").UUID(late["reservationId"]))
    assert late_hold.refund_id == dict(refunds)["evt_batch_2"]


def test_a_batch_that_cannot_settle_as_one_settles_each_alone(app, client, monkeypatch):
    from storefront.payments import jobs as payment_jobs
    from storefront.payments.messages import sealed
    from storefront.payments.webhook import payment_message

    product = make_product(total=2)
    holds = [place(client, product, n) for n in (1, 2)]
    batch = [sealed(payment_message(json.loads(intent_event(h, event_id=f"evt_alone_{n}"))))
             for n, h in enumerate(holds)]

    def deadlocked(messages, trigger):
        raise RuntimeError("deadlock detected")

    monkeypatch.setattr(payment_jobs, "settle_batch", deadlocked)
    with app.app_context():
        assert payment_jobs.complete_payments(batch) == {"completed": 2}
    assert [state(h)[0] for h in holds] == ["COMPLETED", "COMPLETED"]
