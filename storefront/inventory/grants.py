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

from sqlalchemy import Connection, bindparam, case, func, literal_column, select
from sqlalchemy.engine import Row

from storefront.clock import UTCDateTime
from storefront.inventory.hold_rows import live, take_over_own, unexpired
from storefront.inventory.models import is_pending
from storefront.inventory.queue import live_pass, spend_pass
from storefront.inventory.stock import (
    family_items,
    free_units,
    give_back_units,
    holds,
    lock_product,
    on_sale,
    release_lapsed_holds,
    take_units,
)
from storefront.locks import KeySpace, lock_key
from storefront.owners import Owner, address_block


class ProductNotFound(LookupError):
    """No such product, or it is archived: it takes no new holds."""

    def __init__(self, product_ids: list[int]):
        super().__init__(f"no such product: {product_ids}")
        self.product_ids = product_ids


class NotOnSale(Exception):
    """Lines whose product's start time has not come yet: (product id, its start) each."""

    def __init__(self, lines: list[tuple[int, datetime]]):
        super().__init__(f"{len(lines)} line(s) not on sale yet")
        self.lines = lines

    @property
    def starts_at(self) -> datetime:
        """The first line's start, as a single hold's answer gives it."""
        return self.lines[0][1]


class OutOfStock(Exception):
    """Lines with fewer units available than asked: (product id, units available) each."""

    def __init__(self, lines: list[tuple[int, int]]):
        super().__init__(f"{len(lines)} line(s) short")
        self.lines = lines

    @property
    def available(self) -> int:
        """A single hold's answer: what its one product has left."""
        return self.lines[0][1]


class HoldLimit(Exception):
    """Already held as many units as allowed: ``per`` "visitor" (the owner, or the owners sharing its
    visitor id and address), "address" (every owner behind the client address, or its IPv6 /48),
    or "pass" (what one admission to a drop's waiting room may take)."""

    def __init__(self, held: int, limit: int, per: str = "visitor"):
        super().__init__(f"{held} units held, limit {limit} per {per}")
        self.held = held
        self.limit = limit
        self.per = per


class BuyerLimit(Exception):
    """The product's ``per_buyer``: this buyer holds and has bought ``held`` units of it and its options."""

    def __init__(self, product_id: int, held: int, limit: int):
        super().__init__(f"{held} units of product {product_id} held or bought, limit {limit} per buyer")
        self.product_id = product_id
        self.held = held
        self.limit = limit


class Paused(Exception):
    """The product's owner paused its sale: no new hold, checkout, place or entry."""

    def __init__(self, product_ids: list[int]):
        super().__init__(f"paused: {product_ids}")
        self.product_ids = product_ids


class DrawOnly(Exception):
    """Products sold by a draw (inventory/draw.py): entered, never held."""

    def __init__(self, product_ids: list[int]):
        super().__init__(f"sold by a draw: {product_ids}")
        self.product_ids = product_ids


@dataclass(frozen=True)
class HoldLimits:
    """MAX_HELD_UNITS_PER_VISITOR and MAX_HELD_UNITS_PER_ADDRESS: live units, across products; the
    address's limit for an IPv6 /48 as a whole (``per_block``, 0: none); QUEUE_UNITS_PER_PASS."""

    per_visitor: int
    per_address: int
    per_block: int = 0
    per_pass: int = 1

    @classmethod
    def of(cls, settings) -> "HoldLimits":
        return cls(settings.max_held_units_per_visitor, settings.max_held_units_per_address,
                   settings.max_held_units_per_address * settings.ipv6_block_factor, settings.queue_units_per_pass)


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
    expires_at: datetime | None = None  # the earliest of the replaced holds': the new ones keep it


_now = bindparam("now", type_=UTCDateTime)

# The units a visitor id holds live: those of this owner, and those asked from this address.
_VISITOR_UNITS = select(
    func.coalesce(func.sum(case((holds.c.browser_id == bindparam("browser"), holds.c.quantity), else_=0)), 0),
    func.coalesce(func.sum(case((holds.c.client_address == bindparam("address"), holds.c.quantity), else_=0)), 0),
).where(holds.c.user_id == bindparam("visitor"), live(_now))

# The expiry as a FILTER, as in inventory/sql/place_hold_v9.sql: only the address's index fits this look.
_ADDRESS_UNITS = select(
    func.coalesce(func.sum(holds.c.quantity).filter(unexpired(_now)), 0)
).where(holds.c.client_address == bindparam("address"), is_pending)
_BLOCK_UNITS = select(
    func.coalesce(func.sum(holds.c.quantity).filter(unexpired(_now)), 0)
).where(holds.c.client_block == bindparam("block"), is_pending)

_owned = (holds.c.user_id == bindparam("visitor"), holds.c.browser_id == bindparam("browser"))
_OWN_LIVE_HOLD = select(holds).where(holds.c.product_id == bindparam("product"), *_owned, live(_now))


def lock_visitor(conn: Connection, visitor_id: str) -> None:
    """Take the visitor id's transaction lock (PostgreSQL), before any other: the units one visitor
    id holds are counted and added to under it. SQLite has one writer anyway."""
    lock_key(conn, KeySpace.VISITOR, visitor_id)


def lock_address(conn: Connection, address: str) -> None:
    """Take the client address's transaction lock (PostgreSQL), then its IPv6 /48's: after the visitor
    id's, before any product's, the order every path keeps (inventory/sql/place_hold_v9.sql's too)."""
    lock_key(conn, KeySpace.ADDRESS, address)
    if (block := address_block(address)) is not None:
        lock_key(conn, KeySpace.ADDRESS, block)


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
    if limits.per_block and (block := address_block(address)) is not None:
        from_block = conn.execute(_BLOCK_UNITS, {"block": block, "now": now}).scalar_one()
        if from_block + adding > limits.per_block:
            raise HoldLimit(from_block, limits.per_block, "address")


