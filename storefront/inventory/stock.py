"""How many units of a product can be held: the contract's formula, in one place.

    available = total − (units of PENDING holds not yet past expires_at) − (units of COMPLETED holds)

A product's stock lives in its rows of ``stock_buckets``, each with its own ``total_units``,
``held_units`` and ``sold_units`` and a CHECK that it never gives more than it has; the
product's total is their sum. Holds on one product take units from different buckets, so
a crowd on one product locks different rows instead of queueing on one (docs/holds.md has
the figures). How many buckets: :func:`bucket_count`.

``held_units`` still counts a hold that lapsed and was not swept yet. Availability
must not wait for the sweep, so:

- readers add back the units of lapsed-but-unswept holds (:func:`available_units`),
  a small read on a partial index that holds only PENDING rows;
- a hold takes units from a bucket that has them (:func:`take_units`); when none has,
  it releases the product's lapsed holds (:func:`release_lapsed_holds`), gathers units
  stranded in several buckets into one (:func:`gather_units`), and looks again.

Locking has two rules:

- a hold's units are taken from one bucket with ``FOR UPDATE SKIP LOCKED``: a busy bucket
  is passed over, never waited for, so that step cannot be part of a deadlock;
- everything else (releasing, gathering, selling, setting a total, a cart's checkout) runs
  under the product's row lock, taken first (:func:`lock_product`), then hold rows, then
  buckets; several products are locked in id order. The lock is ``FOR NO KEY UPDATE``: a
  new hold's foreign key takes ``FOR KEY SHARE`` on the product, and must not wait for it.

These are the hot path: the statements are built once, at import, and run on a
plain SQLAlchemy Connection that the caller owns (and commits).
"""

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import Connection, bindparam, case, func, insert, literal_column, or_, select, update
from sqlalchemy.dialects.postgresql import psycopg as postgresql_psycopg

from storefront.catalog.models import products
from storefront.clock import UTCDateTime, isoformat_z, utcnow
from storefront.database import on_postgresql, one_statement, prepared, reading
from storefront.inventory.hold_rows import expire_lapsed, lapsed
from storefront.inventory.models import Hold, StockBucket

holds = Hold.__table__
buckets = StockBucket.__table__

# At most this many buckets per product on PostgreSQL, as many as the holds that reach it at once
# from a few web hosts (docs/holds.md has the figures); SQLite has one writer at a time, so one.
MAX_BUCKETS = 64


def bucket_count(total: int, dialect_name: str) -> int:
    """How many buckets a product of ``total`` units is split into: one per unit, up to
    MAX_BUCKETS, so that every bucket starts with a unit to give (on SQLite, one)."""
    if dialect_name == "sqlite":
        return 1
    return max(1, min(MAX_BUCKETS, total))


@dataclass(frozen=True)
class Stock:
    product_id: int
    total: int
    available: int
    # Whether it is on sale by the database's clock (its start time passed, or it has none).
    on_sale: bool = True
    starts_at: datetime | None = None
    queued: bool = False  # held only with a pass from its waiting room (inventory/queue.py)
    paused: bool = False  # its owner paused its sale: no new hold meanwhile
    draw: bool = False  # sold by a draw (inventory/draw.py): entered, never held

    @property
    def in_stock(self) -> bool:
        return self.available > 0

    def as_json(self) -> dict:
        answer = {
            "productId": self.product_id,
            "available": self.available,
            "total": self.total,
            "inStock": self.in_stock,
        }
        if self.starts_at is not None:  # a product with a start time says whether it came
            answer["onSale"] = self.on_sale
            answer["startsAt"] = isoformat_z(self.starts_at)
        if self.paused:
            answer["paused"] = True
        return answer


_now = bindparam("now", type_=UTCDateTime)
_product_id = bindparam("product")
_quantity = bindparam("units")
_bucket = bindparam("in_bucket")

# What a bucket's counters say is free: exact once the product's lapsed holds are released.
_free_in_bucket = buckets.c.total_units - buckets.c.held_units - buckets.c.sold_units

# A product's buckets, summed: one row per product.
_product_stock = (
    select(buckets.c.product_id, func.sum(buckets.c.total_units).label("total"),
           func.sum(_free_in_bucket).label("free"))
    .group_by(buckets.c.product_id)
    .subquery("product_stock")
)


def available_units(now=_now):
    """A column expression over ``products`` joined to ``_product_stock``: units that can be held
    at ``now`` (by default the ``now`` parameter); none of an archived product: it takes no new holds."""
    no_units = literal_column("0")
    lapsed_units = (
        select(func.coalesce(func.sum(holds.c.quantity), no_units))
        .where(holds.c.product_id == products.c.id, lapsed(now))
        .scalar_subquery()
    )
    return case((products.c.archived_at.is_(None), _product_stock.c.free + lapsed_units), else_=no_units)


