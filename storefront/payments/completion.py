"""What a payment does to a hold: the completion rules, in one place.

Every rule runs under the product's row lock (taken first, as everywhere), so a
late payment and a new hold cannot both take the last unit, and a redelivered
or out-of-order event changes the outcome at most once:

- a live PENDING hold becomes COMPLETED: its units move from held to sold;
- a hold already COMPLETED (or REFUNDED) stays as it is: a duplicate;
- a hold that lapsed, expired or was cancelled is COMPLETED if its units are
  free now (same guard as a new hold), and otherwise REFUNDED, with the refund
  issued after the commit, idempotently, until it has gone through;
- a payment that would give its buyer more of a product than its limit per buyer (the same
  buyer paying twice at once: orders/buyers.py) is refunded and its hold REFUNDED;
- a payment whose amount or currency differs from the hold's cannot buy it: it
  is refunded in full and recorded with its reason; the hold is left alone.
"""

import uuid
from dataclasses import dataclass

from sqlalchemy import Connection, bindparam, func, literal_column, select, update

from storefront.cart.checkout import clear_paid_lines, find_checkout, remember_checkout_refund
from storefront.clock import utcnow
from storefront.inventory.models import HoldStatus
from storefront.orders.buyers import over_limit_at_settlement
from storefront.inventory.stock import (
    give_back_units,
    holds,
    lock_product,
    products,
    release_lapsed_holds,
    sell_free_units,
    sell_held_units,
)


@dataclass(frozen=True)
class Settlement:
    outcome: str  # completed, completed_late, refund_due, duplicate, amount_mismatch, unknown_hold, ...
    subject_id: uuid.UUID | None = None  # the hold, or the checkout, that the payment was for
    refund_amount: int | None = None
    detail: str | None = None
    is_checkout: bool = False
    # ("hold" or "checkout", its row) when this payment was kept or is being refunded for it: the
    # caller records its order as paid in the same transaction (orders.book.record_paid).
    paid_order: tuple[str, object] | None = None


def _hold_id(message: dict) -> uuid.UUID | None:
    try:
        return uuid.UUID(str(message.get("reservationId")))
    except ValueError:
        return None


_LOCK_PRODUCT_OF_HOLD = (
    select(products.c.id)
    .where(products.c.id == select(holds.c.product_id).where(holds.c.id == bindparam("hold")).scalar_subquery())
    .with_for_update(key_share=True)
)


