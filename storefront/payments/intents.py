"""Starting a payment, for a hold or a checkout: its PaymentIntent, created once and remembered."""

import logging

from sqlalchemy import Connection, update

from storefront.cart.models import Checkout
from storefront.inventory.stock import holds
from storefront.payments.gateway import PaymentError, PaymentSession, checkout_metadata, gateway, intent_metadata

log = logging.getLogger(__name__)
checkouts = Checkout.__table__


def start_payment(conn: Connection, hold) -> PaymentSession | None:
    """The hold's payment session, or None when the gateway cannot be reached right now.

    Never inside the hold's transaction: Stripe is called with no transaction
    open, and the intent's id is recorded afterwards (the idempotency key makes
    a concurrent second call return the same intent).
    """
    conn.rollback()
    try:
        session = gateway().open_intent(
            key=f"hold-{hold.id}", amount=hold.amount, currency=hold.currency,
            metadata=intent_metadata(hold), intent_id=hold.payment_intent_id,
        )
    except PaymentError as error:
        log.warning("could not start payment for hold %s: %s", hold.id, error)
        return None
    if hold.payment_intent_id is None:
        conn.execute(
            update(holds)
            .where(holds.c.id == hold.id, holds.c.payment_intent_id.is_(None))
            .values(payment_intent_id=session.intent_id)
        )
        conn.commit()
    return session


def start_checkout_payment(conn: Connection, checkout, hold_ids) -> PaymentSession | None:
    """The checkout's one PaymentIntent for the sum of its lines, like a hold's."""
    conn.rollback()
    try:
        session = gateway().open_intent(
            key=f"checkout-{checkout.id}", amount=checkout.amount, currency=checkout.currency,
            metadata=checkout_metadata(checkout, hold_ids), intent_id=checkout.payment_intent_id,
        )
    except PaymentError as error:
        log.warning("could not start payment for checkout %s: %s", checkout.id, error)
        return None
    if checkout.payment_intent_id is None:
        conn.execute(
            update(checkouts)
            .where(checkouts.c.id == checkout.id, checkouts.c.payment_intent_id.is_(None))
            .values(payment_intent_id=session.intent_id)
        )
        conn.execute(
            update(holds)
            .where(holds.c.checkout_id == checkout.id, holds.c.payment_intent_id.is_(None))
            .values(payment_intent_id=session.intent_id)
        )
        conn.commit()
    return session
