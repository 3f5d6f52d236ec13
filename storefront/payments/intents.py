"""Starting a hold's payment: its PaymentIntent, created once and remembered."""

import logging

from sqlalchemy import Connection, update

from storefront.inventory.stock import holds
from storefront.payments.gateway import PaymentError, PaymentSession, gateway

log = logging.getLogger(__name__)


def start_payment(conn: Connection, hold) -> PaymentSession | None:
    """The hold's payment session, or None when the gateway cannot be reached right now.

    Never inside the hold's transaction: Stripe is called with no transaction
    open, and the intent's id is recorded afterwards (the idempotency key makes
    a concurrent second call return the same intent).
    """
    conn.rollback()
    try:
        session = gateway().start_payment(hold)
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
