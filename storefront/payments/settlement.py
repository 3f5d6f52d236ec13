"""Settling a payment that Stripe says succeeded: one path, whichever way the shop learns of it.

Three triggers call :func:`settle_succeeded`, and all three end the same way, once:

- ``webhook``: Stripe's ``payment_intent.succeeded``, through the event bus and its job;
- ``return``: the shopper back on the hold or checkout page (Stripe's ``return_url``,
  or the in-place form once it is confirmed), after the shop asked Stripe itself;
- ``reconcile``: the shop asking Stripe about an intent before and after it lets
  the intent's hold go (``payments/reconcile.py``).

The completion rules (``payments/completion.py``) run under the products' locks and
decide at most once; a refund they call for is made here, after their commit, with
an idempotency key of its own, and written down, so a second run never refunds twice.
"""

import logging
from dataclasses import replace

from sqlalchemy import Connection, func, select

from storefront.database import reading
from storefront.extensions import db
from storefront.logs import current_request_id
from storefront.metrics import SETTLEMENTS
from storefront.orders.book import record_paid
from storefront.orders.confirmation import confirm_later
from storefront.payments.completion import Settlement, settle
from storefront.payments.gateway import PaymentError, PaymentRefused, PaymentSession, gateway
from storefront.payments.ledger import payment_events, record_event, record_events
from storefront.payments.payables import named_by, names_a_payable, remember_refund

log = logging.getLogger(__name__)

SCHEMA_VERSION = 1
# Outcomes whose refund gives back the whole payment: it could not buy what it was for.
WHOLE_PAYMENT_REFUNDS = ("amount_mismatch", "foreign_intent", "not_drawn")


class UnusableIntent(ValueError):
    """A PaymentIntent without the id, amount or currency that settling needs."""


def message_from_intent(intent: dict, event_id: str, event_type: str = "payment_intent.succeeded") -> dict:
    """A PaymentIntent as the pipeline carries it (the contract's Kafka value)."""
    metadata = intent.get("metadata") or {}
    try:
        amount = int(intent.get("amount_received") or intent.get("amount"))
        currency = str(intent["currency"]).lower()
        intent_id = str(intent["id"])
    except (KeyError, TypeError, ValueError):
        raise UnusableIntent("payment intent without id, amount or currency") from None
    return {
        "schemaVersion": SCHEMA_VERSION,
        "eventId": event_id,
        "type": event_type,
        "paymentIntentId": intent_id,
        "reservationId": metadata.get("reservationId"),
        "checkoutId": metadata.get("checkoutId"),
        "drawEntryId": metadata.get("drawEntryId"),
        "reservationIds": [part for part in (metadata.get("reservationIds") or "").split(",") if part],
        "productId": metadata.get("productId"),
        "userId": metadata.get("userId"),
        "amount": amount,
        "currency": currency,
        "lastPaymentError": ((intent.get("last_payment_error") or {}).get("message")),
        # Delivery details Stripe kept (the order keeps its own; these fill what it lacks).
        "receiptEmail": intent.get("receipt_email"),
        "shipping": intent.get("shipping"),
        "requestId": current_request_id(),
    }


def settle_succeeded(message: dict, trigger: str) -> str:
    """Apply a succeeded payment to what it paid for, refund what cannot be kept, record it.

    Safe to call any number of times, from any trigger, in any order: the outcome
    changes once. Raises PaymentError when a refund is due and Stripe cannot be
    reached, so that the caller (a job, the sweep) tries again.
    """
    intent_id = message["paymentIntentId"]
    with db.engine.begin() as conn:
        settlement = settle(conn, message)
        to_confirm = record_paid(conn, [_paid_order(settlement, message)]) if settlement.order_paid else set()
        if not settlement.refund_amount:
            # The record commits with the settlement: one transaction, one fsync, per payment.
            _record(conn, message, settlement, trigger)
    refund_id = None
    if settlement.refund_amount:
        # The decision is committed above: a refund only ever follows a committed one.
        refund_id = _refund(settlement, intent_id)
        if refund_id and settlement.outcome == "refund_due":
            settlement = replace(settlement, outcome="refunded")
        with db.engine.begin() as conn:
            _record(conn, message, settlement, trigger, refund_id)
    for order_id in to_confirm:
        confirm_later(order_id)
    SETTLEMENTS.labels(trigger, settlement.outcome).inc()
    log.info("payment %s for %s (%s): %s%s", intent_id, settlement.subject_id, trigger, settlement.outcome,
             f", refund {refund_id}" if refund_id else "")
    return settlement.outcome


def _paid_order(settlement: Settlement, message: dict) -> tuple:
    return settlement.payable.kind.order_kind, settlement.payable.row, message


def _record(conn: Connection, message: dict, settlement: Settlement, trigger: str, refund_id: str | None = None):
    record_event(
        conn, message["eventId"], message["type"], settlement.outcome,
        payment_intent_id=message["paymentIntentId"], reservation_id=settlement.subject_id,
        detail=settlement.detail, trigger=trigger, refund_id=refund_id,
    )


