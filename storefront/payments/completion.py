"""What a payment does to what it paid for (a payable: a hold, or a checkout's holds): the
completion rules, in one place, line by line.

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
  is refunded in full and recorded with its reason; the hold is left alone;
- a draw entry's capture settles the hold it was given at the draw (its one line), and the
  entry has won; an entry captured without a unit (never drawn one) is refunded in full.
"""

import uuid
from dataclasses import dataclass

from sqlalchemy import Connection

from storefront.cart.checkout import clear_paid_lines
from storefront.clock import utcnow
from storefront.inventory import draw
from storefront.inventory.hold_rows import is_live, set_status
from storefront.inventory.models import HoldStatus
from storefront.inventory.stock import give_back_units, release_lapsed_holds, sell_free_units, sell_held_units
from storefront.orders.buyers import over_limit_at_settlement
from storefront.payments.payables import KINDS, Payable, locked, named_by


@dataclass(frozen=True)
class Settlement:
    outcome: str  # completed, completed_late, partly_refunded, refund_due, duplicate, amount_mismatch, unknown_hold, ...
    subject_id: uuid.UUID | None = None  # the payable (a hold, or a checkout) that the payment was for
    refund_amount: int | None = None
    detail: str | None = None
    payable: Payable | None = None  # what it paid for, as read under the locks; a refund is recorded on it
    # This payment was kept or is being refunded for it now: the caller records its order as paid in
    # the same transaction (orders.book.record_paid).
    order_paid: bool = False


def settle(conn: Connection, message: dict) -> Settlement:
    """Apply a succeeded payment to what it paid for, line by line under the products' locks. Leaves
    the transaction open: the caller commits it together with the ledger's record (one payment, or a
    batch of them), and then issues any refund due (the sum of the lines that could not be sold)."""
    kind, payable_id = named_by(message)
    paid = locked(conn, kind, payable_id) if payable_id else None
    if paid is None:
        return Settlement(f"unknown_{kind}", payable_id,
                          detail=f"no {kind} with this {KINDS[kind].id_field}")
    intent_id = message["paymentIntentId"]
    if paid.payment_intent_id and paid.payment_intent_id != intent_id:
        # Paid through some other intent than its own: never keep that money.
        return Settlement("foreign_intent", paid.id, refund_amount=message["amount"],
                          detail=f"{kind}'s intent is {paid.payment_intent_id}")
    if kind == "entry" and not paid.lines:
        return Settlement("not_drawn", paid.id, refund_amount=message["amount"],
                          detail="an entry captured without a unit drawn for it")
    if message["amount"] != paid.amount or message["currency"].lower() != paid.currency:
        return Settlement("amount_mismatch", paid.id, refund_amount=message["amount"],
                          detail=f"paid {message['amount']} {message['currency']}, {kind} is {paid.amount} {paid.currency}")

    now = utcnow()
    changed = late = past_limit = False
    refunded = 0  # the lines this payment cannot buy: decided now, or before (its refund may not have gone through)
    for line in paid.lines:
        if line.status == HoldStatus.REFUNDED:
            refunded += line.amount
        if line.status in (HoldStatus.COMPLETED, HoldStatus.REFUNDED):
            continue  # decided before
        changed = True
        if over_limit_at_settlement(conn, line, now):
            _refund_past_buyer_limit(conn, line, now, intent_id)
            past_limit, refunded = True, refunded + line.amount
        elif is_live(line, now):
            set_status(conn, line.id, HoldStatus.COMPLETED, now, payment_intent_id=intent_id)
            sell_held_units(conn, line.product_id, line.bucket, line.quantity)
        else:
            # A late payment: the line lapsed, expired or was cancelled. Free what has lapsed (this
            # line too, if it still says PENDING), then sell only what is free now.
            release_lapsed_holds(conn, line.product_id, now)
            if (bucket := sell_free_units(conn, line.product_id, line.quantity)) is not None:
                set_status(conn, line.id, HoldStatus.COMPLETED, now, payment_intent_id=intent_id, bucket=bucket)
                late = True
            else:
                set_status(conn, line.id, HoldStatus.REFUNDED, now, payment_intent_id=intent_id)
                refunded += line.amount
    if kind == "checkout":
        clear_paid_lines(conn, paid.row, [line.product_id for line in paid.lines])
    if kind == "entry" and changed and refunded < paid.amount:
        draw.won(conn, paid.id, now)
    due = refunded if refunded and paid.refund_id is None else None
    if due:
        outcome = "partly_refunded" if refunded < paid.amount else "refund_due"
    elif changed:
        outcome = "completed_late" if late and kind == "hold" else "completed"
    else:
        outcome = "duplicate"
    return Settlement(outcome, paid.id, refund_amount=due, payable=paid, order_paid=changed,
                      detail="past the product's limit per buyer" if past_limit else None)


def _refund_past_buyer_limit(conn: Connection, line, now, intent_id: str) -> None:
    """The same buyer paid twice at once: this payment would pass the product's limit per buyer, so
    its line is REFUNDED and its units (still held, if it was PENDING) are free again."""
    if line.status == HoldStatus.PENDING:
        give_back_units(conn, line.product_id, line.bucket, line.quantity)
    set_status(conn, line.id, HoldStatus.REFUNDED, now, payment_intent_id=intent_id)


def release_cancelled(conn: Connection, message: dict) -> Settlement:
    """``payment_intent.canceled``: what is still held of the payable is released (CANCELLED); lines
    already paid, refunded or lapsed stay as they are."""
    kind, payable_id = named_by(message)
    paid = locked(conn, kind, payable_id) if payable_id else None
    if paid is None:
        return Settlement(f"unknown_{kind}", payable_id)
    now = utcnow()
    released = [line for line in paid.lines if line.status == HoldStatus.PENDING]
    for line in released:
        set_status(conn, line.id, HoldStatus.CANCELLED, now, payment_released_at=now)
        give_back_units(conn, line.product_id, line.bucket, line.quantity)
    if released:
        return Settlement("cancelled", paid.id)
    return Settlement("kept_" + "_".join(sorted({str(line.status).lower() for line in paid.lines})), paid.id)
