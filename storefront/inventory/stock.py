"""How many units of a product can be held: the contract's formula, in one place.

    available = total − (units of PENDING holds not yet past expires_at) − (units of COMPLETED holds)

The product row carries running totals, ``held_units`` and ``sold_units``, changed
only here and only under that row's lock, so neither a hold nor a stock check ever
sums the holds table: their cost does not grow with live or finished holds.

``held_units`` still counts a hold that lapsed and was not swept yet. Availability
must not wait for the sweep, so:

- writers reserve with one guarded UPDATE (:func:`reserve_units`) that trusts the
  counters, which can only understate what is free; before they refuse, they
  release the product's lapsed holds (:func:`release_lapsed_holds`) and look again;
- readers add back the units of lapsed-but-unswept holds (:func:`available_units`),
  a small read on a partial index that holds only PENDING rows.

Locking has one rule: every change to a product's holds or counters happens
under that product's row lock, taken first (:func:`lock_product`, or the guarded
UPDATE itself). One lock per product, always taken before any hold row, so no
two writers can deadlock; several products are locked in id order.

These are the hot path: the statements are built once, at import, and run on a
plain SQLAlchemy Connection that the caller owns (and commits).
"""

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import Connection, bindparam, case, func, literal_column, select, update
from sqlalchemy.dialects.postgresql import psycopg as postgresql_psycopg

from storefront.catalog.models import Product
from storefront.clock import UTCDateTime, utcnow
from storefront.extensions import on_postgresql, one_statement, reading
from storefront.inventory.models import Hold, is_pending

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


# What the counters say is free: exact once the product's lapsed holds are released.
_free_units = products.c.total_quantity - products.c.sold_units - products.c.held_units

_now = bindparam("now", type_=UTCDateTime)
_product_id = bindparam("product")
_quantity = bindparam("units")


def available_units(now=_now):
    """A column expression for ``products``: units that can be held at ``now`` (by default
    the ``now`` parameter); none of an archived product: it takes no new holds."""
    no_units = literal_column("0")
    lapsed_units = (
        select(func.coalesce(func.sum(holds.c.quantity), no_units))
        .where(holds.c.product_id == products.c.id, is_pending, holds.c.expires_at <= now)
        .scalar_subquery()
    )
    return case((products.c.archived_at.is_(None), _free_units + lapsed_units), else_=no_units)


def _stock(now=_now):
    return select(products.c.id, products.c.total_quantity, available_units(now))


_STOCK = _stock()
_STOCK_OF = _STOCK.where(products.c.id == _product_id)

_RELEASE_LAPSED = (
    update(holds)
    .where(holds.c.product_id == _product_id, is_pending, holds.c.expires_at <= _now)
    .values(status=literal_column("'EXPIRED'"), updated_at=_now)
    .returning(holds.c.quantity)
)

_RESERVE = (
    update(products)
    .where(
        products.c.id == _product_id,
        products.c.archived_at.is_(None),
        _free_units >= _quantity,
    )
    .values(held_units=products.c.held_units + _quantity)
    .returning(products.c.price, products.c.currency)
)

_SELL_HELD = (
    update(products)
    .where(products.c.id == _product_id)
    .values(held_units=products.c.held_units - _quantity, sold_units=products.c.sold_units + _quantity)
)

_SELL_FREE = (
    update(products)
    .where(
        products.c.id == _product_id,
        _free_units >= _quantity,
    )
    .values(sold_units=products.c.sold_units + _quantity)
    .returning(products.c.id)
)

_LOCK_FOR_UPDATE = select(products.c.id).where(products.c.id == _product_id).with_for_update()
# SQLite has no row locks: a write, even a no-op one, takes its database-wide write lock.
_LOCK_BY_WRITING = update(products).where(products.c.id == _product_id).values(id=products.c.id)

_GIVE_BACK = (
    update(products)
    .where(products.c.id == _product_id)
    .values(held_units=products.c.held_units - _quantity)
)


_FREE_UNITS = select(case((products.c.archived_at.is_(None), _free_units), else_=0)).where(
    products.c.id == _product_id)


def free_units(conn: Connection, product_id: int) -> int | None:
    """What the counters say is free for a new hold (none of an archived product); exact under
    the product's lock after releasing lapsed holds."""
    return conn.execute(_FREE_UNITS, {"product": product_id}).scalar()


def stock_levels(conn: Connection, product_ids, now: datetime | None = None) -> dict[int, Stock]:
    """The stock of the given products, keyed by product id."""
    query = _STOCK.where(products.c.id.in_(list(product_ids)))
    rows = conn.execute(query, {"now": now or utcnow()})
    return {pid: Stock(pid, total, available) for pid, total, available in rows}


