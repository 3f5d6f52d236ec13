"""Payment jobs. Each takes plain data, re-reads state, is safe to run twice,
and raises on failure so that it is retried."""

import logging

from sqlalchemy import select, update

from storefront.clock import utcnow
from storefront.extensions import db
from storefront.inventory.models import HoldStatus
from storefront.inventory.stock import holds
from storefront.payments.completion import record_checkout_refund, record_refund, settle_checkout, settle_payment
from storefront.payments.gateway import PaymentError, gateway
from storefront.logs import request_id_var
from storefront.metrics import measured_job
from storefront.payments.ledger import record_event

log = logging.getLogger(__name__)


@measured_job("complete_payment")
def complete_payment(message: dict) -> str:
    """A ``payment_intent.succeeded``: complete the hold, or refund a payment that cannot be kept."""
    token = request_id_var.set(message.get("requestId"))  # the request that started it all, in our logs
    try:
        return _complete_payment(message)
    finally:
        request_id_var.reset(token)


def _complete_payment(message: dict) -> str:
    intent_id = message["paymentIntentId"]
    with db.engine.connect() as conn:
        settlement = settle_payment(conn, message)
        if settlement.refund_amount:
            own_hold = settlement.outcome == "refund_due"
            key = str(settlement.subject_id) if own_hold else f"intent-{intent_id}"
            refund_id = gateway().refund(intent_id, settlement.refund_amount, key)
            if own_hold:
                record_refund(conn, settlement.subject_id, refund_id)
        record_event(
            conn, message["eventId"], message["type"], settlement.outcome,
            payment_intent_id=intent_id, reservation_id=settlement.subject_id, detail=settlement.detail,
        )
    log.info("payment %s for hold %s: %s", intent_id, settlement.subject_id, settlement.outcome)
    return settlement.outcome


@measured_job("complete_checkout_payment")
def complete_checkout_payment(message: dict) -> str:
    """One ``payment_intent.succeeded`` for a checkout: complete its lines, refund the ones sold elsewhere."""
    token = request_id_var.set(message.get("requestId"))
    try:
        intent_id = message["paymentIntentId"]
        with db.engine.connect() as conn:
            settlement = settle_checkout(conn, message)
            if settlement.refund_amount:
                refund_id = gateway().refund(intent_id, settlement.refund_amount, f"checkout-{settlement.subject_id}")
                record_checkout_refund(conn, settlement.subject_id, refund_id)
            record_event(conn, message["eventId"], message["type"], settlement.outcome,
                         payment_intent_id=intent_id, reservation_id=settlement.subject_id, detail=settlement.detail)
        log.info("payment %s for checkout %s: %s", intent_id, settlement.subject_id, settlement.outcome)
        return settlement.outcome
    finally:
        request_id_var.reset(token)


_RELEASED_UNPAID = (
    select(holds.c.id, holds.c.payment_intent_id)
    .where(
        holds.c.status.in_([HoldStatus.EXPIRED.value, HoldStatus.CANCELLED.value]),
        holds.c.payment_intent_id.is_not(None),
        holds.c.payment_released_at.is_(None),
    )
    .limit(500)
)


def release_payment(hold_id, intent_id: str) -> bool:
    """Cancel a released hold's PaymentIntent where Stripe allows, so it can rarely be paid at all.

    True once settled (cancelled, or past cancelling); False if Stripe could not be reached.
    """
    try:
        gateway().cancel(intent_id)
    except PaymentError as error:
        log.warning("could not cancel payment intent %s yet: %s", intent_id, error)
        return False
    with db.engine.connect() as conn:
        conn.execute(
            update(holds)
            .where(holds.c.id == hold_id, holds.c.payment_released_at.is_(None))
            .values(payment_released_at=utcnow())
        )
        conn.commit()
    return True


def release_unpaid_payments() -> int:
    """Cancel the PaymentIntents of expired and cancelled holds that still have one open."""
    with db.engine.connect() as conn:
        released = conn.execute(_RELEASED_UNPAID).all()
    return sum(release_payment(hold_id, intent_id) for hold_id, intent_id in released)
