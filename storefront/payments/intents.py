"""Starting a payment, for a hold or a checkout: its PaymentIntent, created once and remembered.

Never inside a transaction: these functions take no connection. Stripe is called with no
transaction open, and the intent's id is recorded afterwards in a transaction of its own
(the idempotency key makes a concurrent second call return the same intent).
"""

import logging

from sqlalchemy import Connection, update

from storefront.cart.checkout import checkout_holds, remember_checkout_intent
from storefront.clock import utcnow
from storefront.extensions import db
from storefront.inventory.stock import holds
from storefront.orders.book import record_delivery
from storefront.orders.buyers import PastBuyerLimit, refusal_at_delivery
from storefront.orders.delivery import Delivery
from storefront.payments.gateway import PaymentError, PaymentSession, checkout_metadata, gateway, intent_metadata

log = logging.getLogger(__name__)


def _open(what: str, subject, metadata: dict, remember) -> PaymentSession | None:
    """Open (or find again) ``subject``'s intent; ``remember(conn, intent_id)`` records a new one.

    None when the gateway cannot be reached right now: the page says so, the hold stays.
    """
    try:
        session = gateway().open_intent(
            key=f"{what}-{subject.id}", amount=subject.amount, currency=subject.currency,
            metadata=metadata, intent_id=subject.payment_intent_id,
        )
    except PaymentError as error:
        log.warning("could not start payment for %s %s: %s", what, subject.id, error)
        return None
    if subject.payment_intent_id is None:
        with db.engine.begin() as conn:
            remember(conn, session.intent_id)
    return session


def _remember_hold_intent(conn: Connection, hold_id, intent_id: str) -> None:
    conn.execute(update(holds).where(holds.c.id == hold_id, holds.c.payment_intent_id.is_(None))
                 .values(payment_intent_id=intent_id))


def start_payment(hold) -> PaymentSession | None:
    """The hold's payment session, or None when the gateway cannot be reached right now."""
    return _open("hold", hold, intent_metadata(hold),
                 lambda conn, intent_id: _remember_hold_intent(conn, hold.id, intent_id))


def start_checkout_payment(checkout, hold_ids) -> PaymentSession | None:
    """The checkout's one PaymentIntent for the sum of its lines; its holds point at it too."""
    return _open("checkout", checkout, checkout_metadata(checkout, hold_ids),
                 lambda conn, intent_id: remember_checkout_intent(conn, checkout.id, intent_id))


class DeliveryPastBuyerLimit(Exception):
    """The details tell a buyer who already has (or holds) as many of a product as its limit allows."""

    def __init__(self, past: PastBuyerLimit):
        super().__init__(f"past the limit per buyer by {past.field}")
        self.past = past


def attach_delivery(kind: str, subject, delivery: Delivery, shop_url: str | None = None) -> None:
    """The shopper's delivery details, given in the payment form: kept on the order (what
    settling reads; committed first), then put on the PaymentIntent for Stripe's receipt.
    Stripe being unreachable does not lose them: the order has them. Details that tell a buyer
    past a product's limit per buyer are refused (DeliveryPastBuyerLimit) before anything is charged."""
    with db.engine.begin() as conn:
        lines = [subject] if kind == "hold" else checkout_holds(conn, subject.id)
        past = refusal_at_delivery(conn, lines, delivery, utcnow())
        if past is not None:
            raise DeliveryPastBuyerLimit(past)
        record_delivery(conn, kind, subject, delivery, shop_url)
    if subject.payment_intent_id:
        try:
            gateway().set_delivery(subject.payment_intent_id, delivery.email, delivery.stripe_shipping())
        except PaymentError as error:
            log.warning("delivery details of %s %s not sent to Stripe: %s", kind, subject.id, error)
