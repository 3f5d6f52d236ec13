"""Holding a whole cart at once: every line or none, and one payment for the sum.

Products are locked in id order, so two checkouts that share products wait for
each other instead of deadlocking; each product's lapsed holds are released
under its lock, so what is found short is really short.
"""

import uuid
from dataclasses import dataclass
from datetime import timedelta

from sqlalchemy import Connection, and_, delete, insert, literal_column, select, update

from storefront.cart.models import CartLine, Checkout
from storefront.clock import isoformat_z, utcnow
from storefront.inventory.holds import HoldLimit, HoldLimits, enforce_limits, lock_address, lock_visitor
from storefront.inventory.models import HoldStatus, is_pending
from storefront.inventory.stock import (
    free_units,
    give_back_units,
    holds,
    lock_product,
    on_sale,
    release_lapsed_holds,
    take_units,
)
from storefront.owners import Owner

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


class CheckoutShort(Exception):
    def __init__(self, items: list[dict]):
        super().__init__(f"{len(items)} line(s) short")
        self.items = items


class CheckoutNotOnSale(Exception):
    """Lines whose product's start time has not come yet."""

    def __init__(self, items: list[dict]):
        super().__init__(f"{len(items)} line(s) not on sale yet")
        self.items = items


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


def set_line(conn: Connection, owner: Owner, product_id: int, quantity: int) -> None:
    """Set the cart's line for a product (add it, or change its quantity). Raises CartFull."""
    now = utcnow()
    changed = conn.execute(
        update(cart_lines)
        .where(_owned_by(cart_lines, owner), cart_lines.c.product_id == product_id)
        .values(quantity=quantity, updated_at=now)
    ).rowcount
    if not changed:
        if len(cart_of(conn, owner)) >= MAX_CART_LINES:
            conn.rollback()
            raise CartFull()
        conn.execute(insert(cart_lines).values(user_id=owner.visitor_id, browser_id=owner.browser_id,
                                               product_id=product_id, quantity=quantity, updated_at=now))
    conn.commit()


def remove_line(conn: Connection, owner: Owner, product_id: int) -> None:
    conn.execute(delete(cart_lines).where(_owned_by(cart_lines, owner), cart_lines.c.product_id == product_id))
    conn.commit()


def place_checkout(conn: Connection, owner: Owner, address: str, ttl_seconds: int,
                   limits: HoldLimits) -> PlacedCheckout:
    """Hold every line of the owner's cart in one transaction, or none.

    Raises EmptyCart, CheckoutNotOnSale or CheckoutShort (naming their lines), MixedCurrencies or HoldLimit.
    """
    lines = cart_of(conn, owner)
    if not lines:
        conn.rollback()
        raise EmptyCart()
    now = utcnow()
    # As a single hold does: the visitor id first, then the address, then the products.
    lock_visitor(conn, owner.visitor_id)
    lock_address(conn, address)
    product_ids = [line.product_id for line in lines]  # in id order: the lock order
    for product_id in product_ids:
        lock_product(conn, product_id)
        release_lapsed_holds(conn, product_id, now)

    # The checkout takes over the owner's own single-item holds on these products.
    superseded = conn.execute(
        update(holds)
        .where(_owned_by(holds, owner), holds.c.product_id.in_(product_ids), is_pending,
               holds.c.expires_at > now)
        .values(status=literal_column("'CANCELLED'"), updated_at=now)
        .returning(holds.c.id, holds.c.product_id, holds.c.bucket, holds.c.quantity, holds.c.payment_intent_id)
    ).all()
    for hold in sorted(superseded, key=lambda hold: (hold.product_id, hold.bucket)):
        give_back_units(conn, hold.product_id, hold.bucket, hold.quantity)

    # The limits, as a single hold checks them: the owner's own holds on these products are given back above.
    try:
        enforce_limits(conn, owner, address, sum(line.quantity for line in lines), now, limits)
    except HoldLimit:
        conn.rollback()
        raise

    waiting = []
    for line in lines:
        terms = on_sale(conn, line.product_id)
        if terms is not None and terms.starts_at is not None and terms.starts_at > now:
            waiting.append({"productId": line.product_id, "startsAt": isoformat_z(terms.starts_at)})
    if waiting:
        conn.rollback()
        raise CheckoutNotOnSale(waiting)

    short = []
    for line in lines:
        free = free_units(conn, line.product_id)
        if free is None or free < line.quantity:
            short.append({"productId": line.product_id, "available": max(free or 0, 0)})
    if short:
        conn.rollback()
        raise CheckoutShort(short)

    checkout_id = uuid.uuid4()
    expires_at = now + timedelta(seconds=ttl_seconds)
    rows = []
    for line in lines:
        price, currency, _ = on_sale(conn, line.product_id)
        bucket = take_units(conn, line.product_id, line.quantity)
        rows.append({
            "id": uuid.uuid4(), "product_id": line.product_id, "bucket": bucket, "user_id": owner.visitor_id,
            "browser_id": owner.browser_id, "client_address": address, "quantity": line.quantity,
            "amount": price * line.quantity, "currency": currency, "status": HoldStatus.PENDING.value,
            "expires_at": expires_at, "created_at": now, "updated_at": now, "checkout_id": checkout_id,
        })
    currencies = {row["currency"] for row in rows}
    if len(currencies) > 1:
        conn.rollback()
        raise MixedCurrencies()
    conn.execute(insert(checkouts).values(
        id=checkout_id, user_id=owner.visitor_id, browser_id=owner.browser_id,
        amount=sum(row["amount"] for row in rows), currency=currencies.pop(), expires_at=expires_at, created_at=now))
    conn.execute(insert(holds), rows)
    conn.commit()
    return PlacedCheckout(
        find_checkout(conn, checkout_id, owner),
        checkout_holds(conn, checkout_id),
        [(hold.id, hold.payment_intent_id) for hold in superseded if hold.payment_intent_id],
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
    conn.execute(update(holds).where(holds.c.checkout_id == checkout_id, holds.c.payment_intent_id.is_(None))
                 .values(payment_intent_id=intent_id))


def remember_checkout_refund(conn: Connection, checkout_id: uuid.UUID, refund_id: str) -> None:
    """The partial refund of a checkout's lines that could not be sold, once issued."""
    conn.execute(update(checkouts).where(checkouts.c.id == checkout_id, checkouts.c.refund_id.is_(None))
                 .values(refund_id=refund_id))


def clear_paid_lines(conn: Connection, checkout, product_ids) -> None:
    """A paid checkout's products leave its owner's cart."""
    conn.execute(delete(cart_lines).where(cart_lines.c.user_id == checkout.user_id,
                                          cart_lines.c.browser_id == checkout.browser_id,
                                          cart_lines.c.product_id.in_(list(product_ids))))