def units_available(product_ids, now=_now):
    """A scalar subquery: the units that can be held at ``now`` over these products together (none
    below 0), to be read in the same statement as whatever it is weighed against."""
    available = available_units(now)
    per_product = (select(case((available > 0, available), else_=literal_column("0")).label("units"))
                   .select_from(products.join(_product_stock, _product_stock.c.product_id == products.c.id))
                   .where(products.c.id.in_(list(product_ids))).subquery())
    return select(func.coalesce(func.sum(per_product.c.units), 0)).scalar_subquery()


def _stock(now=_now):
    starts_at = products.c.starts_at
    return select(
        products.c.id, _product_stock.c.total, available_units(now),
        or_(starts_at.is_(None), starts_at <= now), starts_at, products.c.queued, products.c.paused, products.c.draw,
    ).select_from(products.join(_product_stock, _product_stock.c.product_id == products.c.id))


_STOCK = _stock()
_STOCK_OF = _STOCK.where(products.c.id == _product_id)


_in_bucket = (buckets.c.product_id == _product_id, buckets.c.bucket == _bucket)

# A bucket with the units, chosen at random among those no other transaction has locked.
_UNLOCKED_BUCKET_WITH_UNITS = (
    select(buckets.c.bucket)
    .where(buckets.c.product_id == _product_id, _free_in_bucket >= _quantity)
    .order_by(func.random())
    .limit(1)
    .with_for_update(skip_locked=True)
    .scalar_subquery()
)

_TAKE = (
    update(buckets)
    .where(buckets.c.product_id == _product_id, buckets.c.bucket == _UNLOCKED_BUCKET_WITH_UNITS,
           _free_in_bucket >= _quantity)
    .values(held_units=buckets.c.held_units + _quantity)
    .returning(buckets.c.bucket)
)

_HOLD_IN = update(buckets).where(*_in_bucket).values(held_units=buckets.c.held_units + _quantity)

_SELL_HELD = (
    update(buckets)
    .where(*_in_bucket)
    .values(held_units=buckets.c.held_units - _quantity, sold_units=buckets.c.sold_units + _quantity)
)

_GIVE_BACK = update(buckets).where(*_in_bucket).values(held_units=buckets.c.held_units - _quantity)

_LOCK_FOR_UPDATE = (select(products.c.id).where(products.c.id == _product_id)
                    .with_for_update(key_share=True))
# SQLite has no row locks: a write, even a no-op one, takes its database-wide write lock.
_LOCK_BY_WRITING = update(products).where(products.c.id == _product_id).values(id=products.c.id)

_LOCKED_BUCKETS = (
    select(buckets.c.bucket, buckets.c.total_units, buckets.c.held_units, buckets.c.sold_units)
    .where(buckets.c.product_id == _product_id)
    .order_by(buckets.c.bucket)
    .with_for_update()
)

_SET_BUCKET_TOTAL = update(buckets).where(*_in_bucket).values(total_units=bindparam("new_total"))

_FREE_UNITS = (
    select(case((products.c.archived_at.is_(None), func.sum(_free_in_bucket)), else_=0))
    .select_from(products.join(buckets, buckets.c.product_id == products.c.id))
    .where(products.c.id == _product_id)
    .group_by(products.c.id)
)


def free_units(conn: Connection, product_id: int) -> int | None:
    """What the buckets say is free for a new hold (none of an archived product); exact under
    the product's lock after releasing lapsed holds."""
    return conn.execute(_FREE_UNITS, {"product": product_id}).scalar()


def stock_levels(conn: Connection, product_ids, now: datetime | None = None) -> dict[int, Stock]:
    """The stock of the given products, keyed by product id."""
    query = _STOCK.where(products.c.id.in_(list(product_ids)))
    rows = conn.execute(query, {"now": now or utcnow()})
    return {row[0]: Stock(*row) for row in rows}


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
        row = cursor.execute(_STOCK_OF_ON_POSTGRESQL, {"product": product_id}, prepare=prepared()).fetchone()
    return None if row is None else Stock(*row)


def stock_of(conn: Connection, product_id: int, now: datetime | None = None) -> Stock | None:
    row = conn.execute(_STOCK_OF, {"product": product_id, "now": now or utcnow()}).first()
    return None if row is None else Stock(*row)


