"""What a payment does to a hold: the completion rules, in one place.

Every rule runs under the product's row lock (taken first, as everywhere), so a
late payment and a new hold cannot both take the last unit, and a redelivered
or out-of-order event changes the outcome at most once:

- a live PENDING hold becomes COMPLETED: its units move from held to sold;
- a hold already COMPLETED (or REFUNDED) stays as it is: a duplicate;
- a hold that lapsed, expired or was cancelled is COMPLETED if its units are
  free now (same guard as a new hold), and otherwise REFUNDED, with the refund
  issued after the commit, idempotently, until it has gone through;
- a payment whose amount or currency differs from the hold's is recorded and
  refused; the hold is left alone.
"""

import uuid
from dataclasses import dataclass

from sqlalchemy import Connection, literal_column, select, update

from storefront.clock import utcnow
from storefront.inventory.models import HoldStatus
from storefront.inventory.stock import (
    give_back_units,
    holds,
    lock_product,
    release_lapsed_holds,
    sell_free_units,
    sell_held_units,
)


@dataclass(frozen=True)
class Settlement:
    outcome: str  # completed, completed_late, refund_due, duplicate, amount_mismatch, unknown_hold, ...
    hold_id: uuid.UUID | None = None
    refund_amount: int | None = None
    detail: str | None = None


def _hold_id(message: dict) -> uuid.UUID | None:
    try:
        return uuid.UUID(str(message.get("reservationId")))
    except ValueError:
        return None


def _locked_hold(conn: Connection, hold_id: uuid.UUID):
    """The hold, read again under its product's lock: stable until commit."""
    hold = conn.execute(select(holds.c.product_id).where(holds.c.id == hold_id)).first()
    if hold is None:
        return None
    lock_product(conn, hold.product_id)
    return conn.execute(select(holds).where(holds.c.id == hold_id)).first()


def _set_status(conn: Connection, hold_id: uuid.UUID, status: HoldStatus, now, **values) -> None:
    conn.execute(
        update(holds)
        .where(holds.c.id == hold_id)
        .values(status=literal_column(f"'{status.value}'"), updated_at=now, **values)
    )


def settle_payment(conn: Connection, message: dict) -> Settlement:
    """Apply a succeeded payment to its hold. Commits; the caller issues any refund due."""
    hold_id = _hold_id(message)
    hold = _locked_hold(conn, hold_id) if hold_id else None
    if hold is None:
        conn.rollback()
        return Settlement("unknown_hold", hold_id, detail="no hold with this reservationId")

    intent_id = message["paymentIntentId"]
    if hold.payment_intent_id and hold.payment_intent_id != intent_id:
        conn.rollback()
        # Paid through some other intent than the hold's own: never keep that money.
        return Settlement("foreign_intent", hold_id, refund_amount=message["amount"],
                          detail=f"hold's intent is {hold.payment_intent_id}")
    if message["amount"] != hold.amount or message["currency"].lower() != hold.currency:
        conn.rollback()
        return Settlement(
            "amount_mismatch", hold_id,
            detail=f"paid {message['amount']} {message['currency']}, hold is {hold.amount} {hold.currency}",
        )

    if hold.status == HoldStatus.COMPLETED:
        conn.rollback()
        return Settlement("duplicate", hold_id)
    if hold.status == HoldStatus.REFUNDED:
        conn.rollback()
        # Decided before; the refund may not have gone through yet.
        due = hold.amount if hold.refund_id is None else None
        return Settlement("refund_due" if due else "duplicate", hold_id, refund_amount=due)

    now = utcnow()
    if hold.status == HoldStatus.PENDING and hold.expires_at > now:
        _set_status(conn, hold_id, HoldStatus.COMPLETED, now, payment_intent_id=intent_id)
        sell_held_units(conn, hold.product_id, hold.quantity)
        conn.commit()
        return Settlement("completed", hold_id)

    # A late payment: the hold lapsed, expired or was cancelled. Free what has lapsed
    # (this hold too, if it still says PENDING), then sell only what is free now.
    release_lapsed_holds(conn, hold.product_id, now)
    if sell_free_units(conn, hold.product_id, hold.quantity):
        _set_status(conn, hold_id, HoldStatus.COMPLETED, now, payment_intent_id=intent_id)
        conn.commit()
        return Settlement("completed_late", hold_id)
    _set_status(conn, hold_id, HoldStatus.REFUNDED, now, payment_intent_id=intent_id)
    conn.commit()
    return Settlement("refund_due", hold_id, refund_amount=hold.amount)


def record_refund(conn: Connection, hold_id: uuid.UUID, refund_id: str) -> None:
    conn.execute(
        update(holds).where(holds.c.id == hold_id, holds.c.refund_id.is_(None)).values(refund_id=refund_id)
    )
    conn.commit()


def release_cancelled_payment(conn: Connection, message: dict) -> Settlement:
    """``payment_intent.canceled``: a PENDING hold is released (CANCELLED); any other stays."""
    hold_id = _hold_id(message)
    hold = _locked_hold(conn, hold_id) if hold_id else None
    if hold is None:
        conn.rollback()
        return Settlement("unknown_hold", hold_id)
    if hold.status != HoldStatus.PENDING:
        conn.rollback()
        return Settlement(f"kept_{hold.status.lower()}", hold_id)
    now = utcnow()
    _set_status(conn, hold_id, HoldStatus.CANCELLED, now, payment_released_at=now)
    give_back_units(conn, hold.product_id, hold.quantity)
    conn.commit()
    return Settlement("cancelled", hold_id)
