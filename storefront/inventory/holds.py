"""A hold's life: placed for an owner, found again, cancelled, lapsed.

Functions work on rows of the ``holds`` table through SQLAlchemy Core, on a Connection the
caller opened, and leave its transaction to the caller. Placing a hold, the hot path, takes no
connection: on PostgreSQL it is one prepared call of a function in autocommit, and otherwise
the grant step (``inventory/grants.py``) in a transaction of its own. A row carries everything
the API shows.
"""

import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import Connection, and_, bindparam, select
from sqlalchemy.engine import Row

from storefront.clock import isoformat_z, utcnow
from storefront.database import on_postgresql, one_statement, prepared, reading
from storefront.extensions import db
from storefront.inventory.grants import (
    BuyerLimit,
    DrawOnly,
    GrantedLine,
    HoldLimit,
    HoldLimits,
    Line,
    NotOnSale,
    OutOfStock,
    Paused,
    ProductNotFound,
    grant,
    own_live_hold,
)
from storefront.inventory.hold_rows import cancel_own, insert_hold, lapsed, status_of
from storefront.inventory.models import HoldStatus, new_hold_id
from storefront.inventory.queue import not_admitted
from storefront.inventory.stock import give_back_units, holds, lock_product, on_sale, release_lapsed_holds, stock_of
from storefront.owners import Owner, address_block
from storefront.ratelimit import HoldRate, RateLimited


class HoldNotFound(LookupError):
    pass


class HoldNotPending(Exception):
    def __init__(self, hold: Row):
        super().__init__(f"hold is {status_of(hold)}")
        self.hold = hold


@dataclass(frozen=True)
class PlacedHold:
    hold: Row
    created: bool


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


_owned = and_(holds.c.user_id == bindparam("visitor"), holds.c.browser_id == bindparam("browser"))


_FIND_HOLD = select(holds).where(holds.c.id == bindparam("hold"), _owned)


def place_hold(product_id: int, owner: Owner, address: str, quantity: int, ttl_seconds: int,
               limits: HoldLimits, rate: HoldRate | None = None) -> PlacedHold:
    """Hold ``quantity`` units for the owner, or give back the live hold they already have.

    Race-free across processes: the visitor id's lock is taken first; the units come from one
    of the product's stock buckets, changed by one guarded UPDATE under that bucket's row
    lock; and a partial unique index allows one PENDING hold per owner and product, so
    twenty presses of Buy at once make one hold. While nothing is left, the "no" comes from
    reads alone (no lock taken, nothing written), exact because lapsed holds count as free
    in them; lapsed holds are released only when a hold needs their units. The rule itself
    (limits, start time, stock, the owner's own hold) is the grant step's (inventory/grants.py).

    On PostgreSQL the usual hold is one statement: a function installed by a migration
    (``storefront_place_hold``, inventory/sql/), one round trip in its own transaction. When no
    bucket it can take without waiting has the units, or the owner's lapsed hold must give way,
    it answers ``needs_lock`` having changed nothing, and the grant step decides under the
    product's lock, as on SQLite. Raises ProductNotFound, NotOnSale, OutOfStock or HoldLimit.
    """
    if on_postgresql():
        placed = place_hold_in_one_statement(product_id, owner, address, quantity, ttl_seconds, limits, rate)
        if placed is not None:
            return placed
    return place_hold_step_by_step(product_id, owner, address, quantity, ttl_seconds, limits)


def place_hold_step_by_step(product_id: int, owner: Owner, address: str, quantity: int, ttl_seconds: int,
                            limits: HoldLimits) -> PlacedHold:
    """The grant step, statement by statement, in a transaction of its own (after a "no" from
    reads alone, as inventory/sql/place_hold_v9.sql gives it). SQLite's only way; PostgreSQL's
    when its function needs the product's lock."""
    now = utcnow()
    with reading() as conn:
        refused = _refused_by_reads(conn, product_id, owner, quantity, now)
    if refused is not None:
        return refused
    short = None
    with db.engine.begin() as conn:
        try:
            granted = grant(conn, owner, address, [Line(product_id, quantity)], now, limits)
        except OutOfStock as refusal:
            # One line, so nothing was taken: the lapsed holds the step released stay released.
            short = refusal
        else:
            if granted.existing is not None:
                return PlacedHold(granted.existing, created=False)
            return PlacedHold(_insert_hold(conn, granted.lines[0], owner, address, now, ttl_seconds), created=True)
    raise short


def _refused_by_reads(conn: Connection, product_id: int, owner: Owner, quantity: int, now: datetime):
    """The "no" that needs no lock: not on sale yet, or fewer units than asked even counting lapsed
    holds as free (the owner's live hold, if any, comes back instead). None: ask the grant step."""
    stock = stock_of(conn, product_id, now)
    if stock is None:
        return None
    if not stock.on_sale:
        raise NotOnSale([(product_id, stock.starts_at)])
    if stock.available < quantity and on_sale(conn, product_id):
        existing = own_live_hold(conn, product_id, owner, now)
        if existing is not None:
            return PlacedHold(existing, created=False)
        raise OutOfStock([(product_id, stock.available)])
    return None


