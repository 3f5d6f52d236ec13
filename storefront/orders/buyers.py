"""One buyer, and what a product's limit per buyer (``products.per_buyer``) allows them.

A buyer is one owner (a browser, or a visitor id without one), and also every owner whose
order gives the same delivery email (case and surrounding spaces ignored) or the same delivery
address (country, postal code and first line, with case, spacing and punctuation ignored): the
keys on ``orders`` (orders/delivery.py). What counts is the units of the product and all its
options together. The limit is checked three times, each at the point where it can be known:

- at the hold and the checkout, by owner (the grant step and the hold function: inventory/);
- at the delivery step, by email and by address (:func:`refusal_at_delivery`): refused before
  anything is charged;
- at settlement, for a race (the same buyer paying twice at once: :func:`over_limit_at_settlement`,
  under the family's lock): the payment that would pass the limit is refunded.
"""

from dataclasses import dataclass

from sqlalchemy import Connection, func, or_, select

from storefront.catalog.models import products
from storefront.inventory.hold_rows import live
from storefront.inventory.models import HoldStatus
from storefront.inventory.stock import family_items, holds
from storefront.locks import KeySpace, lock_key
from storefront.orders.delivery import Delivery
from storefront.orders.models import Order

orders = Order.__table__


@dataclass(frozen=True)
class PastBuyerLimit:
    """The delivery details, or a payment, would take this buyer past ``limit`` units of ``family``."""
    family: int
    held: int  # units this buyer already has (held live or bought), not counting the payable's own
    limit: int
    field: str | None  # "email" or "address": which detail tells the buyer; None for the owner


def family_terms(conn: Connection, product_id: int):
    """(family, per_buyer) of a product: the product its options and it make, and its limit."""
    return conn.execute(select(func.coalesce(products.c.option_of, products.c.id), products.c.per_buyer)
                        .where(products.c.id == product_id)).one()


def _units(conn: Connection, family: int, matches, excluding: list, live_at=None) -> int:
    """Units of ``family`` in holds (their order joined where there is one) that ``matches``: bought,
    and, with ``live_at``, held live then; the holds ``excluding`` left out."""
    order_of_hold = or_(orders.c.id == holds.c.id, orders.c.id == holds.c.checkout_id)
    counted = holds.c.status == HoldStatus.COMPLETED.value
    if live_at is not None:
        counted = or_(counted, live(live_at))
    return conn.execute(
        select(func.coalesce(func.sum(holds.c.quantity), 0))
        .select_from(holds.outerjoin(orders, order_of_hold))
        .where(holds.c.product_id.in_(family_items(family).scalar_subquery()), counted, matches,
               holds.c.id.not_in(excluding))).scalar_one()


def refusal_at_delivery(conn: Connection, lines: list, delivery: Delivery, now) -> PastBuyerLimit | None:
    """Whether these delivery details would take their buyer past a limit, for the payable's ``lines``
    (its holds): the units other orders with the same email, then the same address, hold or bought."""
    keys = delivery.columns()
    wanted: dict[int, int] = {}
    limits: dict[int, int] = {}
    for line in lines:
        family, per_buyer = family_terms(conn, line.product_id)
        if per_buyer is not None:
            wanted[family] = wanted.get(family, 0) + line.quantity
            limits[family] = per_buyer
    mine = [line.id for line in lines]
    for family in sorted(wanted):
        for field, column in (("email", "buyer_email"), ("address", "buyer_address")):
            if keys[column] is None:
                continue
            held = _units(conn, family, orders.c[column] == keys[column], mine, live_at=now)
            if held + wanted[family] > limits[family]:
                return PastBuyerLimit(family, held, limits[family], field)
    return None


def over_limit_at_settlement(conn: Connection, line, now) -> bool:
    """Whether paying for this hold would give its buyer more of the product than its limit allows:
    units bought already by the same owner, or under the same email or address as this payment's
    order. Takes the family's lock for the rest of the transaction (PostgreSQL; SQLite has one
    writer), after the product's, so two payments of one buyer are counted one after the other."""
    family, per_buyer = family_terms(conn, line.product_id)
    if per_buyer is None:
        return False
    lock_key(conn, KeySpace.BUYER_FAMILY, f"family:{family}")
    order = conn.execute(select(orders.c.buyer_email, orders.c.buyer_address).where(
        orders.c.id == (line.checkout_id or line.id))).first()
    same_buyer = [(holds.c.user_id == line.user_id) & (holds.c.browser_id == line.browser_id)]
    if order is not None and order.buyer_email:
        same_buyer.append(orders.c.buyer_email == order.buyer_email)
    if order is not None and order.buyer_address:
        same_buyer.append(orders.c.buyer_address == order.buyer_address)
    return _units(conn, family, or_(*same_buyer), [line.id]) + line.quantity > per_buyer
