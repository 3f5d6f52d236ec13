"""The one step that grants units: to a single hold, or to every line of a checkout at once.

One place decides, in one order, whether units may be held: the owner's own live hold, both
limits (the visitor's and the address's), the product (known, not archived), its start time,
and its stock (lapsed holds giving way). Locks are taken in the order every path keeps — the
visitor id's, the client address's, then each product's in id order — so two grants never wait
on each other in a circle. Refusals are exceptions; the caller's transaction (opened by the way
in) ends with them.

On PostgreSQL a single hold usually never comes here: ``storefront_place_hold``
(``inventory/sql/``) applies the same rules in one statement, the measured fast path, and sends
what it cannot decide without the product's lock back to this step. ``tests/test_grant_rule.py``
runs one table of cases through both forms, so that they cannot drift.
"""

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import Connection, bindparam, case, func, literal_column, select, update
from sqlalchemy.engine import Row

from storefront.clock import UTCDateTime, isoformat_z
from storefront.inventory.models import is_pending
from storefront.inventory.queue import use_pass
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


class ProductNotFound(LookupError):
    """No such product, or it is archived: it takes no new holds."""

    def __init__(self, product_ids: list[int]):
        super().__init__(f"no such product: {product_ids}")
        self.product_ids = product_ids


class NotOnSale(Exception):
    """Lines whose product's start time has not come yet: ``items`` as the API names them."""

    def __init__(self, items: list[dict], starts_at: datetime):
        super().__init__(f"{len(items)} line(s) not on sale yet")
        self.items = items
        self.starts_at = starts_at  # the first line's, as a single hold's answer gives it


class OutOfStock(Exception):
    """Lines with fewer units available than asked: ``items`` as the API names them."""

    def __init__(self, items: list[dict]):
        super().__init__(f"{len(items)} line(s) short")
        self.items = items

    @property
    def available(self) -> int:
        """A single hold's answer: what its one product has left."""
        return self.items[0]["available"]


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


@dataclass(frozen=True)
class Line:
    product_id: int
    quantity: int


@dataclass(frozen=True)
class GrantedLine:
    product_id: int
    quantity: int
    bucket: int
    price: int  # per unit, in the currency's minor units, as the product is priced now
    currency: str

    @property
    def amount(self) -> int:
        return self.price * self.quantity


@dataclass(frozen=True)
class Grant:
    """What the step decided: the owner's own live hold given back as it is (``existing``), or
    units taken for every line; ``replaced``: the owner's single holds a checkout took over."""

    lines: list[GrantedLine]
    existing: Row | None = None
    replaced: list[Row] = ()


_now = bindparam("now", type_=UTCDateTime)

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

_owned = (holds.c.user_id == bindparam("visitor"), holds.c.browser_id == bindparam("browser"))
_OWN_LIVE_HOLD = select(holds).where(holds.c.product_id == bindparam("product"), *_owned, is_pending,
                                     holds.c.expires_at > _now)


def lock_visitor(conn: Connection, visitor_id: str) -> None:
    """Take the visitor id's transaction lock (PostgreSQL), before any other: the units one visitor
    id holds are counted and added to under it. SQLite has one writer anyway."""
    if conn.dialect.name == "postgresql":
        conn.execute(_LOCK_VISITOR, {"visitor": visitor_id})


def lock_address(conn: Connection, address: str) -> None:
    """Take the client address's transaction lock (PostgreSQL): after the visitor id's, before any
    product's, the order every path keeps (inventory/sql/place_hold_v6.sql's too)."""
    if conn.dialect.name == "postgresql":
        conn.execute(_LOCK_ADDRESS, {"address": address})


def held_by(conn: Connection, owner: Owner, address: str, now: datetime) -> int:
    """Units held live that count against this owner's limit: the larger of the owner's own
    and those of every owner with the same visitor id and address (one person's windows)."""
    own, same_address = conn.execute(_VISITOR_UNITS, {
        "visitor": owner.visitor_id, "browser": owner.browser_id, "address": address, "now": now}).one()
    return max(own, same_address)


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