def _insert_hold(conn: Connection, line: GrantedLine, owner: Owner, address: str, now: datetime,
                 ttl_seconds: int) -> Row:
    return insert_hold(conn, {
        "id": new_hold_id(), "product_id": line.product_id, "bucket": line.bucket, "user_id": owner.visitor_id,
        "browser_id": owner.browser_id, "client_address": address, "client_block": address_block(address),
        "quantity": line.quantity, "amount": line.amount, "currency": line.currency,
        "status": HoldStatus.PENDING.value, "expires_at": now + timedelta(seconds=ttl_seconds), "created_at": now,
        "updated_at": now, "intent_checks": 0,
    })


# What the answer, the hold fragment and its payment read of a new hold; the rest of the row
# (reconciliation's bookkeeping, the refund, the address) stays in the database.
PLACED_COLUMNS = ("id", "product_id", "user_id", "browser_id", "quantity", "amount", "currency", "status",
                  "expires_at", "payment_intent_id", "checkout_id", "created_at")
_PLACE_HOLD = (
    "SELECT placed.outcome, placed.detail, "
    + ", ".join(f"(placed.hold).{column}" for column in PLACED_COLUMNS)
    + ", placed.starts_at FROM storefront_place_hold("
    "%(id)s::uuid, %(product)s::integer, %(visitor)s::varchar, %(browser)s::varchar, %(address)s::varchar,"
    " %(block)s::varchar, %(quantity)s::integer, %(ttl)s::integer, %(limit)s::integer, %(address_limit)s::integer,"
    " %(block_limit)s::integer, %(per_pass)s::integer, %(rate_key)s::varchar, %(rate_block)s::varchar,"
    " %(rate_window)s::bigint, %(rate_weight)s::double precision, %(rate_limit)s::integer,"
    " %(rate_block_limit)s::integer) AS placed"
)


def place_hold_in_one_statement(product_id: int, owner: Owner, address: str, quantity: int, ttl_seconds: int,
                                limits: HoldLimits, rate: HoldRate | None = None) -> PlacedHold | None:
    """PostgreSQL: the function a migration installed, prepared once per connection, one round trip.
    With ``rate`` it counts the request against HOLD_RATE_LIMIT first (RateLimited past it). None when
    it needs the product's lock (it changed nothing but the rate's count)."""
    with one_statement() as cursor:
        row = cursor.execute(_PLACE_HOLD, {
            "id": new_hold_id(), "product": product_id, "visitor": owner.visitor_id,
            "browser": owner.browser_id, "address": address, "block": address_block(address) if limits.per_block else None,
            "quantity": quantity, "ttl": ttl_seconds, "limit": limits.per_visitor, "address_limit": limits.per_address,
            "block_limit": limits.per_block, "per_pass": limits.per_pass,
            "rate_key": rate.key if rate else None, "rate_block": rate.block if rate else None,
            "rate_window": rate.window if rate else 0, "rate_weight": rate.weight if rate else 0.0,
            "rate_limit": rate.limit if rate else 0, "rate_block_limit": rate.block_limit if rate else 0,
        }, prepare=prepared()).fetchone()
    if row.outcome in ("created", "existing"):
        return PlacedHold(row, created=row.outcome == "created")
    if row.outcome == "needs_lock":
        return None
    if row.outcome == "rate_limited":
        raise RateLimited(rate.wait_seconds)
    if row.outcome == "not_on_sale":
        raise NotOnSale([(product_id, row.starts_at)])
    if row.outcome == "out_of_stock":
        raise OutOfStock([(product_id, row.detail)])
    if row.outcome == "hold_limit":
        raise HoldLimit(row.detail, limits.per_visitor, "visitor")
    if row.outcome == "address_limit":
        raise HoldLimit(row.detail, limits.per_address, "address")
    if row.outcome == "block_limit":
        raise HoldLimit(row.detail, limits.per_block, "address")
    if row.outcome == "pass_limit":
        raise HoldLimit(quantity, limits.per_pass, "pass")
    if row.outcome == "paused":
        raise Paused([product_id])
    if row.outcome == "draw_only":
        raise DrawOnly([product_id])
    if row.outcome == "buyer_limit":
        with reading() as conn:
            terms = on_sale(conn, product_id)
        raise BuyerLimit(terms.family, row.detail, terms.per_buyer)
    if row.outcome == "not_admitted":
        with reading() as conn:
            raise not_admitted(conn, row.detail, owner)
    raise ProductNotFound([product_id])


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
        raise HoldNotFound(hold_id)
    lock_product(conn, hold.product_id)
    cancelled = cancel_own(conn, hold_id, owner.visitor_id, owner.browser_id, utcnow())
    if cancelled is None:
        raise HoldNotPending(find_hold(conn, hold_id, owner))
    give_back_units(conn, cancelled.product_id, cancelled.bucket, cancelled.quantity)
    return cancelled


def sweep_lapsed_holds(now: datetime | None = None) -> int:
    """Mark every lapsed PENDING hold EXPIRED, one product per transaction. Returns units freed."""
    now = now or utcnow()
    with reading() as conn:
        product_ids = conn.execute(
            select(holds.c.product_id).where(lapsed(now)).distinct()
        ).scalars().all()
    freed = 0
    for product_id in product_ids:
        with db.engine.begin() as conn:
            lock_product(conn, product_id)
            freed += release_lapsed_holds(conn, product_id, now)
    return freed
