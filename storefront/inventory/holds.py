"""A hold's life: placed for an owner, found again, cancelled, lapsed.

Functions work on rows of the ``holds`` table through SQLAlchemy Core, on a
Connection the caller opens; placing a hold, the hot path, opens its own (on
PostgreSQL one prepared call of a function). A row carries everything the API shows.
"""

import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import Connection, and_, bindparam, case, func, insert, literal_column, select, update
from sqlalchemy.engine import Row

from storefront.clock import UTCDateTime, isoformat_z, utcnow
from storefront.extensions import db, on_postgresql, one_statement
from storefront.inventory.models import HoldStatus, is_pending
from storefront.inventory.stock import (
    give_back_units,
    holds,
    lock_product,
    on_sale,
    release_lapsed_holds,
    stock_of,
    take_units,
)
from storefront.owners import Owner


class ProductNotFound(LookupError):
    pass


class HoldNotFound(LookupError):
    pass


class OutOfStock(Exception):
    def __init__(self, available: int):
        super().__init__(f"only {available} available")
        self.available = available


class NotOnSale(Exception):
    """The product's start time has not come yet (by the database's clock)."""

    def __init__(self, starts_at: datetime):
        super().__init__(f"on sale from {isoformat_z(starts_at)}")
        self.starts_at = starts_at


class HoldLimit(Exception):
    """Already held as many units as allowed: ``per`` "visitor" (the owner, or the owners sharing its
    visitor id and address), or "address" (every owner behind the client address)."""

    def __init__(self, held: int, limit: int, per: str = "visitor"):
        super().__init__(f"{held} units held, limit {limit} per {per}")
        self.held = held
        self.limit = limit
        self.per = per

    def answer(self) -> dict:
        """The 409's message and fields, the same for a hold and a checkout."""
        message = (f"This address already holds {self.held} units; one address may hold {self.limit} at once."
                   if self.per == "address" else
                   f"You already hold {self.held} units; one shopper may hold {self.limit} at once.")
        return {"message": message, "limit": self.limit, "held": self.held, "per": self.per}


@dataclass(frozen=True)
class HoldLimits:
    """MAX_HELD_UNITS_PER_VISITOR and MAX_HELD_UNITS_PER_ADDRESS: live units, across products."""

    per_visitor: int
    per_address: int

    @classmethod
    def of(cls, settings) -> "HoldLimits":
        return cls(settings.max_held_units_per_visitor, settings.max_held_units_per_address)


class HoldNotPending(Exception):
    def __init__(self, hold: Row):
        super().__init__(f"hold is {status_of(hold)}")
        self.hold = hold


@dataclass(frozen=True)
class PlacedHold:
    hold: Row
    created: bool


def status_of(hold: Row, now: datetime | None = None) -> str:
    """The status as the shopper sees it: a PENDING hold past its time has lapsed."""
    if hold.status == HoldStatus.PENDING and hold.expires_at <= (now or utcnow()):
        return HoldStatus.EXPIRED
    return hold.status


def hold_json(hold: Row, now: datetime | None = None) -> dict:
    return {
        "reservationId": str(hold.id),
        "status": str(status_of(hold, now)),
        "productId": hold.product_id,
        "userId": hold.user_id,
        "quantity": hold.quantity,
        "amount": hold.amount,
        "currency": hold.currency,
        "expiresAt": isoformat_z(hold.expires_at),
        "paymentIntentId": hold.payment_intent_id,
    }


_now = bindparam("now", type_=UTCDateTime)
_owned = and_(holds.c.user_id == bindparam("visitor"), holds.c.browser_id == bindparam("browser"))

_LIVE_HOLD = select(holds).where(holds.c.product_id == bindparam("product"), _owned, is_pending,
                                 holds.c.expires_at > _now)

_FIND_HOLD = select(holds).where(holds.c.id == bindparam("hold"), _owned)

