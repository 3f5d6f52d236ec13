"""How many units of a product can be held: the contract's formula, in one place.

    available = total − (units of PENDING holds not yet past expires_at) − (units of COMPLETED holds)

The product row carries running totals, ``held_units`` and ``sold_units``, changed
only here and only under that row's lock, so neither a hold nor a stock check ever
sums the holds table: their cost does not grow with live or finished holds.

``held_units`` still counts a hold that lapsed and was not swept yet. Availability
must not wait for the sweep, so:

- writers release a product's lapsed holds (:func:`release_lapsed_holds`) before
  they reserve units, and reserve with one guarded UPDATE (:func:`reserve_units`);
- readers add back the units of lapsed-but-unswept holds (:func:`available_units`),
  a small read on a partial index that holds only PENDING rows.
"""

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import func, select, update

from storefront.catalog.models import Product
from storefront.clock import utcnow
from storefront.extensions import db
from storefront.inventory.models import Hold, HoldStatus, is_pending

products = Product.__table__
holds = Hold.__table__


@dataclass(frozen=True)
class Stock:
    product_id: int
    total: int
    available: int

    @property
    def in_stock(self) -> bool:
        return self.available > 0

    def as_json(self) -> dict:
        return {
            "productId": self.product_id,
            "available": self.available,
            "total": self.total,
            "inStock": self.in_stock,
        }


def available_units(now: datetime):
    """A column expression for ``products``: units that can be held at ``now``."""
    lapsed_units = (
        select(func.coalesce(func.sum(holds.c.quantity), 0))
        .where(
            holds.c.product_id == products.c.id,
            is_pending,
            holds.c.expires_at <= now,
        )
        .scalar_subquery()
    )
    return products.c.total_quantity - products.c.sold_units - products.c.held_units + lapsed_units


def stock_levels(product_ids=None, now: datetime | None = None) -> dict[int, Stock]:
    """The stock of the given products (all of them when None), keyed by product id."""
    query = select(products.c.id, products.c.total_quantity, available_units(now or utcnow()))
    if product_ids is not None:
        query = query.where(products.c.id.in_(list(product_ids)))
    return {pid: Stock(pid, total, available) for pid, total, available in db.session.execute(query)}


def stock_of(product_id: int, now: datetime | None = None) -> Stock | None:
    row = db.session.execute(
        select(products.c.total_quantity, available_units(now or utcnow())).where(products.c.id == product_id)
    ).first()
    return None if row is None else Stock(product_id, row[0], row[1])


def release_lapsed_holds(product_id: int, now: datetime) -> int:
    """Mark the product's PENDING holds that are past ``expires_at`` EXPIRED and free their units.

    Takes the lapsed holds' row locks before the product's, the same order as
    every other writer, so concurrent callers wait for each other instead of
    deadlocking; a hold already expired by another caller is skipped.
    Returns the number of units freed. The caller commits.
    """
    freed = db.session.execute(
        update(holds)
        .where(
            holds.c.product_id == product_id,
            is_pending,
            holds.c.expires_at <= now,
        )
        .values(status=HoldStatus.EXPIRED, updated_at=now)
        .returning(holds.c.quantity)
    ).scalars().all()
    units = sum(freed)
    if units:
        give_back_units(product_id, units)
    return units


def reserve_units(product_id: int, quantity: int):
    """Count ``quantity`` more units as held if that many are available, atomically.

    One guarded UPDATE: it takes the product's row lock, checks and reserves in
    the same statement. Call :func:`release_lapsed_holds` first in the same
    transaction. Returns the product's ``(price, currency)``, or None when the
    product is unknown or short of stock.
    """
    return db.session.execute(
        update(products)
        .where(
            products.c.id == product_id,
            products.c.total_quantity - products.c.sold_units - products.c.held_units >= quantity,
        )
        .values(held_units=products.c.held_units + quantity)
        .returning(products.c.price, products.c.currency)
    ).first()


def give_back_units(product_id: int, quantity: int) -> None:
    """A PENDING hold of ``quantity`` units ended without a sale: the units are free again."""
    db.session.execute(
        update(products)
        .where(products.c.id == product_id)
        .values(held_units=products.c.held_units - quantity)
    )


class BelowCommitted(Exception):
    """A total lower than the units already sold and held."""

    def __init__(self, sold: int, held: int):
        super().__init__(f"{sold} sold and {held} held")
        self.sold = sold
        self.held = held


def set_total(product_id: int, total: int, now: datetime | None = None) -> Stock | None:
    """Set a product's total quantity, never below what is sold and held.

    Returns the new stock, None for an unknown product; raises BelowCommitted.
    """
    now = now or utcnow()
    release_lapsed_holds(product_id, now)
    changed = db.session.execute(
        update(products)
        .where(products.c.id == product_id, products.c.sold_units + products.c.held_units <= total)
        .values(total_quantity=total)
        .returning(products.c.id)
    ).first()
    if changed is None:
        committed = db.session.execute(
            select(products.c.sold_units, products.c.held_units).where(products.c.id == product_id)
        ).first()
        db.session.rollback()
        if committed is None:
            return None
        raise BelowCommitted(*committed)
    db.session.commit()
    return stock_of(product_id, now)