def _locked_hold(conn: Connection, hold_id: uuid.UUID):
    """The hold, read (again) under its product's lock, taken first: stable until commit."""
    if conn.dialect.name == "postgresql":
        # One statement finds the hold's product and locks it; the hold is read after.
        if conn.execute(_LOCK_PRODUCT_OF_HOLD, {"hold": hold_id}).first() is None:
            return None
    else:
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
    """Apply a succeeded payment to its hold. Leaves the transaction open, its product
    still locked: the caller commits it together with the ledger's record (one payment,
    or a batch of them), and then issues any refund due."""
    hold_id = _hold_id(message)
    hold = _locked_hold(conn, hold_id) if hold_id else None
    if hold is None:
        return Settlement("unknown_hold", hold_id, detail="no hold with this reservationId")

    intent_id = message["paymentIntentId"]
    if hold.payment_intent_id and hold.payment_intent_id != intent_id:
        # Paid through some other intent than the hold's own: never keep that money.
        return Settlement("foreign_intent", hold_id, refund_amount=message["amount"],
                          detail=f"hold's intent is {hold.payment_intent_id}")
    if message["amount"] != hold.amount or message["currency"].lower() != hold.currency:
        return Settlement(
            "amount_mismatch", hold_id, refund_amount=message["amount"],
            detail=f"paid {message['amount']} {message['currency']}, hold is {hold.amount} {hold.currency}",
        )

    if hold.status == HoldStatus.COMPLETED:
        return Settlement("duplicate", hold_id)
    if hold.status == HoldStatus.REFUNDED:
        # Decided before; the refund may not have gone through yet.
        due = hold.amount if hold.refund_id is None else None
        return Settlement("refund_due" if due else "duplicate", hold_id, refund_amount=due)

    now = utcnow()
    if over_limit_at_settlement(conn, hold, now):
        _refund_past_buyer_limit(conn, hold, now, intent_id)
        return Settlement("refund_due", hold_id, refund_amount=hold.amount, paid_order=("hold", hold),
                          detail="past the product's limit per buyer")
    if hold.status == HoldStatus.PENDING and hold.expires_at > now:
        _set_status(conn, hold_id, HoldStatus.COMPLETED, now, payment_intent_id=intent_id)
        sell_held_units(conn, hold.product_id, hold.bucket, hold.quantity)
        return Settlement("completed", hold_id, paid_order=("hold", hold))

    # A late payment: the hold lapsed, expired or was cancelled. Free what has lapsed
    # (this hold too, if it still says PENDING), then sell only what is free now.
    release_lapsed_holds(conn, hold.product_id, now)
    if (bucket := sell_free_units(conn, hold.product_id, hold.quantity)) is not None:
        _set_status(conn, hold_id, HoldStatus.COMPLETED, now, payment_intent_id=intent_id, bucket=bucket)
        return Settlement("completed_late", hold_id, paid_order=("hold", hold))
    _set_status(conn, hold_id, HoldStatus.REFUNDED, now, payment_intent_id=intent_id)
    return Settlement("refund_due", hold_id, refund_amount=hold.amount, paid_order=("hold", hold))


def _refund_past_buyer_limit(conn: Connection, hold, now, intent_id: str) -> None:
    """The same buyer paid twice at once: this payment would pass the product's limit per buyer, so
    its hold is REFUNDED and its units (still held, if it was PENDING) are free again."""
    if hold.status == HoldStatus.PENDING:
        give_back_units(conn, hold.product_id, hold.bucket, hold.quantity)
    _set_status(conn, hold.id, HoldStatus.REFUNDED, now, payment_intent_id=intent_id)


def record_refund(conn: Connection, hold_id: uuid.UUID, refund_id: str) -> None:
    conn.execute(
        update(holds).where(holds.c.id == hold_id, holds.c.refund_id.is_(None)).values(refund_id=refund_id)
    )


def release_cancelled_payment(conn: Connection, message: dict) -> Settlement:
    """``payment_intent.canceled``: a PENDING hold is released (CANCELLED); any other stays."""
    hold_id = _hold_id(message)
    hold = _locked_hold(conn, hold_id) if hold_id else None
    if hold is None:
        return Settlement("unknown_hold", hold_id)
    if hold.status != HoldStatus.PENDING:
        return Settlement(f"kept_{hold.status.lower()}", hold_id)
    now = utcnow()
    _set_status(conn, hold_id, HoldStatus.CANCELLED, now, payment_released_at=now)
    give_back_units(conn, hold.product_id, hold.bucket, hold.quantity)
    return Settlement("cancelled", hold_id)


def _checkout_id(message: dict) -> uuid.UUID | None:
    try:
        return uuid.UUID(str(message.get("checkoutId")))
    except ValueError:
        return None


def _checkout_under_lock(conn: Connection, checkout_id: uuid.UUID):
    """The checkout and its holds, re-read under every product's lock (taken in id order)."""
    checkout = find_checkout(conn, checkout_id)
    if checkout is None:
        return None, []
    product_ids = sorted(conn.execute(
        select(holds.c.product_id).where(holds.c.checkout_id == checkout_id).distinct()).scalars())
    for product_id in product_ids:
        lock_product(conn, product_id)
    lines = conn.execute(select(holds).where(holds.c.checkout_id == checkout_id).order_by(holds.c.product_id)).all()
    return checkout, lines


