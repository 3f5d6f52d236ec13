"""Starting a payment, for any payable (a hold, a checkout): its PaymentIntent, created once and
remembered, and the delivery details the payment form sends before it confirms.

Never inside a transaction: these functions take no connection. Stripe is called with no
transaction open, and the intent's id is recorded afterwards in a transaction of its own
(the idempotency key makes a concurrent second call return the same intent).
"""

import logging

from storefront.clock import utcnow
from storefront.extensions import db
from storefront.orders.book import record_delivery
from storefront.orders.buyers import PastBuyerLimit, refusal_at_delivery
from storefront.orders.delivery import Delivery
from storefront.payments.gateway import PaymentError, PaymentSession, gateway
from storefront.payments.payables import Payable, remember_intent

log = logging.getLogger(__name__)


def open_payment(paid: Payable) -> PaymentSession | None:
    """The payable's payment session: its PaymentIntent for its amount, created once (under its
    idempotency key) and remembered on it and its lines. None when the gateway cannot be reached
    right now: the page says so, and what is held stays held."""
    try:
        session = gateway().open_intent(key=paid.intent_key, amount=paid.amount, currency=paid.currency,
                                        metadata=paid.metadata(), intent_id=paid.payment_intent_id,
                                        capture_method=paid.kind.capture_method)
    except PaymentError as error:
        log.warning("could not start payment for %s %s: %s", paid.kind.name, paid.id, error)
        return None
    if paid.payment_intent_id is None:
        with db.engine.begin() as conn:
            remember_intent(conn, paid, session.intent_id)
    return session


class DeliveryPastBuyerLimit(Exception):
    """The details tell a buyer who already has (or holds) as many of a product as its limit allows."""

    def __init__(self, past: PastBuyerLimit):
        super().__init__(f"past the limit per buyer by {past.field}")
        self.past = past


def attach_delivery(paid: Payable, delivery: Delivery, shop_url: str | None = None) -> None:
    """The shopper's delivery details, given in the payment form: kept on the order (what
    settling reads; committed first), then put on the PaymentIntent for Stripe's receipt.
    Stripe being unreachable does not lose them: the order has them. Details that tell a buyer
    past a product's limit per buyer are refused (DeliveryPastBuyerLimit) before anything is charged."""
    with db.engine.begin() as conn:
        past = refusal_at_delivery(conn, list(paid.lines), delivery, utcnow())
        if past is not None:
            raise DeliveryPastBuyerLimit(past)
        record_delivery(conn, paid.kind.name, paid.row, delivery, shop_url)
    if paid.payment_intent_id:
        try:
            gateway().set_delivery(paid.payment_intent_id, delivery.email, delivery.stripe_shipping())
        except PaymentError as error:
            log.warning("delivery details of %s %s not sent to Stripe: %s", paid.kind.name, paid.id, error)
