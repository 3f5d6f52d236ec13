"""Plain functions that make test data."""

import itertools
from datetime import timedelta

from sqlalchemy import update

from storefront.catalog.models import Product
from storefront.clock import utcnow
from storefront.extensions import db
from storefront.inventory.models import Hold
from storefront.inventory.stock import UnitCounts, spread_total, unit_counts

_sequence = itertools.count(1)


def make_product(total: int = 5, price: int = 2500, currency: str = "usd", buckets: int | None = None,
                 **fields) -> Product:
    """A product of ``total`` units, split into ``buckets`` stock buckets (by default as the shop splits it)."""
    number = next(_sequence)
    product = Product(
        sku=fields.pop("sku", f"TEST-{number}"),
        name=fields.pop("name", f"Test product {number}"),
        description=fields.pop("description", "A product made by a test."),
        price=price,
        currency=currency,
        image=fields.pop("image", None),
        **fields,
    )
    db.session.add(product)
    db.session.flush()
    spread_total(db.session.connection(), product.id, total, buckets)
    db.session.commit()
    return product


def units(product_id: int) -> UnitCounts:
    """The product's total, held and sold units as its buckets count them, read now."""
    return unit_counts(db.session.connection(), [product_id])[product_id]


def visitor(n: int | str = 1) -> str:
    return f"visitor-{n:0>6}"


def lapse(reservation_id: str, seconds_ago: int = 1) -> None:
    """Move a hold's expires_at into the past, as if its time had run out."""
    import uuid

    db.session.execute(
        update(Hold.__table__)
        .where(Hold.__table__.c.id == uuid.UUID(reservation_id))
        .values(expires_at=utcnow() - timedelta(seconds=seconds_ago))
    )
    db.session.commit()


def settle(reservation_id: str) -> None:
    """Settle a hold as its payment's success would, by the shop's own rule (it completes)."""
    import uuid

    from storefront.payments.completion import settle as settle_payment

    hold = db.session.get(Hold, uuid.UUID(reservation_id))
    with db.engine.begin() as conn:
        settled = settle_payment(conn, {"reservationId": reservation_id, "paymentIntentId": f"pi_{uuid.uuid4().hex}",
                                        "amount": hold.amount, "currency": hold.currency})
        assert settled.outcome == "completed"


TEST_WEBHOOK_SECRET = "whsec_test_storefront_suite_secret"
# Test-mode keys for a shop pointed at a local Stripe stand-in (STRIPE_API_BASE); never Stripe's.
STRIPE_KEYS = {
    "STRIPE_SECRET_KEY": "sk_test_StorefrontSuite123",
    "STRIPE_PUBLISHABLE_KEY": "pk_test_StorefrontSuite123",
    "STRIPE_WEBHOOK_SECRET": TEST_WEBHOOK_SECRET,
    "DEMO_PAYMENTS": "0",
}


def stripe_signature(payload: bytes, secret: str = TEST_WEBHOOK_SECRET, timestamp: int | None = None) -> str:
    """Sign as Stripe does: HMAC-SHA256 over "<timestamp>.<raw body>", sent as t=…,v1=…."""
    import hashlib
    import hmac
    import time

    timestamp = int(time.time()) if timestamp is None else timestamp
    digest = hmac.new(secret.encode(), f"{timestamp}.".encode() + payload, hashlib.sha256).hexdigest()
    return f"t={timestamp},v1={digest}"


def intent_event(hold: dict, event_type: str = "payment_intent.succeeded", *, event_id: str | None = None,
                 intent_id: str | None = None, amount: int | None = None, currency: str | None = None,
                 error: str | None = None, shipping: dict | None = None, receipt_email: str | None = None) -> bytes:
    """A Stripe event about the PaymentIntent of ``hold`` (the API's JSON for a hold)."""
    import json
    import uuid as uuid_module

    amount = hold["amount"] if amount is None else amount
    intent = {
        "id": intent_id or hold.get("paymentIntentId") or f"pi_test_{hold['reservationId'].replace('-', '')[:20]}",
        "object": "payment_intent",
        "amount": amount,
        "amount_received": amount if event_type == "payment_intent.succeeded" else 0,
        "currency": currency or hold["currency"],
        "status": {"payment_intent.succeeded": "succeeded", "payment_intent.canceled": "canceled"}.get(
            event_type, "requires_payment_method"),
        "metadata": {"productId": str(hold["productId"]), "userId": hold["userId"],
                     "reservationId": hold["reservationId"]},
        "last_payment_error": {"message": error} if error else None,
        "shipping": shipping,
        "receipt_email": receipt_email,
    }
    event = {"id": event_id or f"evt_test_{uuid_module.uuid4().hex}", "object": "event", "type": event_type,
             "created": 1_700_000_000, "livemode": False, "data": {"object": intent}}
    return json.dumps(event).encode()


# Delivery details as the demo payment form sends them (camelCase, as the API names fields).
DELIVERY = {"email": "ada@example.com", "name": "Ada Lovelace", "line1": "12 Marylebone Road",
            "line2": "Flat 3", "city": "London", "state": "", "postalCode": "NW1 5LR", "country": "GB"}


def counters_against_holds(product_id: int) -> list:
    """The product's buckets whose counters differ from its holds (held = units of the bucket's
    PENDING holds, sold = units of its COMPLETED ones), or that give more than they have: [] when
    exact. Fails when the product has no buckets at all."""
    from sqlalchemy import text

    db.session.expire_all()
    rows = db.session.execute(text(
        "SELECT b.bucket, b.total_units, b.held_units, b.sold_units,"
        " (SELECT coalesce(sum(quantity), 0) FROM holds h WHERE h.product_id = b.product_id"
        "  AND h.bucket = b.bucket AND h.status = 'PENDING'),"
        " (SELECT coalesce(sum(quantity), 0) FROM holds h WHERE h.product_id = b.product_id"
        "  AND h.bucket = b.bucket AND h.status = 'COMPLETED')"
        " FROM stock_buckets b WHERE b.product_id = :product"), {"product": product_id}).all()
    assert rows, f"product {product_id} has no stock buckets"
    return [tuple(row) for row in rows if row[2] != row[4] or row[3] != row[5] or row[2] + row[3] > row[1]]