def own_live_hold(conn: Connection, product_id: int, owner: Owner, now: datetime) -> Row | None:
    return conn.execute(_OWN_LIVE_HOLD, {"product": product_id, "visitor": owner.visitor_id,
                                         "browser": owner.browser_id, "now": now}).first()


def _replace_own_holds(conn: Connection, owner: Owner, product_ids: list[int], now: datetime) -> list[Row]:
    """A checkout takes over the owner's own live holds on its products: released, units given back."""
    replaced = take_over_own(conn, owner.visitor_id, owner.browser_id, product_ids, now)
    for hold in sorted(replaced, key=lambda hold: (hold.product_id, hold.bucket)):
        give_back_units(conn, hold.product_id, hold.bucket, hold.quantity)
    return replaced


# What one owner holds live and has bought of a product and all its options.
_BOUGHT_BY_OWNER = select(func.coalesce(func.sum(holds.c.quantity), 0)).where(
    holds.c.user_id == bindparam("visitor"), holds.c.browser_id == bindparam("browser"),
    holds.c.product_id.in_(family_items(bindparam("family")).scalar_subquery()),
    (holds.c.status == literal_column("'COMPLETED'")) | live(_now))


def bought_by_owner(conn: Connection, family: int, owner: Owner, now: datetime) -> int:
    """Units of the product ``family`` (and its options) this owner holds live or has bought."""
    return conn.execute(_BOUGHT_BY_OWNER, {"family": family, "visitor": owner.visitor_id,
                                           "browser": owner.browser_id, "now": now}).scalar_one()


def grant(conn: Connection, owner: Owner, address: str, lines: list[Line], now: datetime, limits: HoldLimits,
          *, replace_own: bool = False) -> Grant:
    """Decide and take the units of ``lines`` (one product each) for ``owner``, all or none.

    The rule, in its order:

    1. the visitor id's lock; a single hold's owner who already holds the product live gets
       that hold back (``existing``), unchanged, whatever the stock and the limits say now;
    2. the address's lock (and its IPv6 /48's), then each product's (id order); an unknown or
       archived product: ProductNotFound; a product sold by a draw: DrawOnly;
    3. with ``replace_own`` (a checkout), the owner's own live holds on these products are
       released first, so they do not count twice; the new holds keep the earliest expiry of
       those they replace (``Grant.expires_at``): nothing renews a hold;
    4. the limits: the owner's (and its visitor id's from this address), the address's and its
       /48's: HoldLimit;
    5. the start times: NotOnSale, naming every waiting line; a paused product: Paused;
    6. for a queued product, the owner's pass from its waiting room: live and unspent, or spent
       on a hold this checkout takes over (NotAdmitted); its lines may take at most
       ``limits.per_pass`` units of the product and its options together (HoldLimit "pass");
    7. the product's limit per buyer, counting what this owner holds and has bought of the
       product and its options (BuyerLimit);
    8. the stock, lapsed holds released first (they no longer count): each line's units taken
       from a bucket (gathered into one if need be), or OutOfStock, naming every short line;
    9. only then are the passes spent: a refused grant leaves them as they were.
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
    if drawn := [product_id for product_id in product_ids if terms[product_id].draw]:
        raise DrawOnly(drawn)
    replaced = _replace_own_holds(conn, owner, product_ids, now) if replace_own else []
    enforce_limits(conn, owner, address, sum(line.quantity for line in lines), now, limits)

    waiting = [line for line in lines if terms[line.product_id].starts_at is not None
               and terms[line.product_id].starts_at > now]
    if waiting:
        raise NotOnSale([(line.product_id, terms[line.product_id].starts_at) for line in waiting])
    paused = [product_id for product_id in product_ids if terms[product_id].paused]
    if paused:
        raise Paused(paused)
    units_of: dict[int, int] = {}  # per family: the product and its options together
    for line in lines:
        units_of[terms[line.product_id].family] = units_of.get(terms[line.product_id].family, 0) + line.quantity
    taken_over = {terms[hold.product_id].family for hold in replaced}
    passes = {}
    for queue_of in sorted({terms[product_id].queue_of for product_id in product_ids} - {None}):
        passes[queue_of] = live_pass(conn, queue_of, owner, now, spent_on_a_hold_taken_over=queue_of in taken_over)
        if units_of[queue_of] > limits.per_pass:
            raise HoldLimit(units_of[queue_of], limits.per_pass, "pass")
    for family in sorted(units_of):
        per_buyer = next(terms[p].per_buyer for p in product_ids if terms[p].family == family)
        if per_buyer is not None:
            bought = bought_by_owner(conn, family, owner, now)
            if bought + units_of[family] > per_buyer:
                raise BuyerLimit(family, bought, per_buyer)

    for product_id in product_ids:
        release_lapsed_holds(conn, product_id, now)
    granted, short = [], []
    for line in lines:
        bucket = take_units(conn, line.product_id, line.quantity)
        if bucket is None:
            short.append((line.product_id, max(free_units(conn, line.product_id) or 0, 0)))
            continue
        price, currency = terms[line.product_id].price, terms[line.product_id].currency
        granted.append(GrantedLine(line.product_id, line.quantity, bucket, price, currency))
    if short:
        # Units already taken for other lines are the caller's to roll back with the transaction.
        raise OutOfStock(short)
    for entry_id in passes.values():
        spend_pass(conn, entry_id, now)
    return Grant(granted, replaced=replaced,
                 expires_at=min((hold.expires_at for hold in replaced), default=None))