def own_live_hold(conn: Connection, product_id: int, owner: Owner, now: datetime) -> Row | None:
    return conn.execute(_OWN_LIVE_HOLD, {"product": product_id, "visitor": owner.visitor_id,
                                         "browser": owner.browser_id, "now": now}).first()


def _replace_own_holds(conn: Connection, owner: Owner, product_ids: list[int], now: datetime) -> list[Row]:
    """A checkout takes over the owner's own single holds on its products: released, units given back."""
    replaced = conn.execute(
        update(holds)
        .where(holds.c.user_id == owner.visitor_id, holds.c.browser_id == owner.browser_id,
               holds.c.product_id.in_(product_ids), is_pending, holds.c.expires_at > now)
        .values(status=literal_column("'CANCELLED'"), updated_at=now)
        .returning(holds.c.id, holds.c.product_id, holds.c.bucket, holds.c.quantity, holds.c.payment_intent_id)
    ).all()
    for hold in sorted(replaced, key=lambda hold: (hold.product_id, hold.bucket)):
        give_back_units(conn, hold.product_id, hold.bucket, hold.quantity)
    return replaced


def grant(conn: Connection, owner: Owner, address: str, lines: list[Line], now: datetime, limits: HoldLimits,
          *, replace_own: bool = False) -> Grant:
    """Decide and take the units of ``lines`` (one product each) for ``owner``, all or none.

    The rule, in its order:

    1. the visitor id's lock; a single hold's owner who already holds the product live gets
       that hold back (``existing``), whatever the stock and the limits say now;
    2. the address's lock, then each product's (id order); an unknown or archived product:
       ProductNotFound;
    3. with ``replace_own`` (a checkout), the owner's own live holds on these products are
       released first, so they do not count twice;
    4. the limits: the owner's (and its visitor id's from this address) and the address's: HoldLimit;
    5. the start times: NotOnSale, naming every waiting line; then, for a queued product, the
       owner's live pass from its waiting room, spent here (NotAdmitted), unless the hold a
       checkout takes over spent it already;
    6. the stock, lapsed holds released first (they no longer count): each line's units taken
       from a bucket (gathered into one if need be), or OutOfStock, naming every short line.
    """
    lock_visitor(conn, owner.visitor_id)
    if not replace_own and len(lines) == 1:
        existing = own_live_hold(conn, lines[0].product_id, owner, now)
        if existing is not None:
            return Grant([], existing=existing)
    lock_address(conn, address)
    product_ids = sorted({line.product_id for line in lines})
    terms = {}
    for product_id in product_ids:
        terms[product_id] = on_sale(conn, product_id) if lock_product(conn, product_id) else None
    unknown = [product_id for product_id in product_ids if terms[product_id] is None]
    if unknown:
        raise ProductNotFound(unknown)
    replaced = _replace_own_holds(conn, owner, product_ids, now) if replace_own else []
    enforce_limits(conn, owner, address, sum(line.quantity for line in lines), now, limits)

    waiting = [line for line in lines if terms[line.product_id].starts_at is not None
               and terms[line.product_id].starts_at > now]
    if waiting:
        first = terms[waiting[0].product_id].starts_at
        raise NotOnSale([{"productId": line.product_id, "startsAt": isoformat_z(terms[line.product_id].starts_at)}
                         for line in waiting], first)
    queues = sorted({terms[product_id].queue_of for product_id in product_ids} - {None})
    passed = {terms[hold.product_id].queue_of for hold in replaced}
    for queue_of in queues:
        if queue_of not in passed:
            use_pass(conn, queue_of, owner, now)

    for product_id in product_ids:
        release_lapsed_holds(conn, product_id, now)
    granted, short = [], []
    for line in lines:
        bucket = take_units(conn, line.product_id, line.quantity)
        if bucket is None:
            short.append({"productId": line.product_id, "available": max(free_units(conn, line.product_id) or 0, 0)})
            continue
        price, currency = terms[line.product_id].price, terms[line.product_id].currency
        granted.append(GrantedLine(line.product_id, line.quantity, bucket, price, currency))
    if short:
        # Units already taken for other lines are the caller's to roll back with the transaction.
        raise OutOfStock(short)
    return Grant(granted, replaced=replaced)