_CANCEL = (
    update(holds)
    .where(holds.c.id == bindparam("hold"), _owned, is_pending, holds.c.expires_at > _now)
    .values(status=literal_column("'CANCELLED'"), updated_at=_now)
    .returning(*holds.c)
)

# The units a visitor id holds live: those of this owner, and those asked from this address.
_VISITOR_UNITS = select(
    func.coalesce(func.sum(case((holds.c.browser_id == bindparam("browser"), holds.c.quantity), else_=0)), 0),
    func.coalesce(func.sum(case((holds.c.client_address == bindparam("address"), holds.c.quantity), else_=0)), 0),
).where(holds.c.user_id == bindparam("visitor"), is_pending, holds.c.expires_at > _now)

# The expiry as a FILTER, as in inventory/sql/place_hold_v6.sql: only the address's index fits this look.
_ADDRESS_UNITS = select(
    func.coalesce(func.sum(holds.c.quantity).filter(holds.c.expires_at > _now), 0)
).where(holds.c.client_address == bindparam("address"), is_pending)

# Two key spaces by seed: a visitor id and an address that hash alike still lock apart, as a rule.
_LOCK_VISITOR = select(func.pg_advisory_xact_lock(func.hashtextextended(bindparam("visitor"), 0)))
_LOCK_ADDRESS = select(func.pg_advisory_xact_lock(func.hashtextextended(bindparam("address"), 1)))


def lock_visitor(conn: Connection, visitor_id: str) -> None:
    """Take the visitor id's transaction lock (PostgreSQL), before any product lock: the units
    one visitor id holds are counted and added to under it. SQLite has one writer anyway."""
    if conn.dialect.name == "postgresql":
        conn.execute(_LOCK_VISITOR, {"visitor": visitor_id})


def lock_address(conn: Connection, address: str) -> None:
    """Take the client address's transaction lock (PostgreSQL): after the visitor id's, before any
    product's, the order every path keeps (inventory/sql/place_hold_v6.sql's too). The units held
    from one address are counted and added to under it, so a crowd from one address cannot race
    past its limit."""
    if conn.dialect.name == "postgresql":
        conn.execute(_LOCK_ADDRESS, {"address": address})


def enforce_limits(conn: Connection, owner: Owner, address: str, adding: int, now: datetime,
                   limits: HoldLimits) -> None:
    """Raise HoldLimit if ``adding`` more units would take the owner or the address past its limit.
    The caller holds the visitor id's lock and the address's."""
    held = held_by(conn, owner, address, now)
    if held + adding > limits.per_visitor:
        raise HoldLimit(held, limits.per_visitor, "visitor")
    from_address = conn.execute(_ADDRESS_UNITS, {"address": address, "now": now}).scalar_one()
    if from_address + adding > limits.per_address:
        raise HoldLimit(from_address, limits.per_address, "address")


def held_by(conn: Connection, owner: Owner, address: str, now: datetime) -> int:
    """Units held live that count against this owner's limit: the larger of the owner's own
    and those of every owner with the same visitor id and address (one person's windows)."""
    own, same_address = conn.execute(_VISITOR_UNITS, {
        "visitor": owner.visitor_id, "browser": owner.browser_id, "address": address, "now": now}).one()
    return max(own, same_address)