def settle_checkout(conn: Connection, message: dict) -> Settlement:
    """One succeeded payment for a whole checkout: every line the same rules as a single hold.

    Lines whose units are gone are REFUNDED; the refund due is the sum of their amounts
    (a partial refund), issued by the caller. Leaves the transaction for the caller to commit.
    """
    checkout_id = _checkout_id(message)
    checkout, lines = _checkout_under_lock(conn, checkout_id) if checkout_id else (None, [])
    if checkout is None:
        return Settlement("unknown_checkout", None, detail="no checkout with this checkoutId", is_checkout=True)
    if checkout.payment_intent_id and checkout.payment_intent_id != message["paymentIntentId"]:
        return Settlement("foreign_intent", checkout_id, refund_amount=message["amount"], is_checkout=True,
                          detail=f"checkout's intent is {checkout.payment_intent_id}")
    if message["amount"] != checkout.amount or message["currency"].lower() != checkout.currency:
        return Settlement("amount_mismatch", checkout_id, refund_amount=message["amount"], is_checkout=True,
                          detail=f"paid {message['amount']} {message['currency']}, "
                                 f"checkout is {checkout.amount} {checkout.currency}")
    now = utcnow()
    intent_id = message["paymentIntentId"]
    changed = False
    for line in lines:
        if line.status in (HoldStatus.COMPLETED, HoldStatus.REFUNDED):
            continue
        changed = True
        if over_limit_at_settlement(conn, line, now):
            _refund_past_buyer_limit(conn, line, now, intent_id)
            continue
        if line.status == HoldStatus.PENDING and line.expires_at > now:
            _set_status(conn, line.id, HoldStatus.COMPLETED, now, payment_intent_id=intent_id)
            sell_held_units(conn, line.product_id, line.bucket, line.quantity)
            continue
        release_lapsed_holds(conn, line.product_id, now)
        if (bucket := sell_free_units(conn, line.product_id, line.quantity)) is not None:
            _set_status(conn, line.id, HoldStatus.COMPLETED, now, payment_intent_id=intent_id, bucket=bucket)
        else:
            _set_status(conn, line.id, HoldStatus.REFUNDED, now, payment_intent_id=intent_id)
    clear_paid_lines(conn, checkout, [line.product_id for line in lines])
    refunded = conn.execute(select(func.coalesce(func.sum(holds.c.amount), 0)).where(
        holds.c.checkout_id == checkout_id, holds.c.status == literal_column("'REFUNDED'"))).scalar_one()
    due = refunded if refunded and checkout.refund_id is None else None
    outcome = "completed" if changed else "duplicate"
    if due:
        outcome = "partly_refunded" if refunded < checkout.amount else "refund_due"
    return Settlement(outcome, checkout_id, refund_amount=due, is_checkout=True,
                      paid_order=("checkout", checkout) if changed else None)


def record_checkout_refund(conn: Connection, checkout_id: uuid.UUID, refund_id: str) -> None:
    remember_checkout_refund(conn, checkout_id, refund_id)
    conn.execute(update(holds).where(holds.c.checkout_id == checkout_id, holds.c.status == literal_column(
        "'REFUNDED'"), holds.c.refund_id.is_(None)).values(refund_id=refund_id))


def release_cancelled_checkout(conn: Connection, message: dict) -> Settlement:
    """``payment_intent.canceled`` for a checkout: its PENDING lines are released."""
    checkout_id = _checkout_id(message)
    checkout, lines = _checkout_under_lock(conn, checkout_id) if checkout_id else (None, [])
    if checkout is None:
        return Settlement("unknown_checkout", None)
    now = utcnow()
    released = 0
    for line in lines:
        if line.status == HoldStatus.PENDING:
            _set_status(conn, line.id, HoldStatus.CANCELLED, now, payment_released_at=now)
            give_back_units(conn, line.product_id, line.bucket, line.quantity)
            released += 1
    return Settlement("cancelled" if released else "kept", checkout_id)
