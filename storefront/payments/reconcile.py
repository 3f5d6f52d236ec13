"""Reconciliation: the shop asks Stripe, before and after it lets a hold's payment go.

A webhook can be lost (the Stripe CLI not running, an endpoint misconfigured, a
job gone with an emptied Redis), so the shop never takes silence for "unpaid":

- a live hold whose PaymentIntent was opened is asked about once as it comes to
  lapse: paid means settled on time, like the webhook would have;
- a hold released unpaid (lapsed, cancelled, or replaced by a checkout) is asked
  about until its intent is settled with Stripe: ``succeeded`` → the late-payment
  rules (sold if the units are free, otherwise refunded once); ``processing`` →
  asked again later, never forgotten; anything else → cancelled, so it cannot be
  paid any more; Stripe unreachable → asked again, with backoff.

Only intents that were opened are asked about, one request per intent (a
checkout's lines share theirs), at most ``BATCH`` a run: well inside Stripe's rate
limits. Availability never waits for any of this: a lapsed hold stops counting
at ``expires_at`` on its own.
"""

import logging
from collections import Counter
from datetime import datetime, timedelta

from sqlalchemy import and_, func, or_, select

from storefront.clock import utcnow
from storefront.database import reading
from storefront.extensions import db
from storefront.inventory import hold_rows
from storefront.inventory.stock import holds
from storefront.metrics import INTENT_CHECKS
from storefront.payments.gateway import PaymentError, gateway
from storefront.payments.settlement import settle_if_succeeded

log = logging.getLogger(__name__)

BATCH = 100
BACKOFF_FIRST_SECONDS = 30
BACKOFF_MAX_SECONDS = 3600
# Stripe is still working on it (a bank debit, say): ask again this often.
PROCESSING_RECHECK_SECONDS = 60
# Statuses from which Stripe lets us cancel; the payment can still be made from them.
_CANCELLABLE = {"requires_payment_method", "requires_confirmation", "requires_action", "requires_capture"}

_unsettled = and_(hold_rows.released, holds.c.payment_intent_id.is_not(None), holds.c.payment_released_at.is_(None))


def _due_intents(conn, now: datetime, lapsing_before: datetime) -> tuple[list[str], list[tuple[str, datetime]]]:
    """(intents of released holds to settle, (intent, lapse time) of live holds about to lapse), oldest first."""
    released = conn.execute(
        select(holds.c.payment_intent_id)
        .where(_unsettled, or_(holds.c.intent_check_after.is_(None), holds.c.intent_check_after <= now))
        .group_by(holds.c.payment_intent_id)
        .order_by(func.min(holds.c.expires_at))
        .limit(BATCH)
    ).scalars().all()
    lapsing = conn.execute(
        select(holds.c.payment_intent_id, func.max(holds.c.expires_at))
        .where(hold_rows.lapsed(lapsing_before), holds.c.payment_intent_id.is_not(None),
               or_(holds.c.intent_check_after.is_(None), holds.c.intent_check_after <= now))
        .group_by(holds.c.payment_intent_id)
        .order_by(func.min(holds.c.expires_at))
        .limit(BATCH)
    ).all()
    return list(released), [(intent, lapses_at) for intent, lapses_at in lapsing if intent not in released]


def _mark(intent_id: str, **values) -> None:
    with db.engine.begin() as conn:
        hold_rows.note_intent(conn, intent_id, **values)


def mark_intent_settled(intent_id: str) -> None:
    """Stripe and the shop agree on this intent now: stop asking about its released holds."""
    with db.engine.begin() as conn:
        hold_rows.mark_intent_settled(conn, intent_id, utcnow())


def _ask_later(intent_id: str, now: datetime, seconds: float | None = None) -> None:
    """Ask again after ``seconds``; without it, back off: 30 s, 1 min, 2 min ... at most an hour."""
    with reading() as conn:
        checks = conn.execute(select(func.max(holds.c.intent_checks))
                              .where(holds.c.payment_intent_id == intent_id)).scalar() or 0
    if seconds is None:
        seconds = min(BACKOFF_FIRST_SECONDS * 2 ** checks, BACKOFF_MAX_SECONDS)
    _mark(intent_id, intent_checks=checks + 1, intent_check_after=now + timedelta(seconds=seconds))


def settle_released_intent(intent_id: str, now: datetime | None = None) -> str:
    """Settle with Stripe the intent of a hold that was released unpaid. Returns what was done.

    Paid → settled through the late-payment rules; cancellable → cancelled; still
    processing or Stripe unreachable → asked again later.
    """
    now = now or utcnow()
    try:
        intent = gateway().retrieve(intent_id)
        status = intent["status"]
        if status in _CANCELLABLE:
            status = gateway().cancel(intent_id)
            if status == "succeeded":  # paid between our two questions
                intent = gateway().retrieve(intent_id)
    except PaymentError as error:
        INTENT_CHECKS.labels("unreachable").inc()
        log.warning("could not ask Stripe about payment intent %s: %s", intent_id, error)
        _ask_later(intent_id, now)
        return "unreachable"
    INTENT_CHECKS.labels(status).inc()
    if status == "succeeded":
        try:
            outcome = settle_if_succeeded(intent, "reconcile")
        except PaymentError as error:  # a refund is due and Stripe went away meanwhile
            log.warning("could not refund payment intent %s yet: %s", intent_id, error)
            _ask_later(intent_id, now)
            return "unreachable"
        mark_intent_settled(intent_id)
        return outcome or "succeeded"
    if status == "canceled":
        mark_intent_settled(intent_id)
        return "canceled"
    _ask_later(intent_id, now, PROCESSING_RECHECK_SECONDS if status == "processing" else None)
    return status


def check_lapsing_intent(intent_id: str, lapses_at: datetime) -> str:
    """A live hold's intent, as the hold comes to lapse: settle it on time if it was paid."""
    try:
        intent = gateway().retrieve(intent_id)
    except PaymentError as error:
        INTENT_CHECKS.labels("unreachable").inc()
        log.warning("could not ask Stripe about payment intent %s: %s", intent_id, error)
        return "unreachable"  # asked again once the hold is released
    INTENT_CHECKS.labels(intent["status"]).inc()
    if intent["status"] == "succeeded":
        return settle_if_succeeded(intent, "reconcile") or "succeeded"
    # Not paid yet: the shopper may still pay until it lapses. Ask again once it is released.
    _mark(intent_id, intent_check_after=lapses_at)
    return intent["status"]


def reconcile_payments(lookahead_seconds: float = 60, now: datetime | None = None) -> dict:
    """One round: the intents of holds about to lapse, and of holds released but not settled."""
    now = now or utcnow()
    with reading() as conn:
        released, lapsing = _due_intents(conn, now, now + timedelta(seconds=lookahead_seconds))
    outcomes = Counter(check_lapsing_intent(intent_id, lapses_at) for intent_id, lapses_at in lapsing)
    outcomes.update(settle_released_intent(intent_id, now) for intent_id in released)
    return dict(outcomes)


def close_intent(intent_id: str) -> str:
    """Before a live hold is released at the shopper's request: cancel its intent, or settle it if paid.

    Returns ``canceled`` (release the hold), ``succeeded`` (it was paid, and is settled:
    the hold is not the shopper's to release any more), ``processing``, or
    ``unreachable`` (release the hold; reconciliation settles the intent later).
    """
    try:
        status = gateway().cancel(intent_id)
        if status == "succeeded":
            settle_if_succeeded(gateway().retrieve(intent_id), "reconcile")
    except PaymentError as error:
        log.warning("could not cancel payment intent %s: %s", intent_id, error)
        return "unreachable"
    return status