def place_hold(product_id: int, owner: Owner, address: str, quantity: int, ttl_seconds: int,
               limits: HoldLimits) -> PlacedHold:
    """Hold ``quantity`` units for the owner, or give back the live hold they already have.

    Race-free across processes: the visitor id's lock is taken first; the units come from one
    of the product's stock buckets, changed by one guarded UPDATE under that bucket's row
    lock; and a partial unique index allows one PENDING hold per owner and product, so
    twenty presses of Buy at once make one hold. While nothing is left, the "no" comes from
    reads alone (no lock taken, nothing written), exact because lapsed holds count as free
    in them; lapsed holds are released only when a hold needs their units. A new hold must
    keep the owner, and the owners sharing its visitor id and address, within
    ``limits.per_visitor``, and every owner behind the address within ``limits.per_address``.

    On PostgreSQL the usual hold is one statement: a function installed by a migration
    (``storefront_place_hold``, inventory/sql/), one round trip in its own transaction. When no
    bucket it can take without waiting has the units, or the owner's lapsed hold must give way,
    it answers ``needs_lock`` having changed nothing, and the hold is placed step by step
    under the product's lock, as on SQLite. Raises ProductNotFound, NotOnSale, OutOfStock or HoldLimit.
    """
    if on_postgresql():
        placed = _place_hold_in_one_statement(product_id, owner, address, quantity, ttl_seconds, limits)
        if placed is not None:
            return placed
    with db.engine.connect() as conn:
        return _place_hold_under_product_lock(conn, product_id, owner, address, quantity, ttl_seconds, limits)


def _place_hold_under_product_lock(conn, product_id, owner, address, quantity, ttl_seconds, limits):
    """The same rules, statement by statement, under the product's lock (inventory/sql/place_hold_v6.sql's
    order: a "no" first, from reads alone). SQLite's only way; PostgreSQL's when its function needs the lock."""
    now = utcnow()
    stock = stock_of(conn, product_id, now)  # lapsed, unreleased holds count as free here
    if stock is not None and not stock.on_sale:
        conn.rollback()
        raise NotOnSale(stock.starts_at)
    if stock is not None and stock.available < quantity and on_sale(conn, product_id):
        existing = live_hold(conn, product_id, owner, now)
        conn.rollback()
        if existing is not None:
            return PlacedHold(existing, created=False)
        raise OutOfStock(stock.available)
    lock_visitor(conn, owner.visitor_id)
    existing = live_hold(conn, product_id, owner, now)
    if existing is not None:
        conn.rollback()
        return PlacedHold(existing, created=False)
    lock_address(conn, address)
    try:
        enforce_limits(conn, owner, address, quantity, now, limits)
    except HoldLimit:
        conn.rollback()
        raise
    terms = on_sale(conn, product_id) if lock_product(conn, product_id) else None
    if terms is None:
        conn.rollback()
        raise ProductNotFound(product_id)
    if terms.starts_at is not None and terms.starts_at > now:
        conn.rollback()
        raise NotOnSale(terms.starts_at)
    # Lapsed holds still count in their buckets (the owner's own may hold the unique slot): they give way.
    release_lapsed_holds(conn, product_id, now)
    bucket = take_units(conn, product_id, quantity)
    if bucket is None:
        conn.commit()  # keep the lapsed holds we released
        raise OutOfStock(stock_of(conn, product_id, now).available)
    price, currency = terms.price, terms.currency
    placed = conn.execute(insert(holds).returning(*holds.c), {
        "id": uuid.uuid4(), "product_id": product_id, "bucket": bucket, "user_id": owner.visitor_id,
        "browser_id": owner.browser_id, "client_address": address, "quantity": quantity,
        "amount": price * quantity, "currency": currency, "status": HoldStatus.PENDING.value,
        "expires_at": now + timedelta(seconds=ttl_seconds), "created_at": now, "updated_at": now, "intent_checks": 0,
    }).first()
    conn.commit()
    return PlacedHold(placed, created=True)


# What the answer, the hold fragment and its payment read of a new hold; the rest of the row
# (reconciliation's bookkeeping, the refund, the address) stays in the database.
PLACED_COLUMNS = ("id", "product_id", "user_id", "browser_id", "quantity", "amount", "currency", "status",
                  "expires_at", "payment_intent_id", "checkout_id", "created_at")
_PLACE_HOLD = (
    "SELECT placed.outcome, placed.detail, "
    + ", ".join(f"(placed.hold).{column}" for column in PLACED_COLUMNS)
    + ", placed.starts_at FROM storefront_place_hold("
    "%(id)s::uuid, %(product)s::integer, %(visitor)s::varchar, %(browser)s::varchar, %(address)s::varchar,"
    " %(quantity)s::integer, %(ttl)s::integer, %(limit)s::integer, %(address_limit)s::integer) AS placed"
)