# The stock check's statement on PostgreSQL: :func:`stock_of`'s, on the database's clock (the
# one the hold function sets ``expires_at`` by), so the product id is its only parameter.
_STOCK_OF_ON_POSTGRESQL = str(
    _stock(func.now()).where(products.c.id == _product_id).compile(dialect=postgresql_psycopg.dialect())
)


def current_stock(product_id: int) -> Stock | None:
    """The stock check's read: on PostgreSQL one prepared SELECT in autocommit on a pooled
    connection; elsewhere :func:`stock_of` through SQLAlchemy."""
    if not on_postgresql():
        with reading() as conn:
            return stock_of(conn, product_id)
    with one_statement() as cursor:
        row = cursor.execute(_STOCK_OF_ON_POSTGRESQL, {"product": product_id}, prepare=True).fetchone()
    return None if row is None else Stock(*row)


def stock_of(conn: Connection, product_id: int, now: datetime | None = None) -> Stock | None:
    row = conn.execute(_STOCK_OF, {"product": product_id, "now": now or utcnow()}).first()
    return None if row is None else Stock(*row)


_ON_SALE = select(products.c.id).where(products.c.id == _product_id, products.c.archived_at.is_(None))


def on_sale(conn: Connection, product_id: int) -> bool:
    """The product exists and is not archived: it may take new holds."""
    return conn.execute(_ON_SALE, {"product": product_id}).first() is not None


def lock_product(conn: Connection, product_id: int) -> bool:
    """Take the product's row lock for the rest of the transaction. False if there is no such product."""
    if conn.dialect.name == "sqlite":
        return conn.execute(_LOCK_BY_WRITING, {"product": product_id}).rowcount == 1
    return conn.execute(_LOCK_FOR_UPDATE, {"product": product_id}).first() is not None


def release_lapsed_holds(conn: Connection, product_id: int, now: datetime) -> int:
    """Mark the product's PENDING holds that are past ``expires_at`` EXPIRED and free their units.

    Call under the product's lock (:func:`lock_product`). Returns the units freed.
    """
    freed = conn.execute(_RELEASE_LAPSED, {"product": product_id, "now": now}).scalars().all()
    units = sum(freed)
    if units:
        give_back_units(conn, product_id, units)
    return units


def reserve_units(conn: Connection, product_id: int, quantity: int):
    """Count ``quantity`` more units as held if that many are available, atomically.

    One guarded UPDATE: it takes the product's row lock, checks and reserves in
    the same statement. Call :func:`release_lapsed_holds` first in the same
    transaction. Returns the product's ``(price, currency)``, or None when the
    product is unknown, archived or short of stock.
    """
    return conn.execute(_RESERVE, {"product": product_id, "units": quantity}).first()


def sell_held_units(conn: Connection, product_id: int, quantity: int) -> None:
    """A live PENDING hold was paid: its units move from held to sold."""
    conn.execute(_SELL_HELD, {"product": product_id, "units": quantity})


def sell_free_units(conn: Connection, product_id: int, quantity: int) -> bool:
    """Sell ``quantity`` units that no hold covers (a late payment), if that many are free.

    Same guard as a new hold; call :func:`release_lapsed_holds` first, under the lock.
    """
    return conn.execute(_SELL_FREE, {"product": product_id, "units": quantity}).first() is not None


def give_back_units(conn: Connection, product_id: int, quantity: int) -> None:
    """A PENDING hold of ``quantity`` units ended without a sale: the units are free again."""
    conn.execute(_GIVE_BACK, {"product": product_id, "units": quantity})


class BelowCommitted(Exception):
    """A total lower than the units already sold and held."""

    def __init__(self, sold: int, held: int):
        super().__init__(f"{sold} sold and {held} held")
        self.sold = sold
        self.held = held


def set_total(conn: Connection, product_id: int, total: int, now: datetime | None = None) -> Stock | None:
    """Set a product's total quantity, never below what is sold and held.

    Returns the new stock, None for an unknown product; raises BelowCommitted.
    """
    now = now or utcnow()
    if not lock_product(conn, product_id):
        conn.rollback()
        return None
    release_lapsed_holds(conn, product_id, now)
    changed = conn.execute(
        update(products)
        .where(products.c.id == product_id, products.c.sold_units + products.c.held_units <= total)
        .values(total_quantity=total)
        .returning(products.c.id)
    ).first()
    if changed is None:
        committed = conn.execute(
            select(products.c.sold_units, products.c.held_units).where(products.c.id == product_id)
        ).first()
        conn.rollback()
        if committed is None:
            return None
        raise BelowCommitted(*committed)
    conn.commit()
    return stock_of(conn, product_id, now)
