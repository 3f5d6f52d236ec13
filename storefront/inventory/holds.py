"""A hold's life: placed for a visitor, found again, cancelled, lapsed.

Every function works on rows of the ``holds`` table through SQLAlchemy Core, on
a Connection the caller opens: the hold is the hot path, and a Row carries
everything the API shows.
"""

import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import Connection, bindparam, func, literal_column, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Row

from storefront.clock import UTCDateTime, isoformat_z, utcnow
from storefront.inventory.models import HoldStatus, is_pending
from storefront.inventory.stock import (
    give_back_units,
    holds,
    lock_product,
    release_lapsed_holds,
    reserve_units,
    stock_of,
)


class ProductNotFound(LookupError):
    pass


class HoldNotFound(LookupError):
    pass


class OutOfStock(Exception):
    def __init__(self, available: int):
        super().__init__(f"only {available} available")
        self.available = available


class HoldLimit(Exception):
    """The visitor already holds as many units as one visitor may."""

    def __init__(self, held: int, limit: int):
        super().__init__(f"{held} units held, limit {limit}")
        self.held = held
        self.limit = limit


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


def _insert_unless_held(dialect):
    return dialect.insert(holds).on_conflict_do_nothing(
        index_elements=[holds.c.product_id, holds.c.user_id], index_where=is_pending
    ).returning(*holds.c)


# One live hold per visitor and product: the partial unique index is the arbiter.
_INSERT_UNLESS_HELD = {"postgresql": _insert_unless_held(postgresql), "sqlite": _insert_unless_held(sqlite)}

_LIVE_HOLD = select(holds).where(
    holds.c.product_id == bindparam("product"),
    holds.c.user_id == bindparam("visitor"),
    is_pending,
    holds.c.expires_at > bindparam("now", type_=UTCDateTime),
)

_FIND_HOLD = select(holds).where(holds.c.id == bindparam("hold"), holds.c.user_id == bindparam("visitor"))

_CANCEL = (
    update(holds)
    .where(
        holds.c.id == bindparam("hold"),
        holds.c.user_id == bindparam("visitor"),
        is_pending,
        holds.c.expires_at > bindparam("now", type_=UTCDateTime),
    )
    .values(status=literal_column("'CANCELLED'"), updated_at=bindparam("now", type_=UTCDateTime))
    .returning(*holds.c)
)


def place_hold(
    conn: Connection, product_id: int, user_id: str, quantity: int, ttl_seconds: int, max_visitor_units: int
) -> PlacedHold:
    """Hold ``quantity`` units for the visitor, or give back the live hold they already have.

    Race-free across processes: units are reserved by one guarded UPDATE under
    the product's row lock, and a partial unique index allows one PENDING hold
    per visitor and product, so twenty presses of Buy at once make one hold.
    The first try trusts the counters (BEGIN, reserve, insert, COMMIT); only a
    refusal releases lapsed holds and looks again, so a "no" is always exact.
    A new hold must also keep the visitor within ``max_visitor_units`` across
    products. Raises ProductNotFound, OutOfStock or HoldLimit.
    """
    insert_unless_held = _INSERT_UNLESS_HELD[conn.dialect.name]
    for attempt in range(3):
        now = utcnow()
        if attempt:
            # The counters still count holds that lapsed unswept, so they can only
            # understate what is free: release those before deciding again.
            lock_product(conn, product_id)
            release_lapsed_holds(conn, product_id, now)
        terms = reserve_units(conn, product_id, quantity)
        if terms is None:
            if not attempt:
                continue  # a guarded UPDATE that matched nothing took no lock
            conn.commit()  # keep the lapsed holds we released
            existing = live_hold(conn, product_id, user_id, now)
            if existing is not None:
                return PlacedHold(existing, created=False)
            stock = stock_of(conn, product_id, now)
            if stock is None:
                raise ProductNotFound(product_id)
            raise OutOfStock(stock.available)

        price, currency = terms
        placed = conn.execute(
            insert_unless_held,
            {
                "id": uuid.uuid4(),
                "product_id": product_id,
                "user_id": user_id,
                "quantity": quantity,
                "amount": price * quantity,
                "currency": currency,
                "status": HoldStatus.PENDING.value,
                "expires_at": now + timedelta(seconds=ttl_seconds),
                "created_at": now,
                "updated_at": now,
            },
        ).first()
        if placed is not None:
            held = _visitor_units(conn, user_id, now)
            if held > max_visitor_units:
                conn.rollback()
                raise HoldLimit(held - quantity, max_visitor_units)
            conn.commit()
            return PlacedHold(placed, created=True)

        # This visitor already holds the product: undo our reservation, return theirs.
        # (If their hold has just lapsed, the next round releases it and tries again.)
        conn.rollback()
        existing = live_hold(conn, product_id, user_id, utcnow())
        if existing is not None:
            return PlacedHold(existing, created=False)
    raise RuntimeError("could not settle a hold after three rounds")


_VISITOR_UNITS = select(func.coalesce(func.sum(holds.c.quantity), 0)).where(
    holds.c.user_id == bindparam("visitor"), is_pending, holds.c.expires_at > bindparam("now", type_=UTCDateTime)
)


def _visitor_units(conn: Connection, user_id: str, now: datetime) -> int:
    """Units the visitor holds live, across products, this transaction's new hold included.

    On PostgreSQL a transaction-scoped advisory lock per visitor comes first, so two
    holds by one visitor on different products are counted one after the other.
    (SQLite runs one writer at a time anyway.)
    """
    if conn.dialect.name == "postgresql":
        conn.execute(_LOCK_VISITOR, {"visitor": user_id})
    return conn.execute(_VISITOR_UNITS, {"visitor": user_id, "now": now}).scalar_one()


_LOCK_VISITOR = select(func.pg_advisory_xact_lock(func.hashtextextended(bindparam("visitor"), 0)))


def live_hold(conn: Connection, product_id: int, user_id: str, now: datetime) -> Row | None:
    return conn.execute(_LIVE_HOLD, {"product": product_id, "visitor": user_id, "now": now}).first()


_HOLD_BY_ID = select(holds).where(holds.c.id == bindparam("hold"))


def hold_by_id(conn: Connection, hold_id: uuid.UUID) -> Row | None:
    """Any hold, whoever's: for the shop's own bookkeeping, never to show to a visitor."""
    return conn.execute(_HOLD_BY_ID, {"hold": hold_id}).first()


def find_hold(conn: Connection, hold_id: uuid.UUID, user_id: str) -> Row | None:
    """The visitor's own hold; another visitor's is as good as unknown."""
    return conn.execute(_FIND_HOLD, {"hold": hold_id, "visitor": user_id}).first()


def cancel_hold(conn: Connection, hold_id: uuid.UUID, user_id: str) -> Row:
    """Release a live hold at the shopper's request. Raises HoldNotFound or HoldNotPending.

    The caller then cancels its PaymentIntent, outside the transaction.
    """
    hold = find_hold(conn, hold_id, user_id)
    if hold is None:
        conn.rollback()
        raise HoldNotFound(hold_id)
    lock_product(conn, hold.product_id)
    cancelled = conn.execute(_CANCEL, {"hold": hold_id, "visitor": user_id, "now": utcnow()}).first()
    if cancelled is None:
        hold = find_hold(conn, hold_id, user_id)
        conn.rollback()
        raise HoldNotPending(hold)
    give_back_units(conn, cancelled.product_id, cancelled.quantity)
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