@dataclass(frozen=True)
class BucketLevel:
    bucket: int
    total: int
    held: int
    sold: int

    @property
    def free(self) -> int:
        return self.total - self.held - self.sold


def bucket_levels(conn: Connection, product_id: int) -> list[BucketLevel]:
    """A product's buckets as their counters say (lapsed holds still count as held), for the admin."""
    rows = conn.execute(select(buckets.c.bucket, buckets.c.total_units, buckets.c.held_units, buckets.c.sold_units)
                        .where(buckets.c.product_id == product_id).order_by(buckets.c.bucket))
    return [BucketLevel(*row) for row in rows]


@dataclass(frozen=True)
class UnitCounts:
    """A product's units as its buckets count them: ``held`` may include lapsed holds not swept yet."""
    total: int
    held: int
    sold: int


def unit_counts(conn: Connection, product_ids) -> dict[int, UnitCounts]:
    """Each product's total, held and sold units, summed over its buckets, keyed by product id."""
    rows = conn.execute(
        select(buckets.c.product_id, func.sum(buckets.c.total_units), func.sum(buckets.c.held_units),
               func.sum(buckets.c.sold_units))
        .where(buckets.c.product_id.in_(list(product_ids))).group_by(buckets.c.product_id))
    counts = {product_id: UnitCounts(int(total), int(held), int(sold)) for product_id, total, held, sold in rows}
    return {product_id: counts.get(product_id, UnitCounts(0, 0, 0)) for product_id in product_ids}


_ON_SALE = select(
    products.c.price, products.c.currency, products.c.starts_at,
    # The product whose waiting room a hold on it needs a pass from (itself, or the one it is an option of).
    case((products.c.queued, func.coalesce(products.c.option_of, products.c.id)), else_=None).label("queue_of"),
    products.c.paused, products.c.per_buyer, func.coalesce(products.c.option_of, products.c.id).label("family"),
    products.c.draw,
).where(products.c.id == _product_id, products.c.archived_at.is_(None))


def family_items(family):
    """The ids of a product and its options (``family``: the product's id, a value or a bound column)."""
    return select(products.c.id).where(or_(products.c.id == family, products.c.option_of == family))


def on_sale(conn: Connection, product_id: int):
    """The product's terms if it exists and is not archived: ``price``, ``currency``, ``starts_at``
    (it takes new holds from then on), ``queue_of`` (the waiting room a hold needs a pass from, if
    any), ``paused``, ``per_buyer``, ``family`` (the product its options and it make) and ``draw`` (sold by
    a draw: no holds); None otherwise."""
    return conn.execute(_ON_SALE, {"product": product_id}).first()


def lock_product(conn: Connection, product_id: int) -> bool:
    """Take the product's row lock for the rest of the transaction. False if there is no such product."""
    if conn.dialect.name == "sqlite":
        return conn.execute(_LOCK_BY_WRITING, {"product": product_id}).rowcount == 1
    return conn.execute(_LOCK_FOR_UPDATE, {"product": product_id}).first() is not None


def release_lapsed_holds(conn: Connection, product_id: int, now: datetime) -> int:
    """Mark the product's PENDING holds that are past ``expires_at`` EXPIRED and give their
    units back to their buckets.

    Call under the product's lock (:func:`lock_product`). Returns the units freed.
    """
    per_bucket: dict[int, int] = {}
    for bucket, quantity in expire_lapsed(conn, product_id, now):
        per_bucket[bucket] = per_bucket.get(bucket, 0) + quantity
    for bucket in sorted(per_bucket):
        give_back_units(conn, product_id, bucket, per_bucket[bucket])
    return sum(per_bucket.values())


def take_units(conn: Connection, product_id: int, quantity: int) -> int | None:
    """Count ``quantity`` more units as held in one of the product's buckets; returns the bucket,
    or None when the product has fewer free units than that.

    Under the product's lock (:func:`lock_product`), after :func:`release_lapsed_holds`:
    a bucket that has the units and nobody has locked, else units gathered into one.
    """
    bucket = conn.execute(_TAKE, {"product": product_id, "units": quantity}).scalar()
    if bucket is None:
        bucket = gather_units(conn, product_id, quantity)
        if bucket is not None:
            conn.execute(_HOLD_IN, {"product": product_id, "in_bucket": bucket, "units": quantity})
    return bucket


