"""Holding a whole cart at once: every line or none, and one payment for the sum.

The lines are granted by the same step as a single hold (inventory/grants.py): the same
locks in the same order, the same limits, start times and stock. Functions take the
caller's connection and leave its transaction to the caller.
"""

import uuid
from dataclasses import dataclass
from datetime import timedelta

from sqlalchemy import Connection, and_, delete, insert, select, update

from storefront.cart.models import CartLine, Checkout
from storefront.clock import utcnow
from storefront.inventory.grants import HoldLimits, Line, OutOfStock, ProductNotFound, grant
from storefront.inventory.hold_rows import insert_holds, remember_intent
from storefront.inventory.models import HoldStatus, new_hold_id
from storefront.inventory.stock import holds
from storefront.owners import Owner, address_block

cart_lines = CartLine.__table__
checkouts = Checkout.__table__

# A checkout's PaymentIntent names its holds in one metadata value, which Stripe caps
# at 500 characters: 12 UUIDs and their commas take 443.
MAX_CART_LINES = 12


class EmptyCart(Exception):
    pass


class CartFull(Exception):
    pass


class MixedCurrencies(Exception):
    pass


@dataclass(frozen=True)
class PlacedCheckout:
    checkout: object
    holds: list
    superseded_intents: list[tuple]  # (hold id, intent id) of standalone holds the checkout replaced


def _owned_by(table, owner: Owner):
    return and_(table.c.user_id == owner.visitor_id, table.c.browser_id == owner.browser_id)


def cart_of(conn: Connection, owner: Owner):
    return conn.execute(
        select(cart_lines.c.product_id, cart_lines.c.quantity)
        .where(_owned_by(cart_lines, owner))
        .order_by(cart_lines.c.product_id)
    ).all()


def set_line(conn: Connection, owner: Owner, product_id: int, quantity: int) -> str:
    """Set the cart's line for a product (add it, or change its quantity): "added", "changed", or
    "unchanged" when the cart had that line already. Raises CartFull."""
    now = utcnow()
    line = and_(_owned_by(cart_lines, owner), cart_lines.c.product_id == product_id)
    had = conn.execute(select(cart_lines.c.quantity).where(line)).scalar()
    if had == quantity:
        return "unchanged"
    if had is not None:
        conn.execute(update(cart_lines).where(line).values(quantity=quantity, updated_at=now))
        return "changed"
    if len(cart_of(conn, owner)) >= MAX_CART_LINES:
        raise CartFull()
    conn.execute(insert(cart_lines).values(user_id=owner.visitor_id, browser_id=owner.browser_id,
                                           product_id=product_id, quantity=quantity, updated_at=now))
    return "added"


def remove_line(conn: Connection, owner: Owner, product_id: int) -> None:
    conn.execute(delete(cart_lines).where(_owned_by(cart_lines, owner), cart_lines.c.product_id == product_id))


def place_checkout(conn: Connection, owner: Owner, address: str, ttl_seconds: int,
                   limits: HoldLimits) -> PlacedCheckout:
    """Hold every line of the owner's cart, or none: the grant step decides for all the lines at
    once (inventory/grants.py), taking over the owner's own single holds on these products.

    Raises EmptyCart, or the grant step's refusals (NotOnSale and OutOfStock naming their lines,
    HoldLimit), or MixedCurrencies; the caller's transaction then keeps nothing.
    """
    lines = cart_of(conn, owner)
    if not lines:
        raise EmptyCart()
    now = utcnow()
    try:
        granted = grant(conn, owner, address, [Line(line.product_id, line.quantity) for line in lines], now, limits,
                        replace_own=True)
    except ProductNotFound as gone:
        # Archived since it was put in the cart: none of it is left to hold.
        raise OutOfStock([(product_id, 0) for product_id in gone.product_ids]) from None
    if len({line.currency for line in granted.lines}) > 1:
        raise MixedCurrencies()

    checkout_id = uuid.uuid4()
    # Nothing renews a hold: a checkout that takes over holds keeps the earliest of their expiries.
    expires_at = now + timedelta(seconds=ttl_seconds)
    if granted.expires_at is not None:
        expires_at = min(expires_at, granted.expires_at)
    conn.execute(insert(checkouts).values(
        id=checkout_id, user_id=owner.visitor_id, browser_id=owner.browser_id,
        amount=sum(line.amount for line in granted.lines), currency=granted.lines[0].currency,
        expires_at=expires_at, created_at=now))
    insert_holds(conn, [{
        "id": new_hold_id(), "product_id": line.product_id, "bucket": line.bucket, "user_id": owner.visitor_id,
        "browser_id": owner.browser_id, "client_address": address, "client_block": address_block(address),
        "quantity": line.quantity,
        "amount": line.amount, "currency": line.currency, "status": HoldStatus.PENDING.value,
        "expires_at": expires_at, "created_at": now, "updated_at": now, "checkout_id": checkout_id,
    } for line in granted.lines])
    return PlacedCheckout(
        find_checkout(conn, checkout_id, owner),
        checkout_holds(conn, checkout_id),
        [(hold.id, hold.payment_intent_id) for hold in granted.replaced if hold.payment_intent_id],
    )


def find_checkout(conn: Connection, checkout_id: uuid.UUID, owner: Owner | None = None):
    """The owner's checkout; without an owner, anyone's (the shop's own bookkeeping)."""
    query = select(checkouts).where(checkouts.c.id == checkout_id)
    if owner is not None:
        query = query.where(_owned_by(checkouts, owner))
    return conn.execute(query).first()


def checkout_holds(conn: Connection, checkout_id: uuid.UUID) -> list:
    return conn.execute(
        select(holds).where(holds.c.checkout_id == checkout_id).order_by(holds.c.product_id)
    ).all()


# What the payments area needs of a checkout, so that it never reads the cart's tables itself.

def remember_checkout_intent(conn: Connection, checkout_id: uuid.UUID, intent_id: str) -> None:
    """The checkout's PaymentIntent, once created: on the checkout and on each of its holds."""
    conn.execute(update(checkouts).where(checkouts.c.id == checkout_id, checkouts.c.payment_intent_id.is_(None))
                 .values(payment_intent_id=intent_id))
    remember_intent(conn, intent_id, checkout_id=checkout_id)


def remember_checkout_refund(conn: Connection, checkout_id: uuid.UUID, refund_id: str) -> None:
    """The partial refund of a checkout's lines that could not be sold, once issued."""
    conn.execute(update(checkouts).where(checkouts.c.id == checkout_id, checkouts.c.refund_id.is_(None))
                 .values(refund_id=refund_id))


def clear_paid_lines(conn: Connection, checkout, product_ids) -> None:
    """A paid checkout's products leave its owner's cart."""
    conn.execute(delete(cart_lines).where(cart_lines.c.user_id == checkout.user_id,
                                          cart_lines.c.browser_id == checkout.browser_id,
                                          cart_lines.c.product_id.in_(list(product_ids))))