def _place_hold_in_one_statement(product_id, owner, address, quantity, ttl_seconds, limits):
    """PostgreSQL: the function a migration installed, prepared once per connection, one round trip.
    None when it needs the product's lock (it changed nothing)."""
    with one_statement() as cursor:
        row = cursor.execute(_PLACE_HOLD, {
            "id": uuid.uuid4(), "product": product_id, "visitor": owner.visitor_id,
            "browser": owner.browser_id, "address": address, "quantity": quantity, "ttl": ttl_seconds,
            "limit": limits.per_visitor, "address_limit": limits.per_address,
        }, prepare=True).fetchone()
    if row.outcome in ("created", "existing"):
        return PlacedHold(row, created=row.outcome == "created")
    if row.outcome == "needs_lock":
        return None
    if row.outcome == "not_on_sale":
        raise NotOnSale(row.starts_at)
    if row.outcome == "out_of_stock":
        raise OutOfStock(row.detail)
    if row.outcome == "hold_limit":
        raise HoldLimit(row.detail, limits.per_visitor, "visitor")
    if row.outcome == "address_limit":
        raise HoldLimit(row.detail, limits.per_address, "address")
    raise ProductNotFound(product_id)


def live_hold(conn: Connection, product_id: int, owner: Owner, now: datetime) -> Row | None:
    return conn.execute(_LIVE_HOLD, {"product": product_id, "visitor": owner.visitor_id,
                                     "browser": owner.browser_id, "now": now}).first()


_HOLD_BY_ID = select(holds).where(holds.c.id == bindparam("hold"))


def hold_by_id(conn: Connection, hold_id: uuid.UUID) -> Row | None:
    """Any hold, whoever's: for the shop's own bookkeeping, never to show to a visitor."""
    return conn.execute(_HOLD_BY_ID, {"hold": hold_id}).first()


def find_hold(conn: Connection, hold_id: uuid.UUID, owner: Owner) -> Row | None:
    """The owner's own hold; another's (even with the same visitor id) is as good as unknown."""
    return conn.execute(_FIND_HOLD, {"hold": hold_id, "visitor": owner.visitor_id,
                                     "browser": owner.browser_id}).first()


def cancel_hold(conn: Connection, hold_id: uuid.UUID, owner: Owner) -> Row:
    """Release a live hold at the shopper's request. Raises HoldNotFound or HoldNotPending.

    The caller settles its PaymentIntent with Stripe first (payments/reconcile.py).
    """
    hold = find_hold(conn, hold_id, owner)
    if hold is None:
        conn.rollback()
        raise HoldNotFound(hold_id)
    lock_product(conn, hold.product_id)
    cancelled = conn.execute(_CANCEL, {"hold": hold_id, "visitor": owner.visitor_id, "browser": owner.browser_id,
                                       "now": utcnow()}).first()
    if cancelled is None:
        hold = find_hold(conn, hold_id, owner)
        conn.rollback()
        raise HoldNotPending(hold)
    give_back_units(conn, cancelled.product_id, cancelled.bucket, cancelled.quantity)
    conn.commit()
    return cancelled


def sweep_lapsed_holds(conn: Connection, now: datetime | None = None) -> int:
    """Mark every lapsed PENDING hold EXPIRED, one product per transaction. Returns units freed."""
    now = now or utcnow()
    product_ids = conn.execute(
        select(holds.c.product_id).where(is_pending, holds.c.expires_at <= now).distinct()
    ).scalars().all()
    conn.rollback()
    freed = 0
    for product_id in product_ids:
        lock_product(conn, product_id)
        freed += release_lapsed_holds(conn, product_id, now)
        conn.commit()
    return freed