def settle_batch(messages: list[dict], trigger: str) -> list[tuple[dict, str]]:
    """Settle many succeeded payments in ONE transaction: one commit (one fsync) for all.

    Each is decided by the same rules, under the same locks, exactly once; payables of one
    line (single holds) go in product order, so two batches never wait on each other in a
    circle. Refunds due are made after the commit, one by one, as :func:`settle_succeeded`
    makes them. A checkout (it locks several products) and a draw entry are settled each on its own.
    If anything fails, the whole batch rolls back and nothing of it happened: the caller settles each
    alone.
    """
    singles = sorted((m for m in messages if named_by(m)[0] == "hold"), key=lambda m: str(m.get("productId") or ""))
    decided = []
    with db.engine.begin() as conn:
        for message in singles:
            decided.append((message, settle(conn, message)))
        # Their orders paid in one statement, as the ledger below records them in one.
        to_confirm = record_paid(conn, [_paid_order(settlement, message) for message, settlement in decided
                                        if settlement.order_paid])
        record_events(conn, [
            {"eventId": message["eventId"], "type": message["type"], "outcome": settlement.outcome,
             "paymentIntentId": message["paymentIntentId"], "subjectId": settlement.subject_id,
             "detail": settlement.detail}
            for message, settlement in decided if not settlement.refund_amount], trigger)
    for order_id in to_confirm:
        confirm_later(order_id)
    outcomes = []
    for message, settlement in decided:
        if settlement.refund_amount:
            outcomes.append((message, settle_succeeded(message, trigger)))  # decided again: a duplicate then
        else:
            SETTLEMENTS.labels(trigger, settlement.outcome).inc()
            outcomes.append((message, settlement.outcome))
    outcomes += [(message, settle_succeeded(message, trigger)) for message in messages
                 if named_by(message)[0] != "hold"]
    return outcomes


def _refund(settlement: Settlement, intent_id: str) -> str:
    """Give back what the settlement says is due, once, and write down Stripe's refund id."""
    if settlement.outcome in WHOLE_PAYMENT_REFUNDS:
        with reading() as conn:
            earlier = _whole_refund_of(conn, intent_id)
        if earlier:
            return earlier
        return refund_once(intent_id, settlement.refund_amount, f"intent-{intent_id}", settlement.subject_id)
    refund_id = refund_once(intent_id, settlement.refund_amount, settlement.payable.refund_key, settlement.subject_id)
    with db.engine.begin() as conn:
        remember_refund(conn, settlement.payable, refund_id)
    return refund_id


def refund_once(intent_id: str, amount: int, key: str, subject_id=None) -> str:
    """Refund through Stripe under an idempotency key that a retry reuses, unless Stripe refused it.

    Stripe keeps its first answer to a key for 24 hours, errors included. So a retry of a
    request whose outcome is unknown (a timeout) goes out under the same key, and can never
    refund twice; but once Stripe has answered no (the charge not refundable yet, say), that
    no is written down in the ledger and the next attempt goes out under the next key,
    ``<key>-<refusals so far>``, or it would get the same no for a day. Two processes at
    once count the same refusals, so they send the same key, and Stripe makes one refund.
    No transaction is open while Stripe is asked.
    """
    prefix = f"refund-refused:{key}:"
    with reading() as conn:
        refusals = conn.execute(select(func.count()).select_from(payment_events)
                                .where(payment_events.c.id.startswith(prefix, autoescape=True))).scalar_one()
    try:
        return gateway().refund(intent_id, amount, f"{key}-{refusals}")
    except PaymentRefused as refusal:
        with db.engine.begin() as conn:
            record_event(conn, f"{prefix}{refusals}", "refund.refused", "refund_refused", payment_intent_id=intent_id,
                         reservation_id=subject_id, detail=str(refusal), trigger="refund")
        raise


def _whole_refund_of(conn: Connection, intent_id: str) -> str | None:
    return conn.execute(
        select(payment_events.c.refund_id).where(
            payment_events.c.payment_intent_id == intent_id,
            payment_events.c.outcome.in_(WHOLE_PAYMENT_REFUNDS),
            payment_events.c.refund_id.is_not(None),
        ).limit(1)
    ).scalar()


def settle_returned(subject, named_intent_id: str | None) -> str | None:
    """The shopper is back on ``subject``'s page (a payable) naming a PaymentIntent.

    The query string is never trusted: the intent must be the subject's own, and
    Stripe is asked what became of it. If it succeeded, it is settled before the
    page answers. Returns the outcome, or None when there was nothing to settle.
    """
    if not named_intent_id or not subject.payment_intent_id or named_intent_id != subject.payment_intent_id:
        return None
    try:
        intent = gateway().retrieve(subject.payment_intent_id)
        return settle_if_succeeded(intent, "return")
    except PaymentError as error:
        # The shopper's page answers all the same: the sale is decided and committed; a refund
        # it calls for is made by the webhook's job, which Stripe's event starts and RQ retries.
        log.warning("could not settle payment intent %s on return: %s", subject.payment_intent_id, error)
        return None


def settle_paid_form(subject, session: PaymentSession) -> None:
    """A payment form found its intent already paid as it rendered (a reload after paying,
    before the webhook): settled now if it succeeded; one still processing is the webhook's."""
    if session.status == "succeeded":
        settle_returned(subject, session.intent_id)


def settle_if_succeeded(intent: dict, trigger: str) -> str | None:
    """Settle ``intent`` (as Stripe returned it) when it has succeeded; None otherwise."""
    if intent.get("status") != "succeeded":
        return None
    try:
        message = message_from_intent(intent, f"{trigger}-{intent['id']}")
    except UnusableIntent:
        log.warning("payment intent %s cannot be settled: no amount or currency", intent.get("id"))
        return None
    if not names_a_payable(message):
        return None
    return settle_succeeded(message, trigger)
