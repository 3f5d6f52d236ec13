"""Stripe's webhook: verify the signature on the raw body, then act on the event.

Nothing but a correctly signed, fresh (300 s) request can change a hold. A
``payment_intent.succeeded`` is handed to the event bus and acknowledged only
once the bus holds it durably; the rest are handled here.
"""

import json
import logging
import uuid
from dataclasses import dataclass

import stripe

from storefront.events import EventNotDurable
from storefront.events.bus import publish_payment_event
from storefront.extensions import db
from storefront.metrics import WEBHOOK_EVENTS
from storefront.orders.book import record_stripe_refund
from storefront.inventory import draw
from storefront.clock import utcnow
from storefront.payments.completion import release_cancelled
from storefront.payments.draws import take_authorisation
from storefront.payments.gateway import PaymentError
from storefront.payments.gateway import gateway
from storefront.payments.ledger import record_event
from storefront.payments.messages import sealed
from storefront.payments.payables import named_by, names_a_payable
from storefront.payments.settlement import UnusableIntent, message_from_intent

log = logging.getLogger(__name__)

SIGNATURE_TOLERANCE_SECONDS = 300


class InvalidEvent(Exception):
    """Unsigned, wrongly signed, stale or malformed: a 400, and nothing happens."""


@dataclass(frozen=True)
class Receipt:
    status: int
    body: dict


def verify(payload: bytes, signature: str | None, secret: str) -> dict:
    if not signature:
        raise InvalidEvent("missing Stripe-Signature header")
    try:
        text = payload.decode("utf-8")
        stripe.WebhookSignature.verify_header(text, signature, secret, SIGNATURE_TOLERANCE_SECONDS)
        event = json.loads(text)
    except (UnicodeDecodeError, stripe.SignatureVerificationError, ValueError) as error:
        raise InvalidEvent(str(error).split("\n")[0]) from None
    if not isinstance(event, dict) or not isinstance(event.get("id"), str) or not isinstance(event.get("type"), str):
        raise InvalidEvent("not a Stripe event")
    return event


def payment_message(event: dict) -> dict:
    """The event as the pipeline carries it (the contract's Kafka value)."""
    intent = (event.get("data") or {}).get("object") or {}
    try:
        return message_from_intent(intent, event["id"], event["type"])
    except UnusableIntent as unusable:
        raise InvalidEvent(str(unusable)) from None


def receive(payload: bytes, signature: str | None) -> Receipt:
    """Everything the webhook does, for Stripe's requests and the demo gateway's alike."""
    try:
        event = verify(payload, signature, gateway().webhook_secret)
    except InvalidEvent:
        WEBHOOK_EVENTS.labels("unverified", "refused").inc()
        raise
    if event["type"] == "charge.refunded":
        return _charge_refunded(event)
    handler = _HANDLERS.get(event["type"])
    if handler is None:
        WEBHOOK_EVENTS.labels("other", "ignored").inc()
        return Receipt(200, {"received": True})
    message = payment_message(event)
    if not names_a_payable(message):
        # Not one of our intents (another integration on the same account).
        log.info("stripe event %s for an intent that names nothing of ours: ignored", event["id"])
        WEBHOOK_EVENTS.labels(event["type"], "ignored").inc()
        return Receipt(200, {"received": True})
    receipt = handler(message, event["data"]["object"])
    kind, subject = named_by(message)
    log.info("stripe event %s (%s) for %s %s: %s", event["id"], event["type"], kind, subject, receipt.status)
    WEBHOOK_EVENTS.labels(event["type"], "accepted" if receipt.status == 200 else "unavailable").inc()
    return receipt


# Each handler takes the event's message and the PaymentIntent as Stripe sent it.

def _succeeded(message: dict, intent: dict) -> Receipt:
    try:
        publish_payment_event(sealed(message))
    except EventNotDurable as error:
        log.warning("payment event %s not handed over: %s", message["eventId"], error)
        return Receipt(503, {"error": "unavailable", "message": "Event not stored; deliver it again."})
    return Receipt(200, {"received": True})


def _failed(message: dict, intent: dict) -> Receipt:
    with db.engine.begin() as conn:
        record_event(
            conn, message["eventId"], message["type"], "payment_failed",
            payment_intent_id=message["paymentIntentId"], reservation_id=message["reservationId"],
            detail=message["lastPaymentError"],
        )
    return Receipt(200, {"received": True})


def _canceled(message: dict, intent: dict) -> Receipt:
    with db.engine.begin() as conn:
        if message["drawEntryId"]:
            entry_id = _entry_id(message)
            outcome = (draw.cancelled_by_stripe(conn, entry_id, utcnow()) if entry_id else None) or "unknown_entry"
        else:
            outcome = release_cancelled(conn, message).outcome
        record_event(
            conn, message["eventId"], message["type"], outcome,
            payment_intent_id=message["paymentIntentId"],
            reservation_id=message["reservationId"] or message["checkoutId"] or message["drawEntryId"],
        )
    return Receipt(200, {"received": True})


def _entry_id(message: dict):
    try:
        return uuid.UUID(str(message["drawEntryId"]))
    except ValueError:
        return None


def _authorised(message: dict, intent: dict) -> Receipt:
    """``payment_intent.amount_capturable_updated``: a draw entry's card is authorised. Stripe is asked
    for the card's fingerprint (one entry per card) before the answer: unreachable, the event is
    refused (503) and Stripe delivers it again."""
    entry_id = _entry_id(message)
    if entry_id is None:
        return Receipt(200, {"received": True})
    try:
        status = take_authorisation(entry_id, {**intent, "id": message["paymentIntentId"]})
    except PaymentError as error:
        log.warning("draw entry %s: card not checked yet (%s)", entry_id, error)
        return Receipt(503, {"error": "unavailable", "message": "Stripe could not be asked; deliver it again."})
    with db.engine.begin() as conn:
        record_event(conn, message["eventId"], message["type"], status or "not_authorised",
                     payment_intent_id=message["paymentIntentId"], reservation_id=message["drawEntryId"])
    return Receipt(200, {"received": True})


def _charge_refunded(event: dict) -> Receipt:
    """A refund made anywhere (the shop's own, or one in Stripe's Dashboard): the order says refunded."""
    charge = (event.get("data") or {}).get("object") or {}
    intent_id, refunded = charge.get("payment_intent"), charge.get("amount_refunded")
    if not isinstance(intent_id, str) or not isinstance(refunded, int) or isinstance(refunded, bool):
        # A charge made without a PaymentIntent is none of ours (another integration's).
        WEBHOOK_EVENTS.labels("charge.refunded", "ignored").inc()
        return Receipt(200, {"received": True})
    with db.engine.begin() as conn:
        changed = record_stripe_refund(conn, intent_id, refunded)
    log.info("stripe event %s (charge.refunded) for %s: %s refunded in all, %d order(s) changed",
             event["id"], intent_id, refunded, changed)
    WEBHOOK_EVENTS.labels("charge.refunded", "accepted").inc()
    return Receipt(200, {"received": True})


_HANDLERS = {
    "payment_intent.succeeded": _succeeded,
    "payment_intent.payment_failed": _failed,
    "payment_intent.canceled": _canceled,
    "payment_intent.amount_capturable_updated": _authorised,
}