def gather_units(conn: Connection, product_id: int, quantity: int) -> int | None:
    """Make one bucket have ``quantity`` free units by moving free units into it from the
    product's other buckets (the product's total does not change). Returns that bucket, or None
    when the product has fewer free units in all. Under the product's lock: it locks every
    bucket, in order, and waits for the holds taking units from them to commit."""
    levels = [BucketLevel(*row) for row in conn.execute(_LOCKED_BUCKETS, {"product": product_id})]
    if sum(level.free for level in levels) < quantity or not levels:
        return None
    target = max(levels, key=lambda level: level.free)
    missing = quantity - target.free
    moved = 0
    for donor in levels:
        if moved >= missing:
            break
        if donor is target or donor.free <= 0:
            continue
        units = min(donor.free, missing - moved)
        conn.execute(_SET_BUCKET_TOTAL, {"product": product_id, "in_bucket": donor.bucket, "new_total": donor.total - units})
        moved += units
    if moved:
        conn.execute(_SET_BUCKET_TOTAL, {"product": product_id, "in_bucket": target.bucket, "new_total": target.total + moved})
    return target.bucket


def sell_held_units(conn: Connection, product_id: int, bucket: int, quantity: int) -> None:
    """A live PENDING hold was paid: its units move from held to sold, in its bucket."""
    conn.execute(_SELL_HELD, {"product": product_id, "in_bucket": bucket, "units": quantity})


def sell_free_units(conn: Connection, product_id: int, quantity: int) -> int | None:
    """Sell ``quantity`` units that no hold covers (a late payment), if that many are free.
    Returns the bucket they were sold from, or None.

    Same rule as a new hold; call :func:`release_lapsed_holds` first, under the lock.
    """
    bucket = take_units(conn, product_id, quantity)
    if bucket is not None:
        sell_held_units(conn, product_id, bucket, quantity)
    return bucket


def give_back_units(conn: Connection, product_id: int, bucket: int, quantity: int) -> None:
    """A PENDING hold of ``quantity`` units ended without a sale: the units are free again, in
    the bucket they were taken from."""
    conn.execute(_GIVE_BACK, {"product": product_id, "in_bucket": bucket, "units": quantity})


class BelowCommitted(Exception):
    """A total lower than the units already sold and held."""

    def __init__(self, sold: int, held: int):
        super().__init__(f"{sold} sold and {held} held")
        self.sold = sold
        self.held = held


def spread_total(conn: Connection, product_id: int, total: int, buckets_wanted: int | None = None) -> None:
    """Make ``total`` the product's total, its free units spread evenly over its buckets (each
    keeps what it has sold and held), adding buckets up to :func:`bucket_count` (or
    ``buckets_wanted``). A new product gets its buckets here.

    Under the product's lock, after :func:`release_lapsed_holds`. Raises BelowCommitted, changing nothing.
    """
    levels = [BucketLevel(*row) for row in conn.execute(_LOCKED_BUCKETS, {"product": product_id})]
    sold = sum(level.sold for level in levels)
    held = sum(level.held for level in levels)
    if total < sold + held:
        raise BelowCommitted(sold, held)
    existing = len(levels)
    count = max(existing, buckets_wanted or bucket_count(total, conn.dialect.name))
    levels += [BucketLevel(bucket, 0, 0, 0) for bucket in range(existing, count)]
    share, extra = divmod(total - sold - held, count)
    totals = [level.held + level.sold + share + (1 if index < extra else 0) for index, level in enumerate(levels)]
    changed = [{"product": product_id, "in_bucket": level.bucket, "new_total": new_total}
               for level, new_total in zip(levels[:existing], totals) if new_total != level.total]
    if changed:
        conn.execute(_SET_BUCKET_TOTAL, changed)
    if count > existing:
        conn.execute(insert(buckets), [{"product_id": product_id, "bucket": level.bucket, "total_units": new_total}
                                       for level, new_total in zip(levels[existing:], totals[existing:])])


def add_units(conn: Connection, product_id: int, units: int, now: datetime | None = None) -> tuple[int, Stock] | None:
    """Add units to a product's total under its lock, on sale at once: (the total before, the new
    stock); None for an unknown product."""
    now = now or utcnow()
    if not lock_product(conn, product_id):
        return None
    before = unit_counts(conn, [product_id])[product_id].total
    spread_total(conn, product_id, before + units)
    return before, stock_of(conn, product_id, now)


def set_total(conn: Connection, product_id: int, total: int, now: datetime | None = None) -> Stock | None:
    """Set a product's total quantity, never below what is sold and held, under its lock.

    Returns the new stock, None for an unknown product; raises BelowCommitted, having changed
    nothing the caller's transaction should keep.
    """
    now = now or utcnow()
    if not lock_product(conn, product_id):
        return None
    release_lapsed_holds(conn, product_id, now)
    spread_total(conn, product_id, total)
    return stock_of(conn, product_id, now)
